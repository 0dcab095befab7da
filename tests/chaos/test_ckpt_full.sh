#!/bin/bash
# test_ckpt_full.sh: a checkpoint write that fails for want of space (a small
# tmpfs) leaves the previous checkpoint usable and reports the error:
# weft-worker warns naming the step and the cause, leaves no partial
# checkpoint, trains on to the same adapter as a run on a roomy disk, and a
# copy of its run folder resumes from the last good checkpoint to the same
# bits. Needs root for mount (skipped otherwise).
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-ckfull-XXXXXX)
MNT=$T/mnt
cleanup() {
    mountpoint -q "$MNT" && umount "$MNT"
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
mkdir -p "$MNT"
mount -t tmpfs -o size=1m tmpfs "$MNT" 2>/dev/null || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
umount "$MNT"

make_corpus t0 GPL-3 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"
spec() { # file output
    cat > "$1" <<CFG
name = "ck"; mode = "lora"; model = "$T/base.h5"; output = "$2";
train = { steps = 100; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 50;
          checkpoint_every = 20; keep_checkpoints = 2; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn", "attn.c_proj"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "t0"; data = "$T/t0.h5"; } );
CFG
}
worker() { "$MPIRUN" -np 2 weft-worker "$@"; }

# On a roomy disk: the reference, and the sizes of a checkpoint and the metrics.
spec ref.cfg "$T/ref"
worker ref.cfg >ref.log 2>&1 || fail "reference run: $(tail -5 ref.log)"
ck=$(du -sk ref/ckpt-100 | cut -f1)
me=$(du -sk ref/metrics.jsonl | cut -f1)
ad=$(du -sk ref/t0 | cut -f1)

# Room for one checkpoint, the metrics and the adapter, not for two more.
size=$((ck + me + ad + 24))
mount -t tmpfs -o size=${size}k tmpfs "$MNT" || fail "mount"
spec full.cfg "$MNT/run"
worker full.cfg >full.log 2>&1
rc=$?
first=$(grep -o 'checkpoint at step [0-9]* failed' full.log | head -1 | grep -o '[0-9][0-9]*')
[ -n "$first" ] || fail "no warning for a checkpoint that did not fit (exit $rc): $(tail -5 full.log)"
grep "checkpoint at step $first failed" full.log | grep -qi "no space" ||
    fail "the warning does not name the cause: $(grep "step $first failed" full.log)"
pass "a checkpoint that does not fit in a ${size} KB tmpfs is reported: $(grep -o "checkpoint at step $first failed.*" full.log | sed "s|$T/||g" | head -c 150)"
ls "$MNT/run" | grep -q '\.tmp' && fail "a partial checkpoint was left behind: $(ls "$MNT/run")"
prev=$((first - 20))
[ -f "$MNT/run/ckpt-$prev/MANIFEST" ] || fail "the previous checkpoint ckpt-$prev is gone: $(ls "$MNT/run")"
pass "no partial checkpoint left; the previous one (ckpt-$prev) kept"
if [ $rc != 0 ]; then
    # The run could not save its output either: it must have said so.
    tail -25 full.log | grep -qi "error.*no space" ||
        fail "the run failed (exit $rc) without saying why: $(tail -12 full.log)"
    pass "the run that could not save its output said why (exit $rc)"
else
    cmp -s ref/t0/adapter.h5 "$MNT/run/t0/adapter.h5" ||
        fail "training went on but its adapter differs from the reference"
    pass "training went on past the failed checkpoints to the reference adapter"
fi

# Room again: the same run, started again, resumes from the newest good
# checkpoint to the reference's bits.
mount -o remount,size=4m "$MNT" || fail "remount"
rm -rf "$MNT/run/t0" "$MNT/run/result.json"
last=$(ls "$MNT/run" | grep '^ckpt-[0-9]*$' | sed 's/ckpt-//' | sort -n | tail -1)
worker full.cfg >again.log 2>&1 || fail "the run started again failed: $(tail -5 again.log)"
grep -q "resumed" again.log || fail "the run did not resume: $(head -3 again.log)"
first_step=$(grep -o 'step *[0-9]*/100' again.log | head -1 | grep -o '[0-9]*/' | tr -d /)
[ "$first_step" -gt "$last" ] 2>/dev/null || fail "it resumed at step $first_step, not after $last"
cmp -s ref/t0/adapter.h5 "$MNT/run/t0/adapter.h5" || fail "the resumed adapter differs from the reference"
pass "started again with room, it resumes from ckpt-$last to the reference adapter, bit for bit"
summary
