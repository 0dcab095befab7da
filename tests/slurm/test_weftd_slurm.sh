#!/bin/bash
# test_weftd_slurm.sh: weftd --executor slurm against a real single-node
# Slurm: a nightly batch of 8 tenants runs as Slurm jobs to completion; a
# Slurm job cancelled behind weftd's back is lost and retried from its
# checkpoint; a job cancelled through weft leaves no Slurm job behind; a
# weftd killed with -9 and restarted follows its Slurm jobs to the end.
set -u
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/slurm/slurm_lib.sh"

slurm_up
T=$(mktemp -d /tmp/weft-test-weftd-slurm-XXXXXX)
cleanup() {
    local h j
    for h in "$T"/home*; do
        [ -f "$h/weftd.pid" ] && kill "$(cat "$h/weftd.pid")" 2>/dev/null
        for j in $(sqlite3 "$h/weft.db" "select substr(executor_id, 7) from runs" 2>/dev/null); do
            scancel "$j" 2>/dev/null
        done
    done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
    slurm_down
}
trap cleanup EXIT
cd "$T"

i=0
for lic in GPL-3 Apache-2.0 Artistic MPL-2.0 GPL-2 LGPL-2.1 CC0-1.0 GFDL-1.3; do
    make_corpus t$i $lic >/dev/null
    i=$((i + 1))
done
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

batch() { # name steps ntenants
    {
        echo "name = \"$1\"; mode = \"lora\"; model = \"base.h5\"; output = \"out-$1\";"
        echo "train = { steps = $2; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 20;"
        echo "          checkpoint_every = 10; eval_windows = 4; };"
        echo "lora = { r = 4; alpha = 8.0; targets = [\"attn.c_attn\", \"attn.c_proj\"]; };"
        echo "resources = { ranks = 2; threads = 1; };"
        echo "tenants = ("
        for k in $(seq 0 $(($3 - 1))); do
            sep=","; [ "$k" = $(($3 - 1)) ] && sep=""
            echo "  { name = \"t$k\"; data = \"t$k.h5\"; }$sep"
        done
        echo ");"
    } >"$1.cfg"
}
W() { local h=$1; shift; weft --home "$T/$h" "$@"; }
db() { sqlite3 "$T/$1/weft.db" "$2"; }

# wait_for SECONDS COMMAND...: until the command succeeds.
wait_for() {
    local n=$(($1 * 5)); shift
    for _ in $(seq $n); do "$@" && return 0; sleep 0.2; done
    return 1
}

# 1. A nightly batch of 8 tenants: two packs of 4, each a Slurm job.
batch nightly 40 8
weftd --home "$T/home1" --slots 4 --pack-size 4 --executor slurm >/dev/null ||
    fail "weftd --executor slurm would not start: $(tail -3 "$T/home1/weftd.log")"
timeout 300 weft --home "$T/home1" submit nightly.cfg --wait >watch1.log 2>&1 ||
    fail "the batch did not succeed: $(tail -5 watch1.log; tail -5 "$T/home1/weftd.log")"
W home1 results 1 --json >res1.json || fail "results"
[ "$(grep -c '"state": "succeeded"' res1.json)" = 8 ] || fail "not 8 succeeded jobs: $(cat res1.json)"
for k in 0 1 2 3 4 5 6 7; do [ -s out-nightly/t$k/adapter.h5 ] || fail "no adapter for t$k"; done
ids=$(db home1 "select substr(executor_id, 7) from runs where executor_id like 'slurm:%' order by id")
[ "$(echo $ids | wc -w)" = 2 ] || fail "want 2 runs launched as Slurm jobs, got: $(db home1 'select id, executor_id from runs')"
for j in $ids; do
    st=$(wait_final "$j" 60)
    [ "$st" = COMPLETED ] || fail "Slurm job $j ended $st"
    [ "$(job_field "$j" NumTasks)" = 2 ] || fail "Slurm job $j had $(job_field "$j" NumTasks) tasks"
done
pass "nightly batch of 8 tenants: 2 Slurm jobs ($(echo $ids)), 8 adapters"

