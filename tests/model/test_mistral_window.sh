#!/bin/bash
# test_mistral_window.sh: a Mistral model's sliding window (attribute
# sliding_window, as weft import writes it) in the engine: a run is allowed
# while seq_len <= window (attention is then full causal attention) and
# refused beyond it by name, in one line, by the worker, weft eval and weft
# grad's shapes; weft generate keeps its context within the window.
set -u
. "$top_srcdir/tests/lib.sh"
test_tmp window

make_corpus a GPL-3
weft init-model --preset llama-tiny --vocab 300 --ctx 32 --seed 2 -o m.h5 >/dev/null ||
    fail "init-model"
/usr/bin/python3 - <<'PY' || fail "setting sliding_window"
import h5py
with h5py.File("m.h5", "r+") as f:
    f.attrs["sliding_window"] = 12
    f.attrs["hf_architecture"] = "MistralForCausalLM"
PY

spec() { # name seq_len
    cat > "$1.cfg" <<CFG
name = "$1"; mode = "full"; model = "m.h5"; data = "a.h5"; output = "$1";
train = { steps = 2; batch_size = 2; seq_len = $2; eval_every = 0; checkpoint_every = 0; };
resources = { ranks = 1; threads = 1; };
CFG
}

spec long 16
mpirun -np 1 weft-worker long.cfg >long.log 2>&1
rc=$?
[ $rc = 78 ] || fail "worker, seq_len 16 > window 12: exit $rc, want 78: $(tail -3 long.log)"
grep -q "train.seq_len 16 is longer than the model's sliding_window = 12" long.log ||
    fail "worker refusal does not name sliding_window: $(cat long.log)"
[ ! -e long/model.h5 ] || fail "a model was written by a refused run"
pass "worker: seq_len beyond sliding_window refused by name (exit 78)"

spec fits 12
mpirun -np 1 weft-worker fits.cfg >fits.log 2>&1 || fail "worker, seq_len = window: $(tail -3 fits.log)"
h5dump -a /sliding_window fits/model.h5 | grep -q '(0): 12' ||
    fail "the trained model lost its sliding_window"
h5dump -a /hf_architecture fits/model.h5 | grep -q 'MistralForCausalLM' ||
    fail "the trained model lost its hf_architecture"
pass "worker: seq_len = sliding_window trains, and the model keeps its window and class"

weft eval --model m.h5 --data a.h5 --windows 2 --seq-len 16 >eval.out 2>eval.err
rc=$?
[ $rc = 1 ] && [ "$(wc -l <eval.err)" = 1 ] && grep -q "\-\-seq-len 16 is longer than the model's sliding_window = 12" eval.err ||
    fail "eval --seq-len 16: exit $rc: $(cat eval.err)"
weft eval --model m.h5 --data a.h5 --windows 2 >eval.out || fail "eval within the window"
weft generate --model m.h5 --prompt "hello world, this is long" --tokens 20 >gen.out ||
    fail "generate past the window"
pass "eval refuses a longer --seq-len by name and defaults to the window; generate slides within it"
summary
