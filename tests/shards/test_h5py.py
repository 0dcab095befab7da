#!/usr/bin/python3
# test_h5py.py: a weft-shards file read by h5py, outside weft: attributes,
# filters, every document's bytes, shard offsets; and the h5py example in
# docs/FORMATS-shards.md runs as written against a file weft made.
import os
import re
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

top_srcdir = os.environ.get("top_srcdir", ".")
weft = os.path.join(os.environ.get("top_builddir", "."), "weft")


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


with tempfile.TemporaryDirectory(prefix="weft-test-h5py-") as tmp:
    docs = [f"Document {i}: ".encode() + bytes(range(256))[i % 200 :] + b"\n" for i in range(30)]
    with open(os.path.join(tmp, "in.txt"), "wb") as f:
        f.write(b"---\n".join(docs))
    out = os.path.join(tmp, "corpus.h5")
    subprocess.run([weft, "shard", "--quiet", "--shards", "3", "--val-fraction", "0.2",
                    "--seed", "5", "-o", out, os.path.join(tmp, "in.txt")],
                   check=True, stdout=subprocess.DEVNULL)
    with h5py.File(out, "r") as f:
        if f.attrs["format"] != b"weft-shards" or f.attrs["version"] != 1:
            fail("format/version attributes")
        if f.attrs["tokenizer"] != b"byte" or f.attrs["vocab_size"] != 257:
            fail("tokenizer attributes")
        got = []
        for split in ("train", "val"):
            t = f[f"{split}/tokens"]
            if t.dtype != np.uint16 or not t.fletcher32 or t.compression != "gzip":
                fail(f"{split}/tokens: dtype {t.dtype}, filters")
            tok = t[:]
            off = f[f"{split}/doc_offsets"][:]
            if off[0] != 0 or off[-1] != len(tok):
                fail(f"{split}/doc_offsets ends")
            for a, b in zip(off[:-1], off[1:]):
                if tok[b - 1] != 256 or (tok[a : b - 1] > 255).any():
                    fail(f"{split} document at {a} is not bytes then 256")
                got.append(bytes(tok[a : b - 1].astype(np.uint8)))
        if sorted(got) != sorted(docs):
            fail("documents differ from the input")
        if len(f["val/doc_offsets"]) - 1 != 6:
            fail("val should hold round(0.2 * 30) = 6 documents")
        so = f["train/shard_offsets"][:]
        if len(so) != 4 or so[0] != 0 or so[-1] != len(f["train/tokens"]) or (np.diff(so) < 2).any():
            fail(f"shard_offsets {so}")

    # the documentation's example, verbatim, on a file named corpus.h5
    text = open(os.path.join(top_srcdir, "docs", "FORMATS-shards.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    if not blocks:
        fail("no python example in docs/FORMATS-shards.md")
    env = {}
    os.chdir(tmp)
    exec(blocks[0], env)
    if env["text"] not in docs or len(env["mine"]) != 1:
        fail("the documented example read something else")

print("PASS: h5py reads weft-shards")
