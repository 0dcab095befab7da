#!/usr/bin/python3
"""make-reference.py: golden tensors for the engine's reference test, from plain PyTorch.

Builds GPT-2 or a Llama-family model (arch "llama": RMSNorm, RoPE with
rotate_half and linear/llama3 scaling, grouped-query attention, SwiGLU, biases
where the file has them, tied or untied head) from a weft-model file (float64,
the math written out, no transformers), runs one batch to logits, loss and every parameter's gradient, then 5 AdamW steps with
global-norm clipping and a warmup+cosine schedule, and writes two HDF5 files:

  PREFIX-grad.h5   /inputs /targets (int32 [B,T]), /logits [B,T,V], /loss,
                   /grad/<name> for every parameter (model-file names)
  PREFIX-train.h5  root attributes lr lr_min warmup steps beta1 beta2 eps
                   weight_decay grad_clip; /losses [steps], /grad_norm [steps],
                   /params/<name> after the last step

Regenerate the committed references (tests/engine/data/) with:
  weft init-model --preset tiny --seed 1 -o tests/engine/data/tiny.h5
  weft init-model --preset tiny --layers 3 --heads 3 --embd 48 --vocab 300 \
      --ctx 20 --seed 2 -o tests/engine/data/l3h3.h5
  scripts/make-reference.py --model tests/engine/data/tiny.h5 -o tests/engine/data/tiny
  scripts/make-reference.py --model tests/engine/data/l3h3.h5 -o tests/engine/data/l3h3
and the Llama ones (GQA + untied head + theta 500000; tied head + q/k/v biases
+ one kv head; llama3 rope scaling; head_dim != C/H):
  weft init-model --preset llama-tiny --layers 2 --heads 4 --kv-heads 2 --embd 32 \
      --inner 48 --vocab 300 --ctx 12 --theta 500000 --tie 0 --seed 3 -o tests/engine/data/lgqa.h5
  weft init-model --preset llama-tiny --layers 2 --heads 3 --kv-heads 1 --embd 24 \
      --inner 40 --vocab 280 --ctx 10 --tie 1 --bias q,k,v --seed 4 -o tests/engine/data/lbias.h5
  weft init-model --preset llama-tiny --layers 1 --heads 2 --kv-heads 2 --embd 16 --inner 24 \
      --vocab 270 --ctx 40 --rope-scaling llama3:8:1:4:16 --theta 10000 --seed 5 \
      -o tests/engine/data/lrope3.h5
  weft init-model --preset llama-tiny --layers 2 --heads 4 --kv-heads 2 --embd 24 \
      --head-dim 10 --inner 32 --vocab 260 --ctx 9 --rope-scaling linear:2 --seed 6 \
      -o tests/engine/data/lhd.h5
  for m in lgqa lbias lrope3 lhd; do scripts/make-reference.py --perturb 7 \
      --model tests/engine/data/$m.h5 -o tests/engine/data/$m; done
Packed documents (--docs N1,N2,...: one row holding documents of those lengths,
each one's first third of targets masked as a prompt; the reference runs the
documents one by one and takes the mean over all their trainable targets):
  scripts/make-reference.py --model tests/engine/data/tiny.h5 --docs 12,9,11 \
      -o tests/engine/data/tiny
  scripts/make-reference.py --model tests/engine/data/lgqa.h5 --docs 5,4,3 \
      -o tests/engine/data/lgqa
  scripts/make-reference.py --model tests/engine/data/lrope3.h5 --docs 15,12,13 \
      -o tests/engine/data/lrope3
which write PREFIX-packed.h5: /inputs /targets /pos (int32 [1,T]), /loss,
/grad/<name>.
"""
import argparse
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

BLOCK = ["ln_1/weight", "ln_1/bias", "attn/c_attn/weight", "attn/c_attn/bias",
         "attn/c_proj/weight", "attn/c_proj/bias", "ln_2/weight", "ln_2/bias",
         "mlp/c_fc/weight", "mlp/c_fc/bias", "mlp/c_proj/weight", "mlp/c_proj/bias"]


