#!/usr/bin/python3
"""bench-torch.py: the engine benchmark's shape in PyTorch CPU, for comparison.

The same models as `weft-bench engine` (GPT-2 with a tied LM head and tanh
GELU; the Llama family with RMSNorm, RoPE, grouped-query attention, SwiGLU),
the same preset, batch, sequence length and thread count, written the way a
strong PyTorch user writes them: nn.Linear layers (nanoGPT's GPT-2, Hugging
Face's Llama), fused attention where this PyTorch has it
(F.scaled_dot_product_attention, from 2.0) and otherwise one batched product
per attention product with an additive causal mask (grouped-query attention
on the kv heads' own tensors, no copies), AdamW with foreach=True. Times
forward, backward and clip + AdamW per step and prints the medians (wall
clock, and the step's CPU time, which a shared machine's time-slicing does
not inflate). With --json the last line is one JSON object (tokens_per_s,
step_ms, gflops, ...), which `weft-bench engine --vs-torch` reads.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

SDPA = hasattr(F, "scaled_dot_product_attention")

# GPT-2: L, NH, C, V, n_ctx
GPT2_PRESETS = {"tiny": (2, 2, 32, 257, 32), "small": (4, 4, 256, 257, 256),
                "gpt2": (12, 12, 768, 50257, 1024)}
# Llama family, as engine/gpt2.c's presets
LLAMA_PRESETS = {
    "llama-tiny": dict(L=2, H=4, C=32, V=257, n_ctx=64, KV=2, hd=8, I=64, tie=False,
                       bias=False, eps=1e-5, theta=10000.0),
    "smollm2-135m": dict(L=30, H=9, C=576, V=49152, n_ctx=2048, KV=3, hd=64, I=1536, tie=True,
                         bias=False, eps=1e-5, theta=100000.0),
    "qwen2.5-0.5b": dict(L=24, H=14, C=896, V=151936, n_ctx=32768, KV=2, hd=64, I=4864,
                         tie=True, bias=True, eps=1e-6, theta=1000000.0),
}


def causal_bias(T, rows=None):
    """(rows or T, T) additive mask: 0 on and below the diagonal, -inf above;
    row i of a stack of query heads is position i % T."""
    pos = torch.arange(rows if rows else T) % T
    return torch.zeros(len(pos), T).masked_fill(torch.arange(T)[None, :] > pos[:, None],
                                                float("-inf"))


def attend(q, k, v, bias):
    """q (B,KV,R,hd) with R = group*T stacked query rows, k, v (B,KV,T,hd):
    softmax(q kᵀ/sqrt(hd) + bias) v in two batched products."""
    scale = 1.0 / math.sqrt(q.size(-1))
    B, KV, R, hd = q.shape
    att = torch.baddbmm(bias.expand(B * KV, R, k.size(2)), q.reshape(B * KV, R, hd),
                        k.reshape(B * KV, -1, hd).transpose(1, 2), alpha=scale)
    return torch.bmm(att.softmax(dim=-1), v.reshape(B * KV, -1, hd)).view(B, KV, R, hd)


class GPT2Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, bias):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        if SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = attend(q.contiguous(), k.contiguous(), v.contiguous(), bias)
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    """nanoGPT's GPT-2: nn.Embedding, nn.LayerNorm, nn.Linear, tied head."""

    def __init__(self, L, NH, C, V, n_ctx):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(n_ctx, C)
        self.h = nn.ModuleList(GPT2Block(C, NH) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if "proj" in name else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        bias = None if SDPA else causal_bias(T)
        for blk in self.h:
            x = blk(x, bias)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-1)


