#!/usr/bin/python3
"""test_hf_import.py: `weft import` and `weft export` against checkpoints
written by an independent writer (stwriter.py: json + struct).

GPT-2: Hub-style keys (transformer. prefix, attn.bias buffers, a tied
lm_head) and bare keys import to the model's exact values; F16, BF16 and F64
widen exactly (F64 rounds); a sharded checkpoint imports to the same bytes
as the single file; import(export(m)) is m byte for byte; a BF16 export
rounds to nearest even with a padded header and {"format": "pt"}. Llama,
Qwen2 and Mistral: both RoPE layouts, tied and untied heads, Qwen2's biases
and Mistral's sliding window become the documented attributes and come back
out unchanged. Tokenizer files travel with the model. Every refusal gives
one line and exit status 1.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modeltest  # noqa: E402
import stwriter  # noqa: E402
from modeltest import gpt2_state, h5_tensors, refused, weft  # noqa: E402

src = os.environ.get("top_srcdir", ".")
tiny = os.path.join(src, "tests", "engine", "data", "tiny.h5")
tmp = tempfile.mkdtemp(prefix="weft-test-hf-")


def gpt2_dir(name, sd, config_extra=None, hub=True, **kw):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    with h5py.File(tiny, "r") as f:
        cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
               "n_layer": int(f.attrs["n_layer"]), "n_head": int(f.attrs["n_head"]),
               "n_embd": int(f.attrs["n_embd"]), "vocab_size": int(f.attrs["vocab_size"]),
               "n_positions": int(f.attrs["n_ctx"]), "activation_function": "gelu_new",
               "layer_norm_epsilon": 1e-5}
    cfg.update(config_extra or {})
    with open(os.path.join(d, "config.json"), "w") as fp:
        json.dump(cfg, fp)
    t = dict(sd)
    if hub:  # the causal-mask buffers Hub files carry
        T = cfg["n_positions"]
        for l in range(cfg["n_layer"]):
            t[f"transformer.h.{l}.attn.bias"] = np.tril(np.ones((1, 1, T, T), np.float32))
            t[f"transformer.h.{l}.attn.masked_bias"] = np.array(-1e4, np.float32)
    stwriter.write(os.path.join(d, "model.safetensors"), t, metadata={"format": "pt"}, **kw)
    return d


def same_values(path, want, convert=lambda a: a):
    got = h5_tensors(path)
    for k, v in want.items():
        w = convert(np.asarray(v)).astype(np.float32)
        assert got[k].shape == w.shape, k
        assert np.array_equal(got[k].view(np.uint32), w.view(np.uint32)), f"{k} differs"


ref = h5_tensors(tiny)
sd = gpt2_state(tiny)

# --- GPT-2, Hub style (prefix, buffers, tied lm_head saved) --------------------
d = gpt2_dir("hub", {**sd, "lm_head.weight": sd["transformer.wte.weight"]})
weft("import", d, "-o", f"{tmp}/hub.h5")
same_values(f"{tmp}/hub.h5", ref)
with h5py.File(f"{tmp}/hub.h5", "r") as f:
    assert f.attrs["version"] == 1 and f.attrs["arch"] in (b"gpt2", "gpt2")
    assert f.attrs["tokenizer"] in (b"byte", "byte")  # vocab 257, no tokenizer files
modeltest.checks += 1

# bare keys (no transformer. prefix), no buffers
bare = {k[len("transformer."):]: v for k, v in sd.items()}
d = gpt2_dir("bare", bare, hub=False)
weft("import", d, "-o", f"{tmp}/bare.h5")
assert open(f"{tmp}/bare.h5", "rb").read() == open(f"{tmp}/hub.h5", "rb").read()
modeltest.checks += 1

# --- widening: F16 (with subnormals), BF16, F64 -------------------------------
rng = np.random.default_rng(1)
for dt, conv in (("F16", lambda a: a.astype(np.float16).astype(np.float32)),
                 ("BF16", lambda a: stwriter.decode("BF16", a.shape, stwriter.encode(a, "BF16"))),
                 ("F64", lambda a: a.astype(np.float64).astype(np.float32))):
    s = {k: v.astype(np.float64) + (rng.standard_normal(v.shape) * 1e-9 if dt == "F64" else 0)
         for k, v in sd.items()}
    if dt == "F16":  # subnormal halves and their neighbours
        w = s["transformer.wpe.weight"]
        w.flat[:6] = [6e-8, -6e-8, 3e-5, 6.1e-5, -65504.0, 0.0]
    d = gpt2_dir(dt.lower(), s, dtype=dt)
    weft("import", d, "-o", f"{tmp}/{dt}.h5")
    want = {("wte" if k.endswith("wte.weight") else "wpe" if k.endswith("wpe.weight")
             else k[len("transformer."):].replace(".", "/")): conv(v) for k, v in s.items()}
    same_values(f"{tmp}/{dt}.h5", want)
    modeltest.checks += 1

# --- sharded checkpoint: the same bytes as the single file ---------------------
d = os.path.join(tmp, "sharded")
os.makedirs(d)
shutil.copy(os.path.join(tmp, "bare", "config.json"), d)
keys = list(sd)
half = len(keys) // 2
parts = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
wmap = {}
for fname, ks in parts.items():
    stwriter.write(os.path.join(d, fname), {k: sd[k] for k in ks}, metadata={"format": "pt"})
    wmap.update({k: fname for k in ks})
index = {"metadata": {"total_size": 0}, "weight_map": wmap}
with open(os.path.join(d, "model.safetensors.index.json"), "w") as fp:
    json.dump(index, fp)
weft("import", d, "-o", f"{tmp}/sharded.h5")
assert open(f"{tmp}/sharded.h5", "rb").read() == open(f"{tmp}/hub.h5", "rb").read()
modeltest.checks += 1

# --- export: import(export(m)) == m, bytes; BF16 export --------------------------
weft("init-model", "--preset", "tiny", "--seed", "5", "-o", f"{tmp}/m.h5")
weft("export", f"{tmp}/m.h5", "-o", f"{tmp}/m-hf")
weft("import", f"{tmp}/m-hf", "-o", f"{tmp}/m-back.h5")
assert open(f"{tmp}/m.h5", "rb").read() == open(f"{tmp}/m-back.h5", "rb").read(), "round trip"
t, meta, hlen, order = stwriter.read(f"{tmp}/m-hf/model.safetensors")
assert meta == {"format": "pt"} and (8 + hlen) % 8 == 0
assert "transformer.h.0.attn.c_attn.weight" in t and "lm_head.weight" not in t
cfg = json.load(open(f"{tmp}/m-hf/config.json"))
assert cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["n_positions"] == 32
modeltest.checks += 1
weft("export", f"{tmp}/m.h5", "-o", f"{tmp}/m-bf16", "--dtype", "bf16")
t16, meta, hlen, _ = stwriter.read(f"{tmp}/m-bf16/model.safetensors")
m = h5_tensors(f"{tmp}/m.h5")
for k, (dt, shape, raw) in t16.items():
    assert dt == "BF16"
    h5name = {"transformer.wte.weight": "wte", "transformer.wpe.weight": "wpe"}.get(
        k, k[len("transformer."):].replace(".", "/"))
    assert raw == stwriter.encode(m[h5name], "BF16"), f"{k}: not round-to-nearest-even"
assert (8 + hlen) % 8 == 0 and json.load(open(f"{tmp}/m-bf16/config.json"))["torch_dtype"] == "bfloat16"
modeltest.checks += 1

# --- the Llama family ----------------------------------------------------------
def llama_dir(name, arch, tied, rope, extra=None, bias=False, obias=False, hub_buffers=False):
    C, L, NH, NKV, hd, I, V, T = 32, 2, 4, 2, 8, 48, 64, 16
    cfg = {"architectures": [arch], "hidden_size": C, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": hd,
           "intermediate_size": I, "vocab_size": V, "max_position_embeddings": T,
           "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": tied}
    cfg.update(rope)
    cfg.update(extra or {})
    g = np.random.default_rng(len(name))
    r = lambda *s: g.standard_normal(s).astype(np.float32)
    sd = {"model.embed_tokens.weight": r(V, C)}
    for l in range(L):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = r(C)
        for proj, o, i in (("q", NH * hd, C), ("k", NKV * hd, C), ("v", NKV * hd, C), ("o", C, NH * hd)):
            sd[f"{p}self_attn.{proj}_proj.weight"] = r(o, i)
            if (bias and proj != "o") or (obias and proj == "o"):
                sd[f"{p}self_attn.{proj}_proj.bias"] = r(o)
        sd[p + "post_attention_layernorm.weight"] = r(C)
        sd[p + "mlp.gate_proj.weight"] = r(I, C)
        sd[p + "mlp.up_proj.weight"] = r(I, C)
        sd[p + "mlp.down_proj.weight"] = r(C, I)
    sd["model.norm.weight"] = r(C)
    if not tied:
        sd["lm_head.weight"] = r(V, C)
    d = os.path.join(tmp, name)
    os.makedirs(d)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    extra_t = {f"model.layers.0.self_attn.rotary_emb.inv_freq": r(hd // 2)} if hub_buffers else {}
    stwriter.write(os.path.join(d, "model.safetensors"), {**sd, **extra_t}, dtype="BF16")
    return d, sd, cfg


llama3 = {"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
newer = {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
cases = [
    ("llama-old", "LlamaForCausalLM", True, llama3, None, {}),
    ("llama-new", "LlamaForCausalLM", False, newer, None, {}),
    ("llama-linear", "LlamaForCausalLM", False, {"rope_theta": 10000.0,
     "rope_scaling": {"type": "linear", "factor": 2.0}}, {"attention_bias": True}, {"bias": True, "obias": True}),
    ("qwen2", "Qwen2ForCausalLM", True, {"rope_theta": 1000000.0, "rope_scaling": None},
     {"use_sliding_window": False, "sliding_window": 4096}, {"bias": True, "hub_buffers": True}),
    ("mistral", "MistralForCausalLM", False, {"rope_theta": 1e6}, {"sliding_window": 4096}, {}),
]
for name, arch, tied, rope, extra, kw in cases:
    d, sdl, cfg = llama_dir(name, arch, tied, rope, extra, **kw)
    weft("import", d, "-o", f"{tmp}/{name}.h5")
    with h5py.File(f"{tmp}/{name}.h5", "r") as f:
        a = f.attrs
        assert a["version"] == 2 and a["arch"] in (b"llama", "llama"), name
        assert (a["n_kv_head"], a["head_dim"], a["n_inner"], a["tie_word_embeddings"]) == (2, 8, 48, int(tied))
        assert a["rms_norm_eps"] == 1e-5
        if "rope_scaling" in rope and rope["rope_scaling"] and "type" in rope["rope_scaling"]:
            assert a["rope_scaling_type"] in (b"linear", "linear") and a["rope_scaling_factor"] == 2.0
            assert "rope_scaling_low_freq_factor" not in a
        elif name.startswith("llama"):
            assert a["rope_theta"] == 500000.0 and a["rope_scaling_type"] in (b"llama3", "llama3")
            assert (a["rope_scaling_factor"], a["rope_scaling_low_freq_factor"],
                    a["rope_scaling_high_freq_factor"],
                    a["rope_scaling_original_max_position_embeddings"]) == (8.0, 1.0, 4.0, 8192)
        else:
            assert "rope_scaling_type" not in a
        assert ("sliding_window" in a) == (name == "mistral")
        assert ("lm_head" in f) == (not tied)
        assert ("model/layers/0/self_attn/q_proj/bias" in f) == bool(kw.get("bias"))
        assert ("model/layers/0/self_attn/o_proj/bias" in f) == bool(kw.get("obias"))
        for k, v in sdl.items():
            want = stwriter.decode("BF16", v.shape, stwriter.encode(v, "BF16"))
            assert np.array_equal(f[k.replace(".", "/")][...].view(np.uint32), want.view(np.uint32)), k
    weft("export", f"{tmp}/{name}.h5", "-o", f"{tmp}/{name}-out", "--dtype", "bf16")
    t, _, _, _ = stwriter.read(f"{tmp}/{name}-out/model.safetensors")
    assert set(t) == set(sdl), f"{name}: exported keys {set(t) ^ set(sdl)}"
    orig, _, _, _ = stwriter.read(os.path.join(d, "model.safetensors"))
    for k in sdl:
        assert t[k][2] == orig[k][2], f"{name}: {k} not bitwise after export"
    out_cfg = json.load(open(f"{tmp}/{name}-out/config.json"))
    assert out_cfg["architectures"] == [arch] and out_cfg["tie_word_embeddings"] == tied
    weft("import", f"{tmp}/{name}-out", "-o", f"{tmp}/{name}-back.h5")
    assert open(f"{tmp}/{name}-back.h5", "rb").read() == open(f"{tmp}/{name}.h5", "rb").read(), name
    modeltest.checks += 1

# engine-written Llama models: import(export(m)) is m byte for byte (one attribute
# table); the class is the one the biases fit; biases no class has are refused
for bias, arch in (("none", "LlamaForCausalLM"), ("q,k,v", "Qwen2ForCausalLM"),
                   ("q,k,v,o,gate,up,down", "LlamaForCausalLM")):
    weft("init-model", "--preset", "llama-tiny", "--vocab", "300", "--bias", bias, "--tie", "0",
         "--rope-scaling", "llama3:8:1:4:16", "-o", f"{tmp}/e.h5")
    shutil.rmtree(f"{tmp}/e-hf", ignore_errors=True)
    weft("export", f"{tmp}/e.h5", "-o", f"{tmp}/e-hf")
    assert json.load(open(f"{tmp}/e-hf/config.json"))["architectures"] == [arch], bias
    weft("import", f"{tmp}/e-hf", "-o", f"{tmp}/e-back.h5")
    assert open(f"{tmp}/e.h5", "rb").read() == open(f"{tmp}/e-back.h5", "rb").read(), bias
    modeltest.checks += 1
weft("init-model", "--preset", "llama-tiny", "--vocab", "300", "--bias", "q", "-o", f"{tmp}/e.h5")
refused(["export", f"{tmp}/e.h5", "-o", f"{tmp}/e-q"], "biases on some of q_proj")

# --- tokenizer files travel ----------------------------------------------------
d = gpt2_dir("tok", sd)
tj = json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}).encode()
open(os.path.join(d, "tokenizer.json"), "wb").write(tj)
weft("import", d, "-o", f"{tmp}/tok.h5")
with h5py.File(f"{tmp}/tok.h5", "r") as f:
    assert f["tokenizer/tokenizer.json"][...].tobytes() == tj
    assert f["tokenizer/tokenizer.json"].dtype == np.uint8
    assert f.attrs["tokenizer"] in (b"bpe", "bpe")
    sha = f.attrs["tokenizer_sha256"]
    assert (sha.decode() if isinstance(sha, bytes) else sha) == hashlib.sha256(tj).hexdigest()
weft("export", f"{tmp}/tok.h5", "-o", f"{tmp}/tok-out")
assert open(f"{tmp}/tok-out/tokenizer.json", "rb").read() == tj
d = gpt2_dir("vm", sd)
vocab, merges = b'{"a": 0, "b": 1}', b"#version: 0.2\na b\n"
open(os.path.join(d, "vocab.json"), "wb").write(vocab)
open(os.path.join(d, "merges.txt"), "wb").write(merges)
weft("import", d, "-o", f"{tmp}/vm.h5")
with h5py.File(f"{tmp}/vm.h5", "r") as f:
    sha = f.attrs["tokenizer_sha256"]
    assert (sha.decode() if isinstance(sha, bytes) else sha) == hashlib.sha256(vocab + merges).hexdigest()
    assert "tokenizer/tokenizer.json" not in f
weft("export", f"{tmp}/vm.h5", "-o", f"{tmp}/vm-out")
assert open(f"{tmp}/vm-out/vocab.json", "rb").read() == vocab
assert open(f"{tmp}/vm-out/merges.txt", "rb").read() == merges
modeltest.checks += 1

# --- refusals: one line each -----------------------------------------------------
def bad(name, phrase, sd_=None, **kw):
    d = gpt2_dir("bad-" + name, sd if sd_ is None else sd_, **kw)
    refused(["import", d, "-o", f"{tmp}/x.h5"], phrase)
    assert not os.path.exists(f"{tmp}/x.h5") and not os.path.exists(f"{tmp}/x.h5.tmp")


def patch_shape(h):
    h["transformer.wpe.weight"]["shape"] = [33, 32]  # the offsets hold 32 rows


def patch_overlap(h):
    k = "transformer.h.0.ln_1.bias"
    b, e = h[k]["data_offsets"]
    h[k]["data_offsets"] = [b - 64, e - 64]


def patch_gap(h):
    for v in h.values():
        if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] > 0:
            v["data_offsets"] = [v["data_offsets"][0] + 4, v["data_offsets"][1] + 4]


bad("truncated", "truncated", truncate=100)
bad("trailing", "trailing bytes", trailing=b"\0" * 8)
bad("lying-header", "hold", header_patch=patch_shape)
bad("overlap", "overlapping offsets", header_patch=patch_overlap)
bad("gap", "a gap", header_patch=patch_gap)
bad("dup", "duplicate", raw_header=b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                   b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
    trailing=b"")
bad("dtype", "weft reads F32", dtypes={"transformer.wte.weight": "I32"})
bad("unknown-dtype", "unknown dtype", header_patch=lambda h: h["transformer.wte.weight"].update(dtype="F17"))
bad("missing", "is missing", sd_={k: v for k, v in sd.items() if "ln_f.bias" not in k})
bad("extra", "not part of", sd_={**sd, "transformer.h.9.mlp.c_fc.weight": np.zeros((32, 128), np.float32)})
bad("head", "differs", sd_={**sd, "lm_head.weight": sd["transformer.wte.weight"] + 1})
bad("shape", "config.json implies", sd_={**sd, "transformer.wpe.weight": np.zeros((16, 32), np.float32)})
nan = dict(sd)
nan["transformer.ln_f.weight"] = nan["transformer.ln_f.weight"].copy()
nan["transformer.ln_f.weight"][3] = np.nan
bad("nan", "non-finite", sd_=nan)
bad("arch", "BertModel is not supported", config_extra={"architectures": ["BertModel"]})
bad("eps", "layer_norm_epsilon", config_extra={"layer_norm_epsilon": 1e-6})
d = gpt2_dir("bad-biglen", sd)
with open(os.path.join(d, "model.safetensors"), "r+b") as fp:
    fp.write((200 * 1000 * 1000).to_bytes(8, "little"))
refused(["import", d, "-o", f"{tmp}/x.h5"], "limit")
refused(["import", tiny, "-o", f"{tmp}/x.h5"], "weft export")
refused(["import", f"{tmp}/nowhere", "-o", f"{tmp}/x.h5"], "nowhere")
refused(["export", f"{tmp}/hub", "-o", f"{tmp}/y"], "weft import")
os.remove(os.path.join(tmp, "sharded", "model-00002-of-00002.safetensors"))
refused(["import", f"{tmp}/sharded", "-o", f"{tmp}/x.h5"], "model-00002-of-00002.safetensors")
index["weight_map"]["transformer.wte.weight"] = "model-00002-of-00002.safetensors"
d2 = os.path.join(tmp, "sharded2")
shutil.copytree(os.path.join(tmp, "sharded"), d2)
stwriter.write(os.path.join(d2, "model-00002-of-00002.safetensors"), {k: sd[k] for k in keys[half:]})
json.dump(index, open(os.path.join(d2, "model.safetensors.index.json"), "w"))
refused(["import", d2, "-o", f"{tmp}/x.h5"], "does not hold it")
index["weight_map"]["transformer.wte.weight"] = "model-00001-of-00002.safetensors"
del index["weight_map"][keys[1]]
json.dump(index, open(os.path.join(d2, "model.safetensors.index.json"), "w"))
refused(["import", d2, "-o", f"{tmp}/x.h5"], "missing from weight_map")
index["weight_map"][keys[1]] = "../model-00001-of-00002.safetensors"
json.dump(index, open(os.path.join(d2, "model.safetensors.index.json"), "w"))
refused(["import", d2, "-o", f"{tmp}/x.h5"], "not a file name in this folder")
for name, rope, extra, phrase in (
        ("yarn", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, None, "rope type \"yarn\""),
        ("qwen-sw", {}, {"use_sliding_window": True}, "use_sliding_window"),
        ("act", {}, {"hidden_act": "gelu"}, "hidden_act")):
    d, _, _ = llama_dir("bad-" + name, "Qwen2ForCausalLM" if name == "qwen-sw" else "LlamaForCausalLM",
                        False, rope, extra, bias=name == "qwen-sw")
    refused(["import", d, "-o", f"{tmp}/x.h5"], phrase)
d, _, _ = llama_dir("bad-tied-head", "LlamaForCausalLM", False, {}, None)
cfg = json.load(open(os.path.join(d, "config.json")))
cfg["tie_word_embeddings"] = True  # the file still holds a different lm_head
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
refused(["import", d, "-o", f"{tmp}/x.h5"], "differs")
# what each command needs: the usage, then one line naming it
for args, phrase in ((["import", d], "HF_DIR and -o are required"),
                     (["export", "-o", f"{tmp}/y"], "MODEL.h5 and -o are required"),
                     (["export-adapter", "a.h5"], "ADAPTER.h5 and -o are required"),
                     (["merge", "--model", tiny, "-o", f"{tmp}/x.h5"],
                      "--model, --adapter and -o are required")):
    p = weft(*args, check=False)
    assert p.returncode == 1 and p.stderr.startswith("usage: weft " + args[0]), (args, p.stderr)
    assert p.stderr.strip().splitlines()[-1].endswith(phrase), (args, p.stderr)
    modeltest.checks += 1

shutil.rmtree(tmp)
print(f"weft import/export: {modeltest.checks} checks passed")