LLAMA_PROJ = ["self_attn/q_proj", "self_attn/k_proj", "self_attn/v_proj", "self_attn/o_proj",
              "mlp/gate_proj", "mlp/up_proj", "mlp/down_proj"]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def llama_names(f, cfg):
    """Table order of engine/llama.c: embed, per layer norm, q/k/v/o (+bias), norm,
    gate/up/down (+bias), final norm, lm_head when untied."""
    names = ["model/embed_tokens/weight"]
    for l in range(cfg["n_layer"]):
        pre = f"model/layers/{l}"
        names.append(f"{pre}/input_layernorm/weight")
        for j, p in enumerate(LLAMA_PROJ):
            if j == 4:
                names.append(f"{pre}/post_attention_layernorm/weight")
            names.append(f"{pre}/{p}/weight")
            if f"{pre}/{p}/bias" in f:
                names.append(f"{pre}/{p}/bias")
    names.append("model/norm/weight")
    if not cfg["tie_word_embeddings"]:
        names.append("lm_head/weight")
    return names


def load_model(path):
    f = h5py.File(path, "r")
    if f.attrs.get("format") not in (b"weft-model", "weft-model"):
        sys.exit(f"{path}: not a weft-model file")
    cfg = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_ctx")}
    cfg["arch"] = text(f.attrs["arch"])
    if cfg["arch"] == "llama":
        for k in ("n_kv_head", "head_dim", "n_inner", "tie_word_embeddings"):
            cfg[k] = int(f.attrs[k])
        cfg["rms_norm_eps"] = float(f.attrs["rms_norm_eps"])
        cfg["rope_theta"] = float(f.attrs["rope_theta"])
        cfg["rope"] = text(f.attrs["rope_scaling_type"]) if "rope_scaling_type" in f.attrs \
            else "default"
        for k in ("factor", "low_freq_factor", "high_freq_factor",
                  "original_max_position_embeddings"):
            if "rope_scaling_" + k in f.attrs:
                cfg[k] = float(f.attrs["rope_scaling_" + k])
        names = llama_names(f, cfg)
    else:
        names = ["wte", "wpe"] + [f"h/{l}/{s}" for l in range(cfg["n_layer"]) for s in BLOCK] + \
                ["ln_f/weight", "ln_f/bias"]
    params = {n: torch.tensor(np.asarray(f[n], dtype=np.float64), requires_grad=True)
              for n in names}
    return cfg, names, params


