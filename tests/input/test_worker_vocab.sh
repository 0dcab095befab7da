#!/bin/bash
# test_worker_vocab.sh: data whose tokens fall outside the model's vocabulary
# (a shards file edited after weft shard wrote it): the worker exits 65 with
# a line naming the tenant, the file, the token and the vocabulary, said by
# whichever rank read it; bad /val tokens are found at start, before a step.
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp vocab

make_corpus a GPL-3
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"
V=$(/usr/bin/python3 -c 'import h5py; print(int(h5py.File("base.h5")["/"].attrs["vocab_size"]))')

spec() { # name data [eval_every]
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "lora";
model = "base.h5";
output = "$1";
train = { steps = 40; batch_size = 4; seq_len = 16; eval_every = ${3:-0}; checkpoint_every = 0;
          eval_windows = 4; };
lora = { r = 2; alpha = 4.0; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "acme"; data = "$2"; } );
CFG
}

poke() { # src dst split value: every token of split set to value
    cp "$1" "$2"
    /usr/bin/python3 - "$2" "$3" "$4" <<'PY' || fail "editing $2"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    t = f[sys.argv[2] + "/tokens"]
    t[...] = int(sys.argv[3])
PY
}

# every /train token is V: the first window any rank draws is bad
poke a.h5 train-bad.h5 train "$V"
spec tbad train-bad.h5
mpirun -np 2 weft-worker tbad.cfg >tbad.log 2>&1
rc=$?
[ $rc = 65 ] || fail "bad /train tokens: exit $rc, want 65: $(tail -3 tbad.log)"
grep -q "tenant acme: .*train-bad.h5: token $V at /train/tokens\[[0-9]*\] is outside the vocabulary of $V" tbad.log ||
    fail "bad /train tokens not named: $(cat tbad.log)"
pass "bad /train token: exit 65 with tenant, file, token and vocabulary"

# only /val is bad, and eval_every = 0: found before the first step
poke a.h5 val-bad.h5 val 1000
spec vbad val-bad.h5 0
mpirun -np 2 weft-worker vbad.cfg >vbad.log 2>&1
rc=$?
[ $rc = 65 ] || fail "bad /val tokens: exit $rc, want 65: $(tail -3 vbad.log)"
grep -q "tenant acme: .*val-bad.h5: token 1000 at /val/tokens\[0\] is outside" vbad.log ||
    fail "bad /val tokens not named: $(cat vbad.log)"
! grep -q "^step" vbad.log || fail "bad /val tokens found only after training: $(cat vbad.log)"
[ ! -e vbad/acme/adapter.h5 ] || fail "an adapter was written from bad data"
pass "bad /val token: found at start, exit 65"

summary
