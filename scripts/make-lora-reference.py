#!/usr/bin/python3
"""make-lora-reference.py: golden tensors for the LoRA reference test, from plain PyTorch.

PEFT's LoRA written out on GPT-2's Conv1D layers (float64):
    out = x·W + b + (dropout(x)·Aᵀ)·Bᵀ · scaling,   A [r,in], B [out,r],
    scaling = alpha/r (alpha/sqrt(r) with rsLoRA); dropout is 0 here, since
    PyTorch's masks cannot be replayed in C (the C tests check dropout).
For each tenant it writes the starting adapter (a weft-adapter file whose B
is nonzero, so that every gradient is), one batch with its logits, loss and
adapter gradients, and 5 AdamW steps on that batch with global-norm clipping
and a warmup+cosine schedule, the backbone frozen:

  DIR/<tenant>.h5       the adapter (weft-adapter, base_sha256 of the model)
  DIR/<tenant>-ref.h5   /inputs /targets (int32 [B,T]), /logits [B,T,V],
                        /loss, /grad/h/<i>/<module>/lora_{A,B}; attributes
                        lr lr_min warmup steps beta1 beta2 eps weight_decay
                        grad_clip; /train/losses [steps], /train/grad_norm
                        [steps], /train/params/h/... after the last step

Regenerate the committed reference (tests/lora/data/) with:
  weft init-model --preset tiny --layers 3 --heads 3 --embd 48 --vocab 300 \\
      --ctx 20 --seed 3 -o tests/lora/data/base.h5
  scripts/make-lora-reference.py --model tests/lora/data/base.h5 -o tests/lora/data
"""
import argparse
import hashlib
import importlib.util
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

_spec = importlib.util.spec_from_file_location(
    "make_reference", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-reference.py"))
engine_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_ref)

MODULES = {"attn.c_attn": (1, 3), "attn.c_proj": (1, 1), "mlp.c_fc": (1, 4), "mlp.c_proj": (4, 1)}

