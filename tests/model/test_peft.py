#!/usr/bin/python3
"""test_peft.py: PEFT adapters in and out, and `weft merge`.

- A PEFT folder written by stwriter.py from acme's matrices (as PEFT saves a
  GPT-2 LoRA: base_model.model.transformer.h.<i>.<module>.lora_A.weight,
  fan_in_fan_out) is read by `weft grad --adapter`: loss, logits and every
  adapter gradient match the PyTorch reference acme-ref.h5 (1e-5 / 1e-4) and
  equal, bit for bit, what acme.h5 itself gives. rsLoRA's alpha/sqrt(r) is
  taken from the config.
- `weft export-adapter` writes PEFT's config keys and tensor names, with
  acme's values; the folder reads back to the same gradients.
- `weft merge` (adapter file or PEFT folder) gives logits equal to base +
  adapter to float32 rounding, and the two merges are the same bytes.
- Every setting weft cannot represent is refused by name, in one line.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modeltest  # noqa: E402
import stwriter  # noqa: E402
from modeltest import refused, rel, weft  # noqa: E402

data = os.path.join(os.environ.get("top_srcdir", "."), "tests", "lora", "data")
base, acme, batch = (os.path.join(data, n) for n in ("base.h5", "acme.h5", "acme-ref.h5"))
tmp = tempfile.mkdtemp(prefix="weft-test-peft-")
MODULES = ["attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"]


with h5py.File(acme, "r") as f:
    r, alpha = int(f.attrs["r"]), float(f.attrs["alpha"])
    L = len(f["h"])
    mats = {(l, m): (f[f"h/{l}/{m}/lora_A"][...], f[f"h/{l}/{m}/lora_B"][...])
            for l in range(L) for m in MODULES}


def peft_dir(name, config=None, tensors=None, **cfg_over):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
           "target_modules": ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"],
           "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": True, "use_rslora": False,
           "modules_to_save": None, "use_dora": False, "rank_pattern": {}, "alpha_pattern": {},
           "base_model_name_or_path": "base", "inference_mode": True}
    cfg.update(cfg_over)
    json.dump(config or cfg, open(os.path.join(d, "adapter_config.json"), "w"))
    if tensors is None:
        tensors = {}
        for (l, m), (A, B) in mats.items():
            k = f"base_model.model.transformer.h.{l}.{m.replace('/', '.')}"
            tensors[k + ".lora_A.weight"] = A
            tensors[k + ".lora_B.weight"] = B
    stwriter.write(os.path.join(d, "adapter_model.safetensors"), tensors, metadata={"format": "pt"})
    return d


def grad(adapter, out, model=base):
    weft("grad", "--model", model, "--adapter", adapter, "--batch", batch, "-o", out, "--logits")
    return h5py.File(out, "r")


# --- a PEFT folder against the reference, and against acme.h5 bit for bit -------
want = grad(acme, f"{tmp}/h5.h5")
got = grad(peft_dir("peft"), f"{tmp}/peft.h5")
ref = h5py.File(batch, "r")
assert abs(got["loss"][()] - ref["loss"][()]) <= 1e-5 * abs(ref["loss"][()]), "loss"
assert rel(got["logits"], ref["logits"]) <= 1e-5, "logits"
names = []
ref["grad"].visit(lambda n: names.append(n) if isinstance(ref["grad"][n], h5py.Dataset) else None)
assert len(names) == L * 4 * 2
for n in names:
    assert rel(got[n], ref["grad"][n]) <= 1e-4, n
    assert np.array_equal(got[n][...], want[n][...]), f"{n}: PEFT and weft-adapter differ"
assert np.array_equal(got["logits"][...], want["logits"][...])
modeltest.checks += 3

# weft generate reads the PEFT folder too: the same text as with acme.h5
gen = [subprocess.run(["weft", "generate", "--model", base, "--adapter", a, "--prompt", "ab",
                       "--tokens", "12", "--seed", "2"], capture_output=True, check=True).stdout
       for a in (acme, os.path.join(tmp, "peft"))]
assert gen[0] == gen[1] and gen[0], gen
modeltest.checks += 1

# rsLoRA: alpha' = (alpha/r)·sqrt(r) gives the same scaling, so the same logits
got = grad(peft_dir("rslora", lora_alpha=alpha / r * np.sqrt(r), use_rslora=True), f"{tmp}/rs.h5")
assert rel(got["logits"], want["logits"]) <= 1e-6, "rsLoRA scaling"
# and the plain alpha with rsLoRA on does differ (the setting is read)
got = grad(peft_dir("rslora2", use_rslora=True), f"{tmp}/rs2.h5")
assert rel(got["logits"], want["logits"]) > 1e-4, "use_rslora ignored"
modeltest.checks += 2

# --- export-adapter -------------------------------------------------------------
weft("export-adapter", acme, "-o", f"{tmp}/out", "--base-model", "org/base")
cfg = json.load(open(f"{tmp}/out/adapter_config.json"))
assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["r"] == r
assert cfg["lora_alpha"] == alpha and cfg["bias"] == "none" and cfg["use_rslora"] is False
assert cfg["fan_in_fan_out"] is True and cfg["inference_mode"] is True
assert cfg["target_modules"] == ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"], cfg["target_modules"]
assert cfg["base_model_name_or_path"] == "org/base" and "lora_dropout" in cfg
t, meta, hlen, _ = stwriter.read(f"{tmp}/out/adapter_model.safetensors")
assert meta == {"format": "pt"} and (8 + hlen) % 8 == 0 and len(t) == L * 4 * 2
for (l, m), (A, B) in mats.items():
    k = f"base_model.model.transformer.h.{l}.{m.replace('/', '.')}"
    dt, shape, raw = t[k + ".lora_A.weight"]
    assert dt == "F32" and shape == [r, A.shape[1]] and raw == A.astype("<f4").tobytes()
    dt, shape, raw = t[k + ".lora_B.weight"]
    assert shape == [B.shape[0], r] and raw == B.astype("<f4").tobytes()
got = grad(f"{tmp}/out", f"{tmp}/out.h5")
assert np.array_equal(got["logits"][...], want["logits"][...])
weft("export-adapter", acme, "-o", f"{tmp}/out16", "--dtype", "bf16")
t16, _, _, _ = stwriter.read(f"{tmp}/out16/adapter_model.safetensors")
assert all(v[0] == "BF16" for v in t16.values())
# a partial target list maps to PEFT's names
with h5py.File(acme, "r") as f, h5py.File(f"{tmp}/two.h5", "w") as g:
    for k, v in f.attrs.items():
        g.attrs[k] = v
    g.attrs["targets"] = "attn.c_proj,mlp.c_fc"
    for l in range(L):
        for m in ("attn/c_proj", "mlp/c_fc"):
            g[f"h/{l}/{m}/lora_A"] = f[f"h/{l}/{m}/lora_A"][...]
            g[f"h/{l}/{m}/lora_B"] = f[f"h/{l}/{m}/lora_B"][...]
weft("export-adapter", f"{tmp}/two.h5", "-o", f"{tmp}/two")
assert json.load(open(f"{tmp}/two/adapter_config.json"))["target_modules"] == ["attn.c_proj", "c_fc"]
modeltest.checks += 3

# --- merge ------------------------------------------------------------------------
weft("merge", "--model", base, "--adapter", acme, "-o", f"{tmp}/merged.h5")
weft("merge", "--model", base, "--adapter", f"{tmp}/out", "-o", f"{tmp}/merged2.h5")
assert open(f"{tmp}/merged.h5", "rb").read() == open(f"{tmp}/merged2.h5", "rb").read()
weft("grad", "--model", f"{tmp}/merged.h5", "--batch", batch, "-o", f"{tmp}/m.h5", "--logits")
m = h5py.File(f"{tmp}/m.h5", "r")
e = rel(m["logits"], want["logits"])
assert e <= 1e-5, f"merged logits: relative error {e:.3g}"
assert abs(m["loss"][()] - want["loss"][()]) <= 1e-5 * abs(want["loss"][()])
modeltest.checks += 2
with h5py.File(base, "r") as b, h5py.File(f"{tmp}/merged.h5", "r") as g:  # Conv1D: W += s·(B·A)ᵀ
    A, B = mats[(1, "mlp/c_fc")]
    delta = (alpha / r) * (B.astype(np.float64) @ A.astype(np.float64)).T
    d = g["h/1/mlp/c_fc/weight"][...] - b["h/1/mlp/c_fc/weight"][...]
    assert np.abs(d - delta).max() <= 1e-6 * max(1.0, np.abs(b["h/1/mlp/c_fc/weight"][...]).max())
    assert np.array_equal(g["wte"][...], b["wte"][...])
modeltest.checks += 1
weft("init-model", "--preset", "tiny", "--layers", "3", "--heads", "3", "--embd", "48",
     "--vocab", "300", "--ctx", "20", "--seed", "4", "-o", f"{tmp}/other.h5")


# --- refusals ------------------------------------------------------------------------
refused(["merge", "--model", f"{tmp}/other.h5", "--adapter", acme, "-o", f"{tmp}/x.h5"], "sha256")
assert not os.path.exists(f"{tmp}/x.h5")


def bad_grad(name, phrase, **kw):
    d = peft_dir("bad-" + name, **kw)
    refused(["grad", "--model", base, "--adapter", d, "--batch", batch, "-o", f"{tmp}/x.h5"], phrase)


bad_grad("dora", "use_dora", use_dora=True)
bad_grad("bias", "bias \"all\"", bias="all")
bad_grad("save", "modules_to_save", modules_to_save=["lm_head"])
bad_grad("rank", "rank_pattern", rank_pattern={"c_fc": 8})
bad_grad("alpha", "alpha_pattern", alpha_pattern={"c_attn": 32})
bad_grad("layers", "layers_to_transform", layers_to_transform=[0])
bad_grad("target", "lacks", target_modules=["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj", "lm_head"])
bad_grad("regex", "regular expression", target_modules=".*c_attn")
bad_grad("type", "peft_type", peft_type="PREFIX_TUNING")
bad_grad("unlisted", "does not list", target_modules=["c_attn", "attn.c_proj", "c_fc"])
extra = {"base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector": np.ones(144, np.float32)}
d = peft_dir("bad-key", tensors={**{f"base_model.model.transformer.h.{l}.{m.replace('/', '.')}.lora_{x}.weight":
                                    mats[(l, m)][i] for (l, m) in mats for i, x in enumerate("AB")}, **extra})
refused(["grad", "--model", base, "--adapter", d, "--batch", batch, "-o", f"{tmp}/x.h5"], "lora_magnitude_vector")
d = peft_dir("bad-missing")
os.remove(os.path.join(d, "adapter_model.safetensors"))
refused(["grad", "--model", base, "--adapter", d, "--batch", batch, "-o", f"{tmp}/x.h5"], "adapter_model.safetensors")
weft("init-model", "--preset", "tiny", "--layers", "3", "--heads", "2", "--embd", "32",
     "--vocab", "300", "--ctx", "20", "-o", f"{tmp}/narrow.h5")
refused(["grad", "--model", f"{tmp}/narrow.h5", "--adapter", f"{tmp}/peft", "--batch", batch, "-o",
         f"{tmp}/x.h5"], "width")
shutil.rmtree(tmp)
print(f"PEFT adapters and merge: {modeltest.checks} checks passed")
