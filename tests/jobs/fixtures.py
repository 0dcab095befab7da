#!/usr/bin/python3
# fixtures.py: writes the files the example specs name (a weft-model file's
# root attributes, small weft-shards files, an adapter, raw text and JSONL)
# into a folder, so that `weft validate` can check the examples for real.
import os
import sys

import h5py
import numpy as np


def model(path, n_layer=2, n_head=2, n_embd=64, vocab_size=257, n_ctx=256):
    with h5py.File(path, "w") as f:
        for k, v in dict(format="weft-model", arch="gpt2", tokenizer="byte").items():
            f.attrs[k] = np.bytes_(v)
        for k, v in dict(version=1, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                         vocab_size=vocab_size, n_ctx=n_ctx).items():
            f.attrs[k] = np.int64(v)


def shards(path, ntokens=100000, vocab_size=257, nshards=4, tokens=None):
    """A weft-shards file as docs/FORMATS-shards.md describes it: one
    document per split (zeros ended by the end-of-text token 256), the
    training tokens cut into nshards equal shards. tokens replaces the
    training tokens (to plant bad ones)."""
    eot = 256 if vocab_size == 257 else 50256
    train = np.zeros(ntokens, dtype=np.uint16 if vocab_size <= 65536 else np.uint32)
    train[-1] = eot
    if tokens is not None:
        train = np.asarray(tokens, dtype=train.dtype)
    val = np.zeros(max(ntokens // 10, 2), dtype=train.dtype)
    val[-1] = eot
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("weft-shards")
        f.attrs["tokenizer"] = np.bytes_("byte" if vocab_size == 257 else "gpt2")
        f.attrs["version"] = np.int64(1)
        f.attrs["vocab_size"] = np.int64(vocab_size)
        f.attrs["seed"] = np.int64(0)
        f.attrs["source_sha256"] = np.bytes_("0" * 64)
        for name, toks in (("train", train), ("val", val)):
            f.create_dataset(name + "/tokens", data=toks)
            f.create_dataset(name + "/doc_offsets", data=np.array([0, len(toks)], dtype=np.int64))
        n = len(train)
        f.create_dataset("train/shard_offsets",
                         data=np.array([n * k // nshards for k in range(nshards + 1)], dtype=np.int64))


def adapter(path, r=8, alpha=16.0, rslora=0, targets="attn.c_attn,attn.c_proj"):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("weft-adapter")
        f.attrs["targets"] = np.bytes_(targets)
        f.attrs["r"] = np.int64(r)
        f.attrs["alpha"] = np.float64(alpha)
        f.attrs["use_rslora"] = np.int64(rslora)


def main(root):
    for d in ("models", "data", "adapters"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    model(os.path.join(root, "models/base.h5"))
    for name in ("acme", "globex", "corpus"):
        shards(os.path.join(root, "data", name + ".h5"))
    adapter(os.path.join(root, "adapters/acme.h5"))
    with open(os.path.join(root, "data/initech.txt"), "w") as f:
        f.write("plain text for a tenant\n")
    with open(os.path.join(root, "data/support.jsonl"), "w") as f:
        f.write('{"text": "hello"}\n')


if __name__ == "__main__":
    main(sys.argv[1])