def rms_norm(x, w, eps):
    """Hugging Face's LlamaRMSNorm: in float32, x * rsqrt(mean(x²) + eps) * w."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.size(-1) // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, p):
        super().__init__()
        C, H, KV, hd, I, b = p["C"], p["H"], p["KV"], p["hd"], p["I"], p["bias"]
        self.H, self.KV, self.hd, self.eps = H, KV, hd, p["eps"]
        self.input_layernorm = nn.Parameter(torch.ones(C))
        self.post_attention_layernorm = nn.Parameter(torch.ones(C))
        self.q_proj, self.k_proj = nn.Linear(C, H * hd, bias=b), nn.Linear(C, KV * hd, bias=b)
        self.v_proj, self.o_proj = nn.Linear(C, KV * hd, bias=b), nn.Linear(H * hd, C, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin, bias):
        B, T, _ = x.shape
        H, KV, hd = self.H, self.KV, self.hd
        h = rms_norm(x, self.input_layernorm, self.eps)
        q = self.q_proj(h).view(B, T, H, hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, KV, hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if SDPA:
            y = F.scaled_dot_product_attention(q, k.repeat_interleave(H // KV, dim=1),
                                               v.repeat_interleave(H // KV, dim=1), is_causal=True)
        else:
            # each kv head's group of query heads stacked as rows: no copies of k, v
            y = attend(q.reshape(B, KV, (H // KV) * T, hd), k, v.contiguous(), bias)
        x = x + self.o_proj(y.reshape(B, H, T, hd).transpose(1, 2).reshape(B, T, H * hd))
        h = rms_norm(x, self.post_attention_layernorm, self.eps)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    """Hugging Face's LlamaForCausalLM, its layers as nn.Linear."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.embed_tokens = nn.Embedding(p["V"], p["C"])
        self.layers = nn.ModuleList(LlamaBlock(p) for _ in range(p["L"]))
        self.norm = nn.Parameter(torch.ones(p["C"]))
        self.lm_head = nn.Linear(p["C"], p["V"], bias=False)
        if p["tie"]:
            self.lm_head.weight = self.embed_tokens.weight
        for name, t in self.named_parameters():
            if t.dim() == 2:
                nn.init.normal_(t, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(t)
        hd = p["hd"]
        inv_freq = 1.0 / p["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        ang = torch.arange(p["n_ctx"] if p["n_ctx"] <= 8192 else 8192,
                           dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, idx, targets):
        B, T = idx.shape
        p = self.p
        x = self.embed_tokens(idx)
        cos, sin = self.cos[:T], self.sin[:T]
        bias = None if SDPA else causal_bias(T, (p["H"] // p["KV"]) * T)
        for blk in self.layers:
            x = blk(x, cos, sin, bias)
        logits = self.lm_head(rms_norm(x, self.norm, p["eps"]))
        return F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small", choices=[*GPT2_PRESETS, *LLAMA_PRESETS])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    B, T = args.batch, args.seq
    if args.preset in GPT2_PRESETS:
        L, NH, C, V, n_ctx = GPT2_PRESETS[args.preset]
        model = GPT2(L, NH, C, V, n_ctx)
        width = C
    else:
        p = LLAMA_PRESETS[args.preset]
        L, V, n_ctx = p["L"], p["V"], p["n_ctx"]
        model = Llama(p)
        width = p["H"] * p["hd"]
    if T > min(n_ctx, 8192):
        raise SystemExit(f"--seq {T} is longer than preset {args.preset}'s context {n_ctx}")
    # weight decay on the linear layers' matrices, as weft's default
    decay = [m.weight for m in model.modules()
             if isinstance(m, nn.Linear) and m is not model.lm_head]
    ids = {id(t) for t in decay}
    rest = [t for t in model.parameters() if id(t) not in ids]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.95),
                            foreach=True)
    idx = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))
    fwd, bwd, optm, step, cpu = [], [], [], [], []
    for s in range(args.steps + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        loss = model(idx, tgt)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3, c3 = time.perf_counter(), time.process_time()
        if s > 0:  # the first step warms up and is not counted
            fwd.append(t1 - t0), bwd.append(t2 - t1), optm.append(t3 - t2), step.append(t3 - t0)
            cpu.append(c3 - c0)
    nparams = sum(t.numel() for t in model.parameters())
    step_s = statistics.median(step)
    tok_s = B * T / step_s
    gflops = (6 * nparams + 6 * L * width * T) * tok_s / 1e9
    res = {"bench": "engine-torch", "torch": torch.__version__, "preset": args.preset,
           "params": nparams, "batch": B, "seq": T, "threads": args.threads,
           "steps": args.steps, "sdpa": SDPA, "fwd_ms": 1e3 * statistics.median(fwd),
           "bwd_ms": 1e3 * statistics.median(bwd), "opt_ms": 1e3 * statistics.median(optm),
           "step_ms": 1e3 * step_s, "tokens_per_s": tok_s, "gflops": gflops,
           "cpu_step_ms": 1e3 * statistics.median(cpu),
           "cpu_tokens_per_s": B * T / statistics.median(cpu)}
    print(f"pytorch {torch.__version__} ({'SDPA' if SDPA else 'baddbmm+softmax+bmm'} "
          f"attention): preset {args.preset} ({nparams} parameters), batch {B}x{T}, "
          f"{args.threads} thread(s): fwd {res['fwd_ms']:.1f} ms, bwd {res['bwd_ms']:.1f} ms, "
          f"opt {res['opt_ms']:.1f} ms, step {res['step_ms']:.1f} ms, {tok_s:.0f} tokens/s, "
          f"{gflops:.1f} GFLOP/s")
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
