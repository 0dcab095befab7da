#!/usr/bin/python3
"""make-reference.py: golden tensors for the engine's reference test, from plain PyTorch.

Builds GPT-2 from a weft-model file (float64, the math written out), runs one
batch to logits, loss and every parameter's gradient, then 5 AdamW steps with
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


def load_model(path):
    f = h5py.File(path, "r")
    if f.attrs.get("format") not in (b"weft-model", "weft-model"):
        sys.exit(f"{path}: not a weft-model file")
    cfg = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_ctx")}
    names = ["wte", "wpe"] + [f"h/{l}/{s}" for l in range(cfg["n_layer"]) for s in BLOCK] + \
            ["ln_f/weight", "ln_f/bias"]
    params = {n: torch.tensor(np.asarray(f[n], dtype=np.float64), requires_grad=True)
              for n in names}
    return cfg, names, params


def forward(cfg, P, idx, targets):
    """Returns logits (B,T,V) and the mean cross-entropy over targets != -1."""
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
    """The engine's warmup + cosine schedule (worker/optim.c, schedule_lr)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = total - warmup
    frac = min((step - warmup) / (span - 1), 1.0) if span > 1 else 1.0
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))


def decays(name):
    """Weight decay on the linear layers' weights only (not biases, norms, embeddings)."""
    return name.endswith("/weight") and ("/attn/" in name or "/mlp/" in name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("-o", "--out", required=True, help="output prefix")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()

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
        f.attrs["format"] = "weft-reference-grad"
        f["inputs"] = inputs.astype(np.int32)
        f["targets"] = targets.astype(np.int32)
        f.create_dataset("logits", data=logits.detach().numpy().astype(np.float32))
        f["loss"] = np.float32(loss.item())
        for n in names:
            f.create_dataset("grad/" + n, data=P[n].grad.numpy().astype(np.float32))

    hp = dict(lr=1e-3, lr_min=1e-4, warmup=2, steps=args.steps, beta1=0.9, beta2=0.95,
              eps=1e-8, weight_decay=0.2)
    norm0 = math.sqrt(sum(float((P[n].grad ** 2).sum()) for n in names))
    hp["grad_clip"] = float(f"{0.5 * norm0:.3g}")  # half the first norm: clipping acts
    for p in P.values():
        p.grad = None
    groups = [{"params": [P[n] for n in names if decays(n)], "weight_decay": hp["weight_decay"]},
              {"params": [P[n] for n in names if not decays(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                            eps=hp["eps"], foreach=False)
    losses, norms = [], []
    for step in range(args.steps):
        opt.zero_grad(set_to_none=True)
        _, loss = forward(cfg, P, idx, tgt)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(P.values()), hp["grad_clip"])
        lr = schedule(step, hp["lr"], hp["lr_min"], hp["warmup"], hp["steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        losses.append(loss.item())
        norms.append(float(norm))
    with h5py.File(args.out + "-train.h5", "w") as f:
        f.attrs["format"] = "weft-reference-train"
        for k, v in hp.items():
            f.attrs[k] = v
        f["losses"] = np.array(losses, dtype=np.float32)
        f["grad_norm"] = np.array(norms, dtype=np.float32)
        for n in names:
            f.create_dataset("params/" + n, data=P[n].detach().numpy().astype(np.float32))
    print(f"{args.out}: loss {losses[0]:.6f} -> {losses[-1]:.6f} in {args.steps} steps, "
          f"grad norm {norm0:.4f}, clip {hp['grad_clip']}")


if __name__ == "__main__":
    main()
