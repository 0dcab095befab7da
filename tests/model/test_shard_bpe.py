"""test_shard_bpe.py: `weft shard --tokenizer`: every document's ids are
`weft tokenize`'s followed by the end-of-text id; uint16 while the
vocabulary fits and uint32 above 65,536; the root attributes record the
tokenizer's SHA-256, vocabulary size and end-of-text id; --eos picks another
end; a model file's byte tokenizer keeps byte shards; peak memory stays flat
as one document with no newline grows from 2 MB to 16 MB."""
import hashlib
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import maketok  # noqa: E402
import modeltest  # noqa: E402
from modeltest import fail, ok, run  # noqa: E402
import json  # noqa: E402


def ids_of(tok, text, work):
    path = os.path.join(work, "one.txt")
    with open(path, "w") as f:
        f.write(text)
    return [int(x) for x in run("weft", "tokenize", "--tokenizer", tok, path).stdout.split()]


def check_file(path, tok, docs, eot, vocab, dtype, work):
    with h5py.File(path, "r") as f:
        a = f.attrs
        sha = hashlib.sha256(open(tok, "rb").read()).hexdigest()
        if a["tokenizer"] != b"bpe" or a["tokenizer_sha256"].decode() != sha:
            fail("attributes: tokenizer %r sha %r" % (a["tokenizer"], a["tokenizer_sha256"]))
        if a["vocab_size"] != vocab or a["eot_id"] != eot:
            fail("vocab_size %d eot_id %d, want %d %d" % (a["vocab_size"], a["eot_id"], vocab, eot))
        t = f["train/tokens"]
        if t.dtype != dtype or not t.fletcher32 or t.compression != "gzip":
            fail("tokens are %s (fletcher32 %s), want %s" % (t.dtype, t.fletcher32, dtype))
        toks, offs = t[:], f["train/doc_offsets"][:]
    # a document ends with the newline before the --- line that follows it
    texts = [d + "\n" for d in docs[:-1]] + docs[-1:]
    want = sorted(tuple(ids_of(tok, d, work) + [eot]) for d in texts)
    got = sorted(tuple(int(x) for x in toks[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1))
    if got != want:
        fail("documents' ids differ from weft tokenize's + end of text")


def peak_rss_kb(args):
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        fail("%s: %s" % (" ".join(args), p.stderr.strip()))
    return int(p.stderr.strip().splitlines()[-1])


def main():
    work = tempfile.mkdtemp(prefix="weft-test-shard-bpe-")
    docs = ["in the beginning the word", "then 12345 and inside",
            "caf\u00e9 \u00fcber na\u00efve \u65e5\u672c\u8a9e \U0001F600", "the the the\r\nin in"]
    src = os.path.join(work, "in.txt")
    with open(src, "w") as f:
        f.write("\n---\n".join(docs))

    # each document = weft tokenize's ids + the end of text; uint16 tokens while
    # the vocabulary fits, uint32 above 65,536
    for name, eot, dtype in (("small", 261, np.uint16), ("big", 70000, np.uint32)):
        tok = os.path.join(work, name + ".json")
        json.dump(maketok.tokenizer(eot), open(tok, "w"))
        out = os.path.join(work, name + ".h5")
        run("weft", "shard", "--quiet", "--tokenizer", tok, "-o", out, src)
        run("weft", "shard", "--verify", out)
        check_file(out, tok, docs, eot, eot + 1, dtype, work)
        ok("vocabulary of %d: %s tokens, each document = weft tokenize's ids + %d"
           % (eot + 1, np.dtype(dtype).name, eot))
    small = os.path.join(work, "small.json")

    lit = os.path.join(work, "lit.txt")
    with open(lit, "w") as f:
        f.write("a<|end_of_text|>b")
    out = os.path.join(work, "lit.h5")
    run("weft", "shard", "--quiet", "--tokenizer", small, "-o", out, lit)
    with h5py.File(out, "r") as f:
        toks = [int(x) for x in f["train/tokens"][:]]
    if toks.count(261) != 1 or toks[-1] != 261 or len(toks) < 10:
        fail("a document holding <|end_of_text|> as text: %s" % toks)
    ok("the end-of-text token's text inside a document stays text: %s" % toks)

    out = os.path.join(work, "eos.h5")
    run("weft", "shard", "--quiet", "--tokenizer", small, "--eos", "\u0120the", "-o", out, src)
    with h5py.File(out, "r") as f:
        if f.attrs["eot_id"] != 258:
            fail("--eos \u0120the: eot_id %d" % f.attrs["eot_id"])
    p = run("weft", "shard", "--quiet", "--tokenizer", small, "--eos", "nope", "-o", out + "x",
            src, check=False)
    if p.returncode == 0 or "--eos 'nope' is not a token" not in p.stderr:
        fail("--eos nope: %s" % p.stderr)
    ok("--eos picks the end token; an unknown one is refused: " + p.stderr.strip())

    model = os.path.join(work, "byte.h5")
    run("weft", "init-model", "--preset", "tiny", "--layers", "1", "--heads", "1", "--embd", "8", "--ctx", "8",
        "-o", model)
    out = os.path.join(work, "byte.h5.shards")
    run("weft", "shard", "--quiet", "--tokenizer", model, "-o", out, src)
    with h5py.File(out, "r") as f:
        if f.attrs["tokenizer"] != b"byte" or f.attrs["vocab_size"] != 257:
            fail("a byte model's shards: %r" % dict(f.attrs))
    ok("a weft-model file with the byte tokenizer gives byte shards")

    # one document with no newline: 2 MB, then 16 MB; peak RSS must not grow
    # with it (the ids stream to a spill file, the text to the tokenizer)
    rss = []
    for mb in (2, 16):
        doc = os.path.join(work, "long%d.txt" % mb)
        unit = "in the 1234 caf\u00e9 the <|end_of_text|> word, then more text; "
        with open(doc, "w") as f:
            f.write(unit * (mb * (1 << 20) // len(unit.encode())))
        rss.append(peak_rss_kb(["weft", "shard", "--quiet", "--force", "--tokenizer", small,
                                "-o", os.path.join(work, "long.h5"), doc]))
    if rss[1] > rss[0] + 12 * 1024:
        fail("peak RSS grew from %d kB (2 MB) to %d kB (16 MB)" % (rss[0], rss[1]))
    ok("peak RSS %d kB for a 2 MB document, %d kB for 16 MB" % (rss[0], rss[1]))
    print("%d passed, 0 failed" % modeltest.checks)


main()