# The two tenants of the reference: different rank, scaling, targets, data.
TENANTS = [
    dict(tenant="acme", r=4, alpha=8.0, use_rslora=0, seed=21, batch=2, data_seed=5,
         targets=["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], lr=3e-3),
    dict(tenant="globex", r=2, alpha=4.0, use_rslora=1, seed=22, batch=3, data_seed=6,
         targets=["attn.c_attn", "mlp.c_proj"], lr=1e-2),
]


def module_path(name):
    return name.replace(".", "/")


def make_adapter(cfg, t):
    """PEFT's A ~ U(±1/sqrt(in)); B from N(0, 0.02) instead of 0 so gradients flow everywhere."""
    rng = np.random.default_rng(t["seed"])
    C, r = cfg["n_embd"], t["r"]
    ad = {}
    for l in range(cfg["n_layer"]):
        for name in t["targets"]:
            fin, fout = MODULES[name]
            bound = 1.0 / math.sqrt(fin * C)
            A = rng.uniform(-bound, bound, size=(r, fin * C)).astype(np.float32)
            B = rng.normal(0.0, 0.02, size=(fout * C, r)).astype(np.float32)
            for key, val in (("lora_A", A), ("lora_B", B)):
                ad[f"h/{l}/{module_path(name)}/{key}"] = torch.tensor(
                    val.astype(np.float64), requires_grad=True)
    return ad


def write_adapter(path, t, ad, base_sha):
    """String attributes as fixed-length ASCII (np.bytes_), as weft writes them."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("weft-adapter")
        f.attrs["version"] = np.int64(1)
        f.attrs["tenant"] = np.bytes_(t["tenant"])
        f.attrs["r"] = np.int64(t["r"])
        f.attrs["alpha"] = np.float64(t["alpha"])
        f.attrs["use_rslora"] = np.int64(t["use_rslora"])
        f.attrs["targets"] = np.bytes_(",".join(t["targets"]))
        f.attrs["base_sha256"] = np.bytes_(base_sha)
        f.attrs["steps"] = np.int64(0)
        f.attrs["seed"] = np.int64(t["seed"])
        for name, val in ad.items():
            f.create_dataset(name, data=val.detach().numpy().astype(np.float32))


def forward(cfg, P, ad, scaling, idx, targets):
    """GPT-2 as in make-reference.py, each targeted Conv1D plus its LoRA branch."""
    B, T = idx.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH

    def linear(x, l, mod):
        w, b = P[f"h/{l}/{mod}/weight"], P[f"h/{l}/{mod}/bias"]
        y = x @ w + b
        key = f"h/{l}/{mod}/lora_A"
        if key in ad:
            y = y + (x @ ad[key].T) @ ad[f"h/{l}/{mod}/lora_B"].T * scaling
        return y

    x = P["wte"][idx] + P["wpe"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(L):
        p = lambda s: P[f"h/{l}/{s}"]
        h = F.layer_norm(x, (C,), p("ln_1/weight"), p("ln_1/bias"), 1e-5)
        qkv = linear(h, l, "attn/c_attn")
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, l, "attn/c_proj")
        h = F.layer_norm(x, (C,), p("ln_2/weight"), p("ln_2/bias"), 1e-5)
        h = F.gelu(linear(h, l, "mlp/c_fc"), approximate="tanh")
        x = x + linear(h, l, "mlp/c_proj")
    x = F.layer_norm(x, (C,), P["ln_f/weight"], P["ln_f/bias"], 1e-5)
    logits = x @ P["wte"].T
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
    return logits, loss


def reference(cfg, P, t, outdir, base_sha, steps):
    ad = make_adapter(cfg, t)
    write_adapter(os.path.join(outdir, t["tenant"] + ".h5"), t, ad, base_sha)
    scaling = t["alpha"] / (math.sqrt(t["r"]) if t["use_rslora"] else t["r"])
    B, T, V = t["batch"], cfg["n_ctx"], cfg["vocab_size"]
    rng = np.random.default_rng(t["data_seed"])
    seq = rng.integers(0, V, size=(B, T + 1), dtype=np.int64)
    inputs, targets = seq[:, :T].copy(), seq[:, 1:].copy()
    targets[0, :2] = -1
    targets[B - 1, T - 3:] = -1
    idx, tgt = torch.tensor(inputs), torch.tensor(targets)

    logits, loss = forward(cfg, P, ad, scaling, idx, tgt)
    loss.backward()
    ref = h5py.File(os.path.join(outdir, t["tenant"] + "-ref.h5"), "w")
    engine_ref.write_batch(ref, "weft-reference-lora", inputs, targets, logits, loss, ad)

    hp = dict(lr=t["lr"], lr_min=t["lr"] / 10, warmup=2, steps=steps, beta1=0.9, beta2=0.95,
              eps=1e-8, weight_decay=0.1)
    params = list(ad.values())
    norm0 = engine_ref.clip_at_half(hp, params)
    groups = [{"params": params, "weight_decay": hp["weight_decay"]}]
    losses, norms = engine_ref.adamw_steps(groups, params, hp,
                                           lambda: forward(cfg, P, ad, scaling, idx, tgt)[1])
    engine_ref.write_train(ref, "train/", hp, losses, norms, ad)
    ref.close()
    print(f"{t['tenant']}: loss {losses[0]:.6f} -> {losses[-1]:.6f} in {steps} steps, "
          f"grad norm {norm0:.4f}, clip {hp['grad_clip']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("-o", "--outdir", required=True)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    cfg, _, P = engine_ref.load_model(args.model)
    for p in P.values():
        p.requires_grad_(False)  # the backbone is frozen
    with open(args.model, "rb") as f:
        base_sha = hashlib.sha256(f.read()).hexdigest()
    for t in TENANTS:
        reference(cfg, P, t, args.outdir, base_sha, args.steps)


if __name__ == "__main__":
    main()
