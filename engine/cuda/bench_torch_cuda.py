#!/usr/bin/python3
"""bench_torch_cuda.py: the CUDA engine benchmark's shape in PyTorch eager on
the GPU, for comparison: the same GPT-2 (tied LM head, tanh GELU, Conv1D
layout) with SDPA causal attention, bf16 autocast, float32 master weights and
fused AdamW, clipping at 1.0. Times forward, backward and clip + AdamW with a
device synchronisation after each, prints medians, and with --json a last
line of one JSON object that bench_cuda --torch-json reads.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

PRESETS = {"tiny": (2, 2, 32, 257, 32), "small": (4, 4, 256, 257, 256),
           "gpt2": (12, 12, 768, 50257, 1024)}


class GPT2(torch.nn.Module):
    def __init__(self, L, NH, C, V, n_ctx):
        super().__init__()
        self.NH, self.C = NH, C
        p = lambda *shape, std=0.02: torch.nn.Parameter(torch.randn(*shape) * std)
        z = lambda *shape: torch.nn.Parameter(torch.zeros(*shape))
        o = lambda *shape: torch.nn.Parameter(torch.ones(*shape))
        self.wte, self.wpe = p(V, C), p(n_ctx, C)
        proj = 0.02 / math.sqrt(2 * L)
        self.h = torch.nn.ParameterList()
        self.blocks = []
        for _ in range(L):
            blk = [o(C), z(C), p(C, 3 * C), z(3 * C), p(C, C, std=proj), z(C),
                   o(C), z(C), p(C, 4 * C), z(4 * C), p(4 * C, C, std=proj), z(C)]
            self.h.extend(blk)
            self.blocks.append(blk)
        self.lnfw, self.lnfb = o(C), z(C)

    def forward(self, idx, targets):
        B, T = idx.shape
        C, NH = self.C, self.NH
        x = self.wte[idx] + self.wpe[:T]
        for (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, fpw, fpb) in self.blocks:
            h = F.layer_norm(x, (C,), l1w, l1b, 1e-5)
            q, k, v = (h @ aw + ab).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + y.transpose(1, 2).reshape(B, T, C) @ pw + pb
            h = F.layer_norm(x, (C,), l2w, l2b, 1e-5)
            x = x + F.gelu(h @ fw + fb, approximate="tanh") @ fpw + fpb
        x = F.layer_norm(x, (C,), self.lnfw, self.lnfb, 1e-5)
        logits = x @ self.wte.T
        return F.cross_entropy(logits.view(B * T, -1).float(), targets.view(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="gpt2", choices=PRESETS)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = True
    L, NH, C, V, n_ctx = PRESETS[args.preset]
    B, T = args.batch, args.seq
    dev = torch.device("cuda")
    model = GPT2(L, NH, C, V, n_ctx).to(dev)
    decay = [p for blk in model.blocks for p in (blk[2], blk[4], blk[8], blk[10])]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-4,
                            betas=(0.9, 0.95), fused=True)
    idx = torch.randint(0, V, (B, T), device=dev)
    tgt = torch.randint(0, V, (B, T), device=dev)
    fwd, bwd, optm, step = [], [], [], []
    warm = 3
    for s in range(args.steps + warm):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(idx, tgt)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        t3 = time.perf_counter()
        if s >= warm:
            fwd.append(t1 - t0), bwd.append(t2 - t1), optm.append(t3 - t2), step.append(t3 - t0)
    nparams = sum(p.numel() for p in model.parameters())
    step_s = statistics.median(step)
    tok_s = B * T / step_s
    res = {"bench": "engine-torch-cuda", "torch": torch.__version__,
           "device": torch.cuda.get_device_name(), "preset": args.preset, "params": nparams,
           "batch": B, "seq": T, "steps": args.steps,
           "fwd_ms": 1e3 * statistics.median(fwd), "bwd_ms": 1e3 * statistics.median(bwd),
           "opt_ms": 1e3 * statistics.median(optm), "step_ms": 1e3 * step_s,
           "tokens_per_s": tok_s, "loss": float(loss)}
    print(f"pytorch {torch.__version__} on {res['device']}: {args.preset} B{B} T{T}: fwd "
          f"{res['fwd_ms']:.1f} ms, bwd {res['bwd_ms']:.1f} ms, opt {res['opt_ms']:.1f} ms, "
          f"step {res['step_ms']:.1f} ms, {tok_s:.0f} tokens/s")
    if args.json:
        print(json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    main()
