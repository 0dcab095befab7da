#!/bin/sh
# test_grad_adapter.sh: `weft grad --adapter` gives the loss and the adapter's
# gradients (under the adapter file's names) that PyTorch gives, leaves the
# backbone out of the output, and refuses an adapter on the wrong backbone.
set -eu
data="$top_srcdir/tests/lora/data"
tmp=$(mktemp -d /tmp/weft-test-grad-adapter-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

weft grad --model "$data/base.h5" --adapter "$data/acme.h5" --batch "$data/acme-ref.h5" \
    -o "$tmp/out.h5" --logits >"$tmp/log"
grep -q "^loss " "$tmp/log"

/usr/bin/python3 - "$tmp/out.h5" "$data/acme-ref.h5" <<'PY'
import sys
import h5py
import numpy as np
out, ref = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)
assert abs(out["loss"][()] - ref["loss"][()]) <= 1e-5 * abs(ref["loss"][()]), "loss"
assert rel(out["logits"], ref["logits"]) <= 1e-5, "logits"
names = []
ref["grad"].visit(lambda n: names.append(n) if isinstance(ref["grad"][n], h5py.Dataset) else None)
assert len(names) == 3 * 4 * 2, names
for n in names:
    e = rel(out[n], ref["grad"][n])
    assert e <= 1e-4, f"{n}: relative error {e:.3g}"
assert "wte" not in out and "h/0/attn/c_attn/weight" not in out, "backbone gradients written"
print(f"weft grad --adapter: {len(names)} adapter gradients match PyTorch")
PY

# The same adapter on another backbone of the same shape: one clear line, exit 1.
weft init-model --preset tiny --layers 3 --heads 3 --embd 48 --vocab 300 --ctx 20 --seed 4 \
    -o "$tmp/other.h5" >/dev/null
if weft grad --model "$tmp/other.h5" --adapter "$data/acme.h5" --batch "$data/acme-ref.h5" \
    -o "$tmp/bad.h5" 2>"$tmp/err"; then
    echo "FAIL: adapter accepted on the wrong backbone" >&2
    exit 1
fi
cat "$tmp/err"
test "$(wc -l <"$tmp/err")" -eq 1
base=$(sha256sum "$data/base.h5" | cut -c1-64)
other=$(sha256sum "$tmp/other.h5" | cut -c1-64)
grep -q "$base" "$tmp/err"
grep -q "$other" "$tmp/err"
grep -q "other.h5" "$tmp/err"
test ! -e "$tmp/bad.h5"
