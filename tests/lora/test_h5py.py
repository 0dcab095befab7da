#!/usr/bin/python3
"""test_h5py.py: the adapter file from the h5py side (docs/FORMATS-adapter.md).

An adapter written with the documented h5py recipe, holding acme's matrices,
is accepted by `weft grad --adapter` and gives the same loss and gradients
as acme.h5 itself; the documented reader recovers r, alpha, scaling and the
matrices; a wrong base_sha256 is refused.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

data = os.path.join(os.environ.get("top_srcdir", "."), "tests", "lora", "data")
base, acme, batch = (os.path.join(data, n) for n in ("base.h5", "acme.h5", "acme-ref.h5"))


def weft_grad(adapter, out):
    return subprocess.run(["weft", "grad", "--model", base, "--adapter", adapter, "--batch", batch,
                           "-o", out], capture_output=True, text=True)


def main():
    # the documented reader
    f = h5py.File(acme, "r")
    assert f.attrs["format"] == b"weft-adapter" and f.attrs["version"] == 1
    r, alpha = int(f.attrs["r"]), float(f.attrs["alpha"])
    scaling = alpha / (np.sqrt(r) if f.attrs["use_rslora"] else r)
    assert (r, alpha, scaling) == (4, 8.0, 2.0), (r, alpha, scaling)
    targets = f.attrs["targets"].decode().split(",")
    mats = {}
    f.visititems(lambda n, o: mats.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    n_layer = len(f["h"])
    assert len(mats) == 2 * n_layer * len(targets)
    A, B = mats["h/0/attn/c_attn/lora_A"], mats["h/0/attn/c_attn/lora_B"]
    x = np.ones((3, A.shape[1]), np.float32)
    assert (scaling * (x @ A.T) @ B.T).shape == (3, B.shape[0])

    with tempfile.TemporaryDirectory(prefix="weft-test-h5py-") as tmp:
        # the documented writer
        mine = os.path.join(tmp, "mine.h5")
        with h5py.File(mine, "w") as g:
            g.attrs["format"] = np.bytes_("weft-adapter")
            g.attrs["version"] = np.int64(1)
            g.attrs["tenant"] = np.bytes_("acme")
            g.attrs["r"] = np.int64(r)
            g.attrs["alpha"] = np.float64(alpha)
            g.attrs["use_rslora"] = np.int64(0)
            g.attrs["targets"] = np.bytes_(",".join(targets))
            with open(base, "rb") as b:
                g.attrs["base_sha256"] = np.bytes_(hashlib.sha256(b.read()).hexdigest())
            g.attrs["steps"] = np.int64(0)
            g.attrs["seed"] = np.int64(1)
            for name, value in mats.items():
                g[name] = value.astype(np.float32)
        a, b = weft_grad(acme, os.path.join(tmp, "a.h5")), weft_grad(mine, os.path.join(tmp, "b.h5"))
        assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
        ga, gb = h5py.File(os.path.join(tmp, "a.h5"), "r"), h5py.File(os.path.join(tmp, "b.h5"), "r")
        assert ga["loss"][()] == gb["loss"][()]
        for name in mats:
            assert np.array_equal(ga[name][...], gb[name][...]), name
        loss = float(ga["loss"][()])
        ga.close()
        gb.close()

        # a wrong backbone hash: refused, one line naming both hashes
        with h5py.File(mine, "r+") as g:
            g.attrs["base_sha256"] = np.bytes_("0" * 64)
        c = weft_grad(mine, os.path.join(tmp, "c.h5"))
        assert c.returncode != 0 and "0" * 64 in c.stderr and c.stderr.count("\n") == 1, c.stderr
    print(f"h5py-written adapter accepted: {len(mats)} matrices, loss {loss:.6f}")


if __name__ == "__main__":
    sys.exit(main())
