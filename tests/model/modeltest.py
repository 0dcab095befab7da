"""modeltest.py: what the Python tests in tests/model/ share: their count of
checks, a command (weft above all) that must succeed or must be refused in
one line, relative error, and a weft-model file's tensors under Hugging
Face's GPT-2 names.

A test imports it from its own folder:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import modeltest
"""
import subprocess
import sys

import h5py
import numpy as np

checks = 0  # checks passed; a test adds its own asserts' with modeltest.checks += n


def ok(what):
    """A check held: counted, and said."""
    global checks
    checks += 1
    print("ok:", what)


def fail(what):
    """A check failed: said, and the test ends with exit status 1."""
    print("FAIL:", what)
    print("%d passed, 1 failed" % checks)
    sys.exit(1)


def run(*args, check=True, **kw):
    """Runs a command, its output captured as text; with check, a non-zero
    exit fails the test."""
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        fail("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def weft(*args, check=True):
    return run("weft", *args, check=check)


def refused(args, phrase):
    """weft ARGS must exit 1 with one line on stderr that holds phrase."""
    global checks
    p = weft(*args, check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1, f"weft {args}: exit {p.returncode}, stderr {p.stderr!r}"
    assert len(lines) == 1, f"weft {args}: not one line: {p.stderr!r}"
    assert phrase in lines[0], f"weft {args}: {phrase!r} not in {lines[0]!r}"
    checks += 1


def rel(a, b):
    """|a - b| / |b| in float64 (Frobenius norms)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def h5_tensors(path):
    """Every dataset of an HDF5 file: its path -> its array."""
    out = {}

    def keep(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[...]

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    return out


def gpt2_state(path):
    """HF GPT2LMHeadModel keys -> arrays, from a weft-model v1 file."""
    t = h5_tensors(path)
    sd = {"transformer.wte.weight": t["wte"], "transformer.wpe.weight": t["wpe"]}
    for k, v in t.items():
        if k not in ("wte", "wpe"):
            sd["transformer." + k.replace("/", ".")] = v
    return sd
