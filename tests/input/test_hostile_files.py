#!/usr/bin/python3
"""test_hostile_files.py: files that would load as silently wrong values are
refused with one line: a model whose /wte is int32, float64 or big-endian; an
adapter with int32 matrices or an alpha that is negative or not finite; and
`weft shard x.jsonl` without --format reads JSONL, as a spec's data does;
`weft generate` escapes control bytes on a terminal (and only there).
"""
import os
import pty
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checks  # noqa: E402
from checks import ok  # noqa: E402

data = os.path.join(os.environ.get("top_srcdir", "."), "tests", "lora", "data")
base, acme = os.path.join(data, "base.h5"), os.path.join(data, "acme.h5")
def weft(*args, cwd=None):
    return subprocess.run(["weft", *args], capture_output=True, text=True, errors="replace",
                          cwd=cwd)


def generate(model, adapter=None):
    args = ["generate", "--model", model, "--prompt", "hi", "--tokens", "2"]
    if adapter:
        args += ["--adapter", adapter]
    return weft(*args)


def one_line(p):
    return p.returncode != 0 and p.stderr.count("\n") == 1


def retype(path, name, dtype):
    with h5py.File(path, "r+") as f:
        v = f[name][...]
        del f[name]
        f.create_dataset(name, data=v.astype(dtype))


def main():
    with tempfile.TemporaryDirectory(prefix="weft-test-hostile-") as tmp:
        p = generate(base)
        ok(p.returncode == 0, "the fixture model generates: %s" % p.stderr)
        for dtype, word in (("<i4", "int32"), ("<f8", "float64"), (">f4", "big-endian float32")):
            m = os.path.join(tmp, "m.h5")
            shutil.copy(base, m)
            retype(m, "wte", dtype)
            p = generate(m)
            ok(one_line(p) and "dataset /wte is stored as %s" % word in p.stderr
                  and "little-endian float32" in p.stderr, "model /wte %s: %d %r"
                  % (dtype, p.returncode, p.stderr))

        # the adapter was trained on base.h5, whose hash it names
        p = generate(base, acme)
        ok(p.returncode == 0, "the fixture adapter generates: %s" % p.stderr)
        a = os.path.join(tmp, "a.h5")
        shutil.copy(acme, a)
        retype(a, "h/1/mlp/c_fc/lora_B", "<i4")
        p = generate(base, a)
        ok(one_line(p) and "dataset /h/1/mlp/c_fc/lora_B is stored as int32" in p.stderr,
              "adapter int32: %d %r" % (p.returncode, p.stderr))
        for alpha, want in ((-5.0, "alpha = -5: must be in (0, 1e6]"), (0.0, "alpha = 0: must be"),
                            (float("nan"), "alpha is not a finite number"),
                            (float("inf"), "alpha is not a finite number")):
            shutil.copy(acme, a)
            with h5py.File(a, "r+") as f:
                f.attrs["alpha"] = np.float64(alpha)
            p = generate(base, a)
            ok(one_line(p) and want in p.stderr, "adapter alpha %g: %d %r"
                  % (alpha, p.returncode, p.stderr))

        # weft shard picks the format by extension unless --format is given
        docs = ['{"text": "first document"}', '{"text": "second one", "id": 2}']
        j = os.path.join(tmp, "x.jsonl")
        with open(j, "w") as f:
            f.write("\n".join(docs) + "\n")
        p = weft("shard", "--quiet", "-o", os.path.join(tmp, "x.h5"), j)
        ok(p.returncode == 0 and "2 documents" in p.stdout, "shard x.jsonl: %r %r"
              % (p.stdout, p.stderr))
        with h5py.File(os.path.join(tmp, "x.h5"), "r") as f:
            toks = f["train/tokens"][...]
        text = bytes(t for t in toks if t < 256)
        ok(b"{" not in text and b"first document" in text, "JSONL tokenized as text: %r" % text)
        p = weft("shard", "--quiet", "--format", "text", "-o", os.path.join(tmp, "t.h5"), j)
        ok(p.returncode == 0 and "1 documents" in p.stdout, "--format text: %r" % p.stdout)
        t = os.path.join(tmp, "y.txt")
        with open(t, "w") as f:
            f.write("plain\n")
        p = weft("shard", "--quiet", "-o", os.path.join(tmp, "mix.h5"), j, t)
        ok(p.returncode == 64 and one_line(p) and "give --format" in p.stderr,
              "mixed inputs: %d %r" % (p.returncode, p.stderr))
        # weft generate on a terminal: sampled control bytes come out as \xNN
        args = ["weft", "generate", "--model", base, "--prompt", "hi", "--tokens", "200",
                "--temperature", "2", "--seed", "17"]
        raw = subprocess.run(args, capture_output=True).stdout
        ctrl = sorted({b for b in raw[:-1] if (b < 32 and b not in (9, 10)) or b == 127})
        ok(ctrl, "the sample holds no control byte to escape: %r" % raw)
        master, slave = pty.openpty()
        p = subprocess.Popen(args, stdout=slave)
        os.close(slave)
        tty = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
        p.wait()
        os.close(master)
        ok(p.returncode == 0, "generate on a tty: exit %d" % p.returncode)
        bad = [b for b in tty if (b < 32 and b not in (9, 10, 13)) or b == 127]
        ok(not bad, "raw control bytes on the terminal: %r" % tty)
        try:
            text = tty.decode("utf-8")
            ok(not any(0x80 <= ord(ch) <= 0x9f for ch in text), "C1 controls: %r" % tty)
        except UnicodeDecodeError:
            ok(False, "not UTF-8 on the terminal: %r" % tty)
        for b in ctrl:
            ok(b"\\x%02x" % b in tty, "byte %d not escaped: %r" % (b, tty))
        ok(tty.startswith(b"hi"), "prompt lost: %r" % tty)
    print("%d failures" % checks.failed)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