# 2. A Slurm job cancelled behind weftd's back: lost, retried from its
#    checkpoint as attempt 2, and the job still succeeds.
batch lost 3000 1
W home1 submit lost.cfg >/dev/null || fail "submit lost.cfg"
running() { [ "$(db home1 "select count(*) from metrics where job = 9")" -ge 15 ]; }
wait_for 120 running || fail "job 9 never trained: $(tail -3 "$T/home1/weftd.log")"
j=$(db home1 "select substr(executor_id, 7) from runs where id = 3")
ckpt() { ls -d "$T"/home1/runs/3/out/ckpt-* >/dev/null 2>&1; }
wait_for 60 ckpt || fail "run 3 wrote no checkpoint"
scancel "$j" || fail "scancel $j"
again() { [ "$(db home1 "select attempt from runs where id = 3")" = 2 ]; }
wait_for 60 again || fail "run 3 was not relaunched after its Slurm job vanished: $(tail -3 "$T/home1/weftd.log")"
done9() { W home1 show 9 | grep -q "state *succeeded"; }
wait_for 240 done9 || fail "run 3 did not finish after the retry: $(tail -3 "$T/home1/weftd.log")"
W home1 show 9 | grep -q "run *3, attempt 2 (done)" || fail "job 9: $(W home1 show 9)"
grep -q "resuming from .*ckpt-" "$T/home1/runs/3/attempt-2.log" || fail "attempt 2 did not resume: $(head -5 "$T/home1/runs/3/attempt-2.log")"
j2=$(db home1 "select substr(executor_id, 7) from runs where id = 3")
[ "$j2" != "$j" ] || fail "attempt 2 reused Slurm job $j"
pass "Slurm job $j cancelled under weftd: lost, attempt 2 as job $j2 resumed and succeeded"

# 3. Cancelling a running job through weft leaves no Slurm job behind.
batch cancel 5000 1
W home1 submit cancel.cfg >/dev/null || fail "submit cancel.cfg"
running10() { [ "$(db home1 "select count(*) from metrics where job = 10")" -ge 5 ]; }
wait_for 120 running10 || fail "job 10 never trained: $(tail -3 "$T/home1/weftd.log")"
j=$(db home1 "select substr(executor_id, 7) from runs where id = 4")
[ -n "$(squeue -h -j "$j" 2>/dev/null)" ] || fail "Slurm job $j of run 4 is not in the queue"
W home1 cancel 10 | grep -q "10: cancelled" || fail "cancel did not answer"
gone() { [ -z "$(squeue -h -j "$j" 2>/dev/null)" ]; }
wait_for 30 gone || fail "Slurm job $j is still there after the cancel: $(squeue -j "$j")"
[ "$(job_field "$j" JobState)" = CANCELLED ] || fail "Slurm job $j is $(job_field "$j" JobState), want CANCELLED"
W home1 show 10 | grep -q "state *cancelled" || fail "job 10: $(W home1 show 10)"
[ -z "$(squeue -h -n weft-run-1,weft-run-2,weft-run-3,weft-run-4)" ] || fail "Slurm jobs left: $(squeue)"
pass "cancelled job 10: its Slurm job $j is CANCELLED and gone from the queue"

# 4. kill -9 of weftd while its Slurm job runs: the next weftd carries the
#    job over from the store and follows it to the end, in the same attempt.
batch restart 1500 1
W home1 submit restart.cfg >/dev/null || fail "submit restart.cfg"
running11() { [ "$(db home1 "select count(*) from metrics where job = 11")" -ge 5 ]; }
wait_for 120 running11 || fail "job 11 never trained: $(tail -3 "$T/home1/weftd.log")"
j=$(db home1 "select substr(executor_id, 7) from runs where id = 5")
kill -9 "$(cat "$T/home1/weftd.pid")"
unlocked() { flock -n "$T/home1/weftd.pid" true; }
wait_for 20 unlocked || fail "the killed weftd still holds its home's lock"
weftd --home "$T/home1" --slots 4 --pack-size 4 --executor slurm >/dev/null ||
    fail "weftd would not restart: $(tail -3 "$T/home1/weftd.log")"
grep -q "run 5 attempt 1 (slurm:$j) carried over" "$T/home1/weftd.log" ||
    fail "run 5 was not carried over: $(tail -3 "$T/home1/weftd.log")"
done11() { W home1 show 11 | grep -q "state *succeeded"; }
wait_for 180 done11 || fail "job 11 did not finish after the restart: $(W home1 show 11)"
W home1 show 11 | grep -q "run *5, attempt 1 (done)" || fail "job 11 needed another attempt: $(W home1 show 11)"
st=$(wait_final "$j" 60)
[ "$st" = COMPLETED ] || fail "Slurm job $j ended $st"
pass "kill -9 of weftd: the next weftd followed Slurm job $j to the end, attempt 1"

# Bad input: an unknown executor is refused with one line.
out=$(weftd --home "$T/home2" --executor pbs 2>&1); rc=$?
[ $rc = 64 ] && grep -q "unknown executor 'pbs'" <<<"$out" || fail "unknown executor: $rc: $out"
pass "an unknown executor is refused"

summary