def rope_inv_freq(cfg):
    """inv_freq[j] = 1/theta^(2j/d), with Hugging Face's linear or llama3 scaling."""
    d = cfg["head_dim"]
    inv = 1.0 / cfg["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    if cfg["rope"] == "linear":
        inv = inv / cfg["factor"]
    elif cfg["rope"] == "llama3":
        factor, lo, hi = cfg["factor"], cfg["low_freq_factor"], cfg["high_freq_factor"]
        old = cfg["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def forward_llama(cfg, P, idx, targets):
    B, T = idx.shape
    L, H, KV, hd = cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * rope_inv_freq(cfg)[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    def lin(x, pre, proj):
        y = x @ P[f"{pre}/{proj}/weight"].T  # nn.Linear: x·Wᵀ + b
        b = P.get(f"{pre}/{proj}/bias")
        return y + b if b is not None else y

    x = P["model/embed_tokens/weight"][idx]
    for l in range(L):
        pre = f"model/layers/{l}"
        h = rms_norm(x, P[f"{pre}/input_layernorm/weight"], eps)
        q = lin(h, pre, "self_attn/q_proj").view(B, T, H, hd).transpose(1, 2)
        k = lin(h, pre, "self_attn/k_proj").view(B, T, KV, hd).transpose(1, 2)
        v = lin(h, pre, "self_attn/v_proj").view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)  # kv head j serves query heads j*G..j*G+G-1
        v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * hd ** -0.5
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(y, pre, "self_attn/o_proj")
        h = rms_norm(x, P[f"{pre}/post_attention_layernorm/weight"], eps)
        x = x + lin(F.silu(lin(h, pre, "mlp/gate_proj")) * lin(h, pre, "mlp/up_proj"),
                    pre, "mlp/down_proj")
    x = rms_norm(x, P["model/norm/weight"], eps)
    head = P["model/embed_tokens/weight"] if cfg["tie_word_embeddings"] else P["lm_head/weight"]
    logits = x @ head.T
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def forward(cfg, P, idx, targets):
    """Returns logits (B,T,V) and the mean cross-entropy over targets != -1."""
    if cfg["arch"] == "llama":
        return forward_llama(cfg, P, idx, targets)
    B, T = idx.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH
    x = P["wte"][idx] + P["wpe"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(L):
        p = lambda s: P[f"h/{l}/{s}"]
        h = F.layer_norm(x, (C,), p("ln_1/weight"), p("ln_1/bias"), 1e-5)
        qkv = h @ p("attn/c_attn/weight") + p("attn/c_attn/bias")  # Conv1D: x·W + b
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p("attn/c_proj/weight") + p("attn/c_proj/bias")
        h = F.layer_norm(x, (C,), p("ln_2/weight"), p("ln_2/bias"), 1e-5)
        h = F.gelu(h @ p("mlp/c_fc/weight") + p("mlp/c_fc/bias"), approximate="tanh")
        x = x + h @ p("mlp/c_proj/weight") + p("mlp/c_proj/bias")
    x = F.layer_norm(x, (C,), P["ln_f/weight"], P["ln_f/bias"], 1e-5)
    logits = x @ P["wte"].T
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def schedule(step, lr, lr_min, warmup, total):
    """The engine's warmup + cosine schedule (engine/optim.c, schedule_lr)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = total - warmup
    frac = min((step - warmup) / (span - 1), 1.0) if span > 1 else 1.0
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))


def write_batch(f, fmt, inputs, targets, logits, loss, grads):
    """One batch's reference into the open HDF5 file f: /inputs /targets (int32),
    /logits, /loss and /grad/<name> for each name -> parameter of grads."""
    f.attrs["format"] = fmt
    f["inputs"] = inputs.astype(np.int32)
    f["targets"] = targets.astype(np.int32)
    f.create_dataset("logits", data=logits.detach().numpy().astype(np.float32))
    f["loss"] = np.float32(loss.item())
    for n, p in grads.items():
        f.create_dataset("grad/" + n, data=p.grad.numpy().astype(np.float32))


def write_train(f, prefix, hp, losses, norms, params):
    """A training run's reference into the open HDF5 file f: hp as root attributes,
    PREFIXlosses, PREFIXgrad_norm and PREFIXparams/<name> for each name -> parameter
    of params (their values after the last step)."""
    for k, v in hp.items():
        f.attrs[k] = v
    f[prefix + "losses"] = np.array(losses, dtype=np.float32)
    f[prefix + "grad_norm"] = np.array(norms, dtype=np.float32)
    for n, p in params.items():
        f.create_dataset(prefix + "params/" + n, data=p.detach().numpy().astype(np.float32))


def clip_at_half(hp, params):
    """Sets hp["grad_clip"] to half the global norm of params' gradients (so that
    clipping acts), then clears the gradients; returns that norm."""
    norm0 = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params))
    hp["grad_clip"] = float(f"{0.5 * norm0:.3g}")
    for p in params:
        p.grad = None
    return norm0


def adamw_steps(groups, params, hp, step_loss):
    """hp["steps"] AdamW steps on the parameter groups, each on step_loss()'s
    gradients clipped to a global norm of hp["grad_clip"] over params, at the
    engine's learning rate schedule; returns the losses and the norms."""
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                            eps=hp["eps"], foreach=False)
    losses, norms = [], []
    for step in range(hp["steps"]):
        opt.zero_grad(set_to_none=True)
        loss = step_loss()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, hp["grad_clip"])
        lr = schedule(step, hp["lr"], hp["lr_min"], hp["warmup"], hp["steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(loss.item())
        norms.append(float(norm))
    return losses, norms


def decays(name):
    """Weight decay on the linear layers' weights only (not biases, norms, embeddings,
    nor an untied lm_head)."""
    return name.endswith("/weight") and any(s in name for s in ("/attn/", "/self_attn/", "/mlp/"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("-o", "--out", required=True, help="output prefix")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--perturb", type=int, metavar="SEED",
                    help="first rewrite the model file's biases and norm weights (which "
                         "init-model sets to 0 and 1) with random values, so that they count")
    ap.add_argument("--docs", help="comma-separated document lengths: write PREFIX-packed.h5")
    args = ap.parse_args()
    if args.docs:
        return packed(args)
    if args.perturb is not None:
        prng = np.random.default_rng(args.perturb)
        with h5py.File(args.model, "r+") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and (name.endswith("/bias") or
                                                      "norm" in name or "ln_" in name):
                    base = 1.0 if name.endswith("weight") else 0.0
                    obj[...] = (base + 0.1 * prng.standard_normal(obj.shape)).astype(np.float32)
            f.visititems(visit)

    cfg, names, P = load_model(args.model)
    B, T, V = args.batch, cfg["n_ctx"], cfg["vocab_size"]
    rng = np.random.default_rng(args.seed)
    seq = rng.integers(0, V, size=(B, T + 1), dtype=np.int64)
    inputs, targets = seq[:, :T].copy(), seq[:, 1:].copy()
    targets[0, :3] = -1          # ignored positions, at both ends of rows
    targets[B - 1, T - 2:] = -1
    idx, tgt = torch.tensor(inputs), torch.tensor(targets)

    logits, loss = forward(cfg, P, idx, tgt)
    loss.backward()
    with h5py.File(args.out + "-grad.h5", "w") as f:
        write_batch(f, "weft-reference-grad", inputs, targets, logits, loss,
                    {n: P[n] for n in names})

    hp = dict(lr=1e-3, lr_min=1e-4, warmup=2, steps=args.steps, beta1=0.9, beta2=0.95,
              eps=1e-8, weight_decay=0.2)
    norm0 = clip_at_half(hp, list(P.values()))
    groups = [{"params": [P[n] for n in names if decays(n)], "weight_decay": hp["weight_decay"]},
              {"params": [P[n] for n in names if not decays(n)], "weight_decay": 0.0}]
    losses, norms = adamw_steps(groups, list(P.values()), hp,
                                lambda: forward(cfg, P, idx, tgt)[1])
    with h5py.File(args.out + "-train.h5", "w") as f:
        f.attrs["format"] = "weft-reference-train"
        write_train(f, "", hp, losses, norms, {n: P[n] for n in names})
    print(f"{args.out}: loss {losses[0]:.6f} -> {losses[-1]:.6f} in {args.steps} steps, "
          f"grad norm {norm0:.4f}, clip {hp['grad_clip']}")


def packed(args):
    """The packed-documents reference: documents run one by one (each alone, positions
    from 0), prompts masked, loss = sum of their trainable losses / their count."""
    cfg, names, P = load_model(args.model)
    lens = [int(x) for x in args.docs.split(",")]
    T, V = sum(lens), cfg["vocab_size"]
    if T > cfg["n_ctx"]:
        sys.exit(f"documents of {T} tokens in all exceed n_ctx {cfg['n_ctx']}")
    rng = np.random.default_rng(args.seed)
    inputs, targets, pos = [], [], []
    total, count = 0.0, 0
    for n in lens:
        seq = rng.integers(0, V, size=(1, n + 1), dtype=np.int64)
        inp, tgt = seq[:, :n].copy(), seq[:, 1:].copy()
        tgt[0, :max(1, n // 3)] = -1  # the prompt: context, no loss
        _, loss = forward(cfg, P, torch.tensor(inp), torch.tensor(tgt))
        k = int((tgt >= 0).sum())
        total = total + loss * k
        count += k
        inputs.append(inp)
        targets.append(tgt)
        pos.append(np.arange(n, dtype=np.int64)[None, :])
    loss = total / count
    loss.backward()
    with h5py.File(args.out + "-packed.h5", "w") as f:
        f.attrs["format"] = "weft-reference-packed"
        f["inputs"] = np.concatenate(inputs, axis=1).astype(np.int32)
        f["targets"] = np.concatenate(targets, axis=1).astype(np.int32)
        f["pos"] = np.concatenate(pos, axis=1).astype(np.int32)
        f["loss"] = np.float32(loss.item())
        for n in names:
            f.create_dataset("grad/" + n, data=P[n].grad.numpy().astype(np.float32))
    print(f"{args.out}-packed.h5: {len(lens)} documents, {T} tokens, {count} trainable, "
          f"loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
