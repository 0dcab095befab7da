#!/usr/bin/python3
"""test_peft_llama.py: Llama-family LoRA adapters in and out.

Backbone: tests/engine/data/lgqa.h5 (grouped-query attention, untied head)
and its batch lgqa-grad.h5. An adapter on q_proj, v_proj, o_proj and
down_proj with nonzero A and B (r 4, alpha 8):

- As a PEFT folder written by stwriter.py (keys
  base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight, ...),
  `weft grad --adapter` gives loss, logits and every adapter gradient within
  1e-5 / 1e-4 of a float64 PyTorch reference (make-reference.py's Llama with
  W + s·B·A on the targeted modules, A and B the leaves).
- As a weft-adapter file (written here with h5py, the engine's layout
  /model/layers/<i>/self_attn/q_proj/lora_A): the same gradients bit for bit;
  `weft export-adapter` writes PEFT's names (target_modules ["q_proj",
  "v_proj", "o_proj", "down_proj"], fan_in_fan_out false) with its values,
  and that folder reads back to the same bits.
- `weft merge` (file or folder, the same bytes) folds s·B·A into the
  nn.Linear [out, in] weights: logits equal base + adapter within 1e-5.
- `weft eval` and `weft generate` read the folder as they read the file, and
  a tenant's init_adapter starts the worker from it.
- Refused in one line: a target Llama lacks, a GPT-2 key layout, a Llama
  adapter on a GPT-2 backbone and on a Llama backbone of other widths.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modeltest  # noqa: E402
import stwriter  # noqa: E402
from modeltest import refused, rel, weft  # noqa: E402

src = os.environ.get("top_srcdir", ".")
data = os.path.abspath(os.path.join(src, "tests", "engine", "data"))
base, batch = os.path.join(data, "lgqa.h5"), os.path.join(data, "lgqa-grad.h5")
spec = importlib.util.spec_from_file_location("make_reference",
                                              os.path.join(src, "scripts", "make-reference.py"))
ref_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref_model)
tmp = tempfile.mkdtemp(prefix="weft-test-peft-llama-")
r, alpha = 4, 8.0
MODS = ["self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.down_proj"]


cfg, names, P = ref_model.load_model(base)
L = cfg["n_layer"]
g = np.random.default_rng(11)
mats = {}
for l in range(L):
    for m in MODS:
        W = P[f"model/layers/{l}/{m.replace('.', '/')}/weight"]
        out_, in_ = W.shape
        mats[(l, m)] = ((g.standard_normal((r, in_)) * 0.2).astype(np.float32),
                        (g.standard_normal((out_, r)) * 0.2).astype(np.float32))

# --- the float64 reference: W + s·B·A, gradients with respect to A and B ----------
with h5py.File(batch, "r") as f:
    idx = torch.tensor(f["inputs"][...].astype(np.int64))
    tgt = torch.tensor(f["targets"][...].astype(np.int64))
Q = {n: p.detach() for n, p in P.items()}
leaves = {}
for (l, m), (A, B) in mats.items():
    a = torch.tensor(A.astype(np.float64), requires_grad=True)
    b = torch.tensor(B.astype(np.float64), requires_grad=True)
    leaves[(l, m)] = (a, b)
    w = f"model/layers/{l}/{m.replace('.', '/')}/weight"
    Q[w] = Q[w] + (alpha / r) * (b @ a)
ref_logits, ref_loss = ref_model.forward(cfg, Q, idx, tgt)
ref_loss.backward()


def peft_dir(name, tensors=None, **over):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    c = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
         "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"], "lora_dropout": 0.0,
         "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "modules_to_save": None,
         "use_dora": False, "base_model_name_or_path": "lgqa", "inference_mode": True}
    c.update(over)
    json.dump(c, open(os.path.join(d, "adapter_config.json"), "w"))
    if tensors is None:
        tensors = {}
        for (l, m), (A, B) in mats.items():
            tensors[f"base_model.model.model.layers.{l}.{m}.lora_A.weight"] = A
            tensors[f"base_model.model.model.layers.{l}.{m}.lora_B.weight"] = B
    stwriter.write(os.path.join(d, "adapter_model.safetensors"), tensors, metadata={"format": "pt"})
    return d


def grad(adapter, out, model=base):
    weft("grad", "--model", model, "--adapter", adapter, "--batch", batch, "-o", out, "--logits")
    return h5py.File(out, "r")


# --- a PEFT folder against the reference ---------------------------------------------
peft = peft_dir("peft")
got = grad(peft, f"{tmp}/peft-grad.h5")
assert abs(got["loss"][()] - ref_loss.item()) <= 1e-5 * abs(ref_loss.item()), "loss"
assert rel(got["logits"], ref_logits.detach().numpy()) <= 1e-5, "logits"
worst = 0.0
for (l, m), (a, b) in leaves.items():
    for x, t in (("A", a), ("B", b)):
        n = f"model/layers/{l}/{m.replace('.', '/')}/lora_{x}"
        e = rel(got[n], t.grad.numpy())
        worst = max(worst, e)
        assert e <= 1e-4, f"{n}: relative error {e:.3g}"
print(f"Llama PEFT folder: loss, logits and {2 * len(leaves)} adapter gradients match the "
      f"float64 reference (worst {worst:.2g})")
modeltest.checks += 3

# --- a weft-adapter file: the same bits; export-adapter -------------------------------
sha = subprocess.run(["sha256sum", base], capture_output=True, text=True, check=True).stdout.split()[0]
h5 = f"{tmp}/acme.h5"
with h5py.File(h5, "w") as f:
    f.attrs.update({"format": "weft-adapter", "version": 1, "tenant": "acme", "r": r,
                    "alpha": alpha, "use_rslora": 0, "base_sha256": sha, "steps": 0, "seed": 1,
                    "targets": ",".join(MODS)})
    for (l, m), (A, B) in mats.items():
        f[f"model/layers/{l}/{m.replace('.', '/')}/lora_A"] = A
        f[f"model/layers/{l}/{m.replace('.', '/')}/lora_B"] = B
want = grad(h5, f"{tmp}/h5-grad.h5")
for k in ["logits"] + [f"model/layers/{l}/{m.replace('.', '/')}/lora_{x}"
                       for (l, m) in mats for x in "AB"]:
    assert np.array_equal(got[k][...], want[k][...]), f"{k}: PEFT folder and weft-adapter differ"
modeltest.checks += 1

weft("export-adapter", h5, "-o", f"{tmp}/out", "--base-model", "org/lgqa")
c = json.load(open(f"{tmp}/out/adapter_config.json"))
assert c["target_modules"] == ["q_proj", "v_proj", "o_proj", "down_proj"], c["target_modules"]
assert c["fan_in_fan_out"] is False and c["peft_type"] == "LORA" and c["r"] == r
assert c["lora_alpha"] == alpha and c["base_model_name_or_path"] == "org/lgqa"
t, meta, _, order = stwriter.read(f"{tmp}/out/adapter_model.safetensors")
assert len(t) == 2 * len(mats), sorted(t)
for (l, m), (A, B) in mats.items():
    k = f"base_model.model.model.layers.{l}.{m}"
    dt, shape, raw = t[k + ".lora_A.weight"]
    assert dt == "F32" and shape == [r, A.shape[1]] and raw == A.astype("<f4").tobytes(), k
    dt, shape, raw = t[k + ".lora_B.weight"]
    assert shape == [B.shape[0], r] and raw == B.astype("<f4").tobytes(), k
back = grad(f"{tmp}/out", f"{tmp}/out-grad.h5")
assert np.array_equal(back["logits"][...], want["logits"][...])
modeltest.checks += 2

# --- merge ------------------------------------------------------------------------------
weft("merge", "--model", base, "--adapter", h5, "-o", f"{tmp}/merged.h5")
weft("merge", "--model", base, "--adapter", peft, "-o", f"{tmp}/merged2.h5")
assert open(f"{tmp}/merged.h5", "rb").read() == open(f"{tmp}/merged2.h5", "rb").read()
weft("grad", "--model", f"{tmp}/merged.h5", "--batch", batch, "-o", f"{tmp}/m.h5", "--logits")
mg = h5py.File(f"{tmp}/m.h5", "r")
e = rel(mg["logits"], want["logits"])
assert e <= 1e-5, f"merged logits: relative error {e:.3g}"
with h5py.File(base, "r") as b, h5py.File(f"{tmp}/merged.h5", "r") as f:  # nn.Linear: W += s·B·A
    A, B = mats[(1, "self_attn.v_proj")]
    delta = (alpha / r) * (B.astype(np.float64) @ A.astype(np.float64))
    w = "model/layers/1/self_attn/v_proj/weight"
    assert np.abs(f[w][...] - b[w][...] - delta).max() <= 1e-6
    assert np.array_equal(f["model/layers/1/self_attn/k_proj/weight"][...],
                          b["model/layers/1/self_attn/k_proj/weight"][...])
print(f"Llama merge: logits equal base + adapter (relative error {e:.2g})")
modeltest.checks += 2
# merge needs no Hugging Face class: a q_proj-only bias (which export refuses) merges
weft("init-model", "--preset", "llama-tiny", "--layers", "2", "--heads", "4", "--kv-heads", "2",
     "--embd", "32", "--inner", "48", "--vocab", "300", "--ctx", "12", "--bias", "q",
     "-o", f"{tmp}/qbias.h5")
weft("merge", "--model", f"{tmp}/qbias.h5", "--adapter", peft, "-o", f"{tmp}/qbias-m.h5")
modeltest.checks += 1

# --- eval and generate read the folder as the file -----------------------------------
open(f"{tmp}/c.txt", "w").write("the quick brown fox jumps over the lazy dog\n---\n" * 200)
weft("shard", f"{tmp}/c.txt", "-o", f"{tmp}/c.h5", "--val-fraction", "0.2")
outs = []
for a in (h5, peft):
    e = weft("eval", "--model", base, "--adapter", a, "--data", f"{tmp}/c.h5", "--windows", "2",
             "--seq-len", "12").stdout
    gtext = subprocess.run(["weft", "generate", "--model", base, "--adapter", a, "--prompt",
                            "the", "--tokens", "8", "--seed", "3"],
                           capture_output=True, check=True).stdout
    outs.append((e, gtext))
assert outs[0] == outs[1] and outs[0][0], outs
modeltest.checks += 1

# --- a tenant's init_adapter: the worker starts from the PEFT folder --------------------
with open(f"{tmp}/night.cfg", "w") as f:
    f.write(f'''name = "night"; mode = "lora"; model = "{base}"; output = "{tmp}/night";
train = {{ steps = 1; batch_size = 2; seq_len = 12; lr = 1e-12; warmup = 0; eval_every = 0;
          checkpoint_every = 0; }};
lora = {{ r = {r}; alpha = {alpha}; targets = ["self_attn.q_proj", "self_attn.v_proj",
          "self_attn.o_proj", "mlp.down_proj"]; }};
resources = {{ ranks = 1; threads = 1; }};
tenants = ( {{ name = "acme"; data = "{tmp}/c.h5"; init_adapter = "{peft}"; }} );
''')
p = subprocess.run(["mpirun", "-np", "1", "weft-worker", f"{tmp}/night.cfg"], capture_output=True,
                   text=True)
assert p.returncode == 0, p.stdout + p.stderr
with h5py.File(f"{tmp}/night/acme/adapter.h5", "r") as f:
    for (l, m), (A, B) in mats.items():
        n = f"model/layers/{l}/{m.replace('.', '/')}"
        assert np.allclose(f[n + "/lora_A"][...], A, rtol=1e-6, atol=1e-9), n
        assert np.allclose(f[n + "/lora_B"][...], B, rtol=1e-6, atol=1e-9), n
modeltest.checks += 1


# --- refusals ---------------------------------------------------------------------------
def grad_refused(adapter, phrase, model=base):
    refused(["grad", "--model", model, "--adapter", adapter, "--batch", batch, "-o",
             f"{tmp}/x.h5"], phrase)


grad_refused(peft_dir("bad-target", target_modules=["q_proj", "v_proj", "o_proj", "down_proj",
                                                     "c_attn"]),
             '"c_attn", which LlamaForCausalLM lacks')
grad_refused(peft_dir("bad-keys", tensors={
    f"base_model.model.transformer.h.{l}.{m}.lora_{x}.weight": mats[(l, m)][i]
    for (l, m) in mats for i, x in enumerate("AB")}), "not a LoRA matrix weft knows")
weft("init-model", "--preset", "tiny", "--vocab", "300", "--ctx", "12", "-o", f"{tmp}/gpt2.h5")
grad_refused(peft, "self_attn.q_proj", model=f"{tmp}/gpt2.h5")
refused(["merge", "--model", f"{tmp}/gpt2.h5", "--adapter", peft, "-o", f"{tmp}/x.h5"],
        "Llama-family adapter")
assert not os.path.exists(f"{tmp}/x.h5")
weft("init-model", "--preset", "llama-tiny", "--layers", "2", "--heads", "4", "--kv-heads", "1",
     "--embd", "32", "--inner", "48", "--vocab", "300", "--ctx", "12", "-o", f"{tmp}/kv1.h5")
grad_refused(peft, "self_attn.v_proj is 32 -> 16, but this llama backbone's is 32 -> 8",
             model=f"{tmp}/kv1.h5")
shutil.rmtree(tmp)
print(f"Llama PEFT adapters and merge: {modeltest.checks} checks passed")
