#!/usr/bin/python3
"""test_hf_reference.py: a GPT-2 checkpoint built from the PyTorch reference
model of scripts/make-reference.py (tests/engine/data/l3h3.h5, its float64
reference l3h3-grad.h5), written the way the Hub writes GPT2LMHeadModel
(transformer. prefix, attn.bias buffers, F32, by stwriter.py), imported with
`weft import`, then run by `weft grad --logits`: loss within 1e-5, logits
within 1e-5 and every gradient within 1e-4 (relative) of the reference, as
the engine's own reference test asks of the original model file.

The same for the Llama family, from the float64 PyTorch Llama of
make-reference.py (tests/engine/data/l*.h5 and their *-grad.h5), each
written as a Hugging Face checkpoint of its class with no tokenizer files:
LlamaForCausalLM with grouped-query attention and an untied head (lgqa);
Qwen2ForCausalLM, tied, with q/k/v biases (lbias); LlamaForCausalLM with
llama3 rope scaling in the newer rope_parameters layout and Hub inv_freq
buffers (lrope3); MistralForCausalLM with head_dim != C/H, linear scaling
and a sliding window equal to the sequence (lhd). The imported file carries
every attribute of the engine-written original under the same name and
value (one table, model/model_attrs.c) and loads in the engine; a Mistral
window shorter than the sequence is refused naming sliding_window.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modeltest  # noqa: E402
import stwriter  # noqa: E402
from modeltest import rel, weft  # noqa: E402

data = os.path.join(os.environ.get("top_srcdir", "."), "tests", "engine", "data")
model, ref = os.path.join(data, "l3h3.h5"), os.path.join(data, "l3h3-grad.h5")
tmp = tempfile.mkdtemp(prefix="weft-test-hf-ref-")


with h5py.File(model, "r") as f:
    cfg = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_ctx")}

hf = os.path.join(tmp, "hf")
os.makedirs(hf)
state = modeltest.gpt2_state(model)
T = cfg["n_ctx"]
for l in range(cfg["n_layer"]):
    state[f"transformer.h.{l}.attn.bias"] = np.tril(np.ones((1, 1, T, T), np.float32))
stwriter.write(os.path.join(hf, "model.safetensors"), state, metadata={"format": "pt"})
json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": cfg["n_layer"],
           "n_head": cfg["n_head"], "n_embd": cfg["n_embd"], "vocab_size": cfg["vocab_size"],
           "n_positions": T, "n_ctx": T, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-05, "tie_word_embeddings": True},
          open(os.path.join(hf, "config.json"), "w"))

weft("import", hf, "-o", f"{tmp}/imported.h5")
weft("grad", "--model", f"{tmp}/imported.h5", "--batch", ref, "-o", f"{tmp}/out.h5", "--logits")
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


def attr(a, k):
    v = a[k]
    return v.decode() if isinstance(v, bytes) else v


def check_against_reference(imported, ref, label):
    out_h5 = f"{tmp}/{label}-out.h5"
    weft("grad", "--model", imported, "--batch", ref, "-o", out_h5, "--logits")
    out, r = h5py.File(out_h5, "r"), h5py.File(ref, "r")
    assert abs(out["loss"][()] - r["loss"][()]) <= 1e-5 * abs(r["loss"][()]), f"{label}: loss"
    assert rel(out["logits"], r["logits"]) <= 1e-5, f"{label}: logits"
    names = []
    r["grad"].visit(lambda n: names.append(n) if isinstance(r["grad"][n], h5py.Dataset) else None)
    worst = 0.0
    for n in names:
        e = rel(out[n], r["grad"][n])
        worst = max(worst, e)
        assert e <= 1e-4, f"{label}: {n}: relative error {e:.3g}"
    return len(names), worst


# --- the Llama family ---------------------------------------------------------------
LLAMA = [  # reference, class, extra config.json, how RoPE is written, Hub buffers
    ("lgqa", "LlamaForCausalLM", {"attention_bias": False}, "rope_scaling", False),
    ("lbias", "Qwen2ForCausalLM", {"use_sliding_window": False, "sliding_window": 4096},
     "rope_scaling", False),
    ("lrope3", "LlamaForCausalLM", {}, "rope_parameters", True),
    ("lhd", "MistralForCausalLM", {}, "rope_scaling", False),
]
for name, arch, extra, rope_layout, buffers in LLAMA:
    model, ref = os.path.join(data, f"{name}.h5"), os.path.join(data, f"{name}-grad.h5")
    with h5py.File(model, "r") as f:
        a = {k: attr(f.attrs, k) for k in f.attrs}
        sd = {}
        f.visititems(lambda n, o: sd.__setitem__(n.replace("/", "."), o[...])
                     if isinstance(o, h5py.Dataset) else None)
    T = int(a["n_ctx"])
    cfg = {"architectures": [arch], "model_type": arch[:-len("ForCausalLM")].lower(),
           "hidden_size": int(a["n_embd"]), "intermediate_size": int(a["n_inner"]),
           "num_hidden_layers": int(a["n_layer"]), "num_attention_heads": int(a["n_head"]),
           "num_key_value_heads": int(a["n_kv_head"]), "head_dim": int(a["head_dim"]),
           "max_position_embeddings": T, "rms_norm_eps": float(a["rms_norm_eps"]),
           "vocab_size": int(a["vocab_size"]), "hidden_act": "silu",
           "tie_word_embeddings": bool(a["tie_word_embeddings"]), "torch_dtype": "float32"}
    rope = {}
    if "rope_scaling_type" in a:
        rope = {"rope_type": a["rope_scaling_type"], "factor": float(a["rope_scaling_factor"])}
        for k in ("low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
            if "rope_scaling_" + k in a:
                rope[k] = a["rope_scaling_" + k].item()
    if rope_layout == "rope_parameters":
        cfg["rope_parameters"] = {"rope_type": "default", **rope,
                                  "rope_theta": float(a["rope_theta"])}
    else:
        cfg["rope_theta"] = float(a["rope_theta"])
        cfg["rope_scaling"] = rope or None
    cfg.update(extra)
    if arch == "MistralForCausalLM":
        cfg["sliding_window"] = T  # attention within the window is full causal attention
    if buffers:
        for l in range(int(a["n_layer"])):
            sd[f"model.layers.{l}.self_attn.rotary_emb.inv_freq"] = np.ones(
                int(a["head_dim"]) // 2, np.float32)
    hf = os.path.join(tmp, name)
    os.makedirs(hf)
    stwriter.write(os.path.join(hf, "model.safetensors"), sd, metadata={"format": "pt"})
    json.dump(cfg, open(os.path.join(hf, "config.json"), "w"))
    imported = f"{tmp}/{name}-imported.h5"
    weft("import", hf, "-o", imported)
    with h5py.File(imported, "r") as f:
        b = {k: attr(f.attrs, k) for k in f.attrs}
    for k, v in a.items():  # one table: the engine's names and values
        if k != "tokenizer":
            assert k in b and b[k] == v, f"{name}: attribute {k}: {b.get(k)!r} != {v!r}"
    assert b["tokenizer"] == "none" and b["hf_architecture"] == arch, name
    assert ("sliding_window" in b) == (arch == "MistralForCausalLM"), name
    n, worst = check_against_reference(imported, ref, name)
    print(f"imported {arch} ({name}): loss, logits and {n} gradients match the float64 "
          f"reference (worst gradient error {worst:.2g})")

# --- Mistral: a window shorter than the sequence is refused by name ---------------
hf = os.path.join(tmp, "lhd")
cfg = json.load(open(os.path.join(hf, "config.json")))
cfg["sliding_window"] = cfg["max_position_embeddings"] - 1
json.dump(cfg, open(os.path.join(hf, "config.json"), "w"))
weft("import", hf, "-o", f"{tmp}/lhd-w.h5")
p = weft("grad", "--model", f"{tmp}/lhd-w.h5", "--batch", os.path.join(data, "lhd-grad.h5"),
        "-o", f"{tmp}/x.h5", check=False)
lines = p.stderr.strip().splitlines()
want = f"sliding_window = {cfg['sliding_window']}"
assert p.returncode == 1 and len(lines) == 1 and want in lines[0], p.stderr
print("a window shorter than the sequence: " + lines[0])
subprocess.run(["rm", "-rf", tmp])
