#!/usr/bin/python3
"""test_hf_reference.py: a GPT-2 checkpoint built from the PyTorch reference
model of scripts/make-reference.py (tests/engine/data/l3h3.h5, its float64
reference l3h3-grad.h5), written the way the Hub writes GPT2LMHeadModel
(transformer. prefix, attn.bias buffers, F32, by stwriter.py), imported with
`weft import`, then run by `weft grad --logits`: loss within 1e-5, logits
within 1e-5 and every gradient within 1e-4 (relative) of the reference, as
the engine's own reference test asks of the original model file.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stwriter  # noqa: E402

data = os.path.join(os.environ.get("top_srcdir", "."), "tests", "engine", "data")
model, ref = os.path.join(data, "l3h3.h5"), os.path.join(data, "l3h3-grad.h5")
tmp = tempfile.mkdtemp(prefix="weft-test-hf-ref-")


def run(*args):
    p = subprocess.run(["weft", *args], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"FAIL: weft {' '.join(args)}: {p.stderr}")


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


with h5py.File(model, "r") as f:
    cfg = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_ctx")}
    sd = {}
    f.visititems(lambda n, o: sd.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)

hf = os.path.join(tmp, "hf")
os.makedirs(hf)
state = {"transformer.wte.weight": sd.pop("wte"), "transformer.wpe.weight": sd.pop("wpe")}
state.update({"transformer." + k.replace("/", "."): v for k, v in sd.items()})
T = cfg["n_ctx"]
for l in range(cfg["n_layer"]):
    state[f"transformer.h.{l}.attn.bias"] = np.tril(np.ones((1, 1, T, T), np.float32))
stwriter.write(os.path.join(hf, "model.safetensors"), state, metadata={"format": "pt"})
json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": cfg["n_layer"],
           "n_head": cfg["n_head"], "n_embd": cfg["n_embd"], "vocab_size": cfg["vocab_size"],
           "n_positions": T, "n_ctx": T, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-05, "tie_word_embeddings": True},
          open(os.path.join(hf, "config.json"), "w"))

run("import", hf, "-o", f"{tmp}/imported.h5")
run("grad", "--model", f"{tmp}/imported.h5", "--batch", ref, "-o", f"{tmp}/out.h5", "--logits")
out, r = h5py.File(f"{tmp}/out.h5", "r"), h5py.File(ref, "r")
assert abs(out["loss"][()] - r["loss"][()]) <= 1e-5 * abs(r["loss"][()]), "loss"
assert rel(out["logits"], r["logits"]) <= 1e-5, "logits"
names = []
r["grad"].visit(lambda n: names.append(n) if isinstance(r["grad"][n], h5py.Dataset) else None)
assert len(names) == 2 + 12 * cfg["n_layer"] + 2, len(names)
worst = 0.0
for n in names:
    e = rel(out[n], r["grad"][n])
    worst = max(worst, e)
    assert e <= 1e-4, f"{n}: relative error {e:.3g}"
print(f"imported GPT-2: loss, logits and {len(names)} gradients match the float64 reference "
      f"(worst gradient error {worst:.2g})")
subprocess.run(["rm", "-rf", tmp])
