#!/usr/bin/python3
"""h5_to_raw.py: a reference model and its gradient file (tests/engine/data)
as one raw little-endian file that the CUDA tests read without HDF5.

Layout: int32 n_layer, n_head, n_embd, vocab_size, n_ctx, B, T; float32
params (nparams, table order); int32 inputs (B,T); int32 targets (B,T);
float32 loss; float32 logits (B,T,V); float32 grads (nparams, table order).
Usage: h5_to_raw.py MODEL.h5 GRAD.h5 OUT.raw
"""
import sys

import h5py
import numpy as np

BLOCK = ["ln_1/weight", "ln_1/bias", "attn/c_attn/weight", "attn/c_attn/bias",
         "attn/c_proj/weight", "attn/c_proj/bias", "ln_2/weight", "ln_2/bias",
         "mlp/c_fc/weight", "mlp/c_fc/bias", "mlp/c_proj/weight", "mlp/c_proj/bias"]


def table(n_layer):
    names = ["wte", "wpe"]
    for l in range(n_layer):
        names += [f"h/{l}/{s}" for s in BLOCK]
    return names + ["ln_f/weight", "ln_f/bias"]


def main():
    model, grad, out = sys.argv[1:4]
    with h5py.File(model, "r") as m, h5py.File(grad, "r") as g:
        cfg = [int(m.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_ctx")]
        names = table(cfg[0])
        flat = lambda f, pre: np.concatenate(
            [np.asarray(f[pre + n], dtype="<f4").ravel() for n in names])
        inputs = np.asarray(g["inputs"], dtype="<i4")
        with open(out, "wb") as f:
            f.write(np.array(cfg + list(inputs.shape), dtype="<i4").tobytes())
            f.write(flat(m, "").tobytes())
            f.write(inputs.tobytes())
            f.write(np.asarray(g["targets"], dtype="<i4").tobytes())
            f.write(np.asarray(g["loss"], dtype="<f4").reshape(1).tobytes())
            f.write(np.asarray(g["logits"], dtype="<f4").tobytes())
            f.write(flat(g, "grad/").tobytes())


if __name__ == "__main__":
    main()
