#!/bin/bash
# test_weftd_admit.sh: a job submitted after a pack started joins that pack
# while it trains (ADMIT, docs/PROTOCOL.md), with real weftd, mpirun and
# files. Two ranks, one group's worth of slots, packs of two: jobs a and
# long fill the pack; job c, submitted later, waits in the queue until a
# ends, then joins run 1 at a step boundary.
# 1. c ran in run 1 (store, weft show, the run's log), and every adapter
#    (c's, and those of a and long, whose pack was rebuilt around c) is
#    bitwise the one trained alone; c's metrics are its solo run's.
# 2. kill -9 of a rank after c was admitted (the newest checkpoint predates
#    it), then again after a checkpoint that holds c: each retry resumes
#    with every member at its step, and every job ends once with solo bits.
# 3. kill -9 of weftd right after it admitted c: carried over, the same.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp admit

make_corpus a GPL-3 >/dev/null
make_corpus b Apache-2.0 >/dev/null
make_corpus c Artistic >/dev/null
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"
start() { weftd --home "$T/$1" --slots 2 --pack-size 2 --liveness 20 >/dev/null ||
              fail "weftd would not start on $1"; }
# the final state events of every job: one per job, or the job ids at fault
once() {
    sqlite3 "$T/$1/weft.db" "select job, count(*) from events where kind = 'state' and
        (detail like '%\"succeeded\"%' or detail like '%\"failed\"%' or detail like '%\"cancelled\"%')
        group by job having count(*) != 1"
}
state() { W "$1" show "$2" | awk '$1 == "state" { print $2 }'; }
# waits up to 60 s for a command to succeed
until_ok() {
    for _ in $(seq 600); do "$@" && return 0; sleep 0.1; done
    return 1
}

# Different steps, learning rates, ranks and schedules share the pack.
# a ends at pack step 400 (c is submitted long before), c joins then and
# still trains at the checkpoints of steps 450 and 500, long outlasts both.
TEN_a='{ name = "a"; data = "a.h5"; steps = 400; }'
TEN_long='{ name = "long"; data = "b.h5"; steps = 800; lr = 0.005; r = 8; alpha = 16.0; schedule = "linear"; }'
TEN_c='{ name = "c"; data = "c.h5"; steps = 120; lr = 0.02; schedule = "constant"; seed = 9; }'
spec() { # name out tenants...
    local name=$1 out=$2; shift 2
    {
        echo "name = \"$name\"; mode = \"lora\"; model = \"base.h5\"; output = \"$out\";"
        echo "train = { batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 25; max_attempts = 5;"
        echo "          checkpoint_every = 50; keep_checkpoints = 2; eval_windows = 4; };"
        echo "lora = { r = 4; alpha = 8.0; dropout = 0.1; };"
        echo "resources = { ranks = 2; threads = 1; };"
        tenants_block "$@"
    } > "$name.cfg"
}
for t in a long c; do
    spec solo-$t solo-$t $t
    mpirun -np 2 weft-worker solo-$t.cfg >solo-$t.log 2>&1 || fail "solo $t: $(tail -3 solo-$t.log)"
done
same_bits() { # out what
    for t in a long c; do
        cmp -s solo-$t/$t/adapter.h5 "$1/$t/adapter.h5" ||
            fail "$2: $t's adapter differs from its solo run's"
    done
}
# A tenant's metric lines without timings and run fields.
tmetrics() { # file tenant
    grep "\"tenant\":\"$2\"" "$1" |
        sed -E 's/"(elapsed|tokens_per_s|attempt|run|allreduce_s)":[^,}]*,?//g' | sort
}
# submits c once run 1 trains, while a still does: no slot, no rank for it
submit_late() { # home
    until_ok grep -q '"kind":"train".*"tenant":"a"' "$1/runs/1/out/metrics.jsonl" 2>/dev/null ||
        fail "run 1 never started training"
    W "$1" submit late.cfg >/dev/null || fail "submit late.cfg"
    [ "$(state "$1" 3)" = queued ] || fail "c should wait in the queue while the pack is full"
}
spec first out1 a long
spec late out1 c

# 1. c joins run 1 when a ends; everyone's bits are their solo runs'.
start home1
W home1 submit first.cfg >/dev/null || fail "submit first.cfg"
submit_late home1
W home1 watch 1 2 3 >watch1.log 2>&1 || fail "the jobs did not all succeed: $(tail -5 watch1.log)"
[ "$(sqlite3 home1/weft.db 'select run from jobs where id = 3')" = 1 ] ||
    fail "c did not run in run 1: $(sqlite3 home1/weft.db 'select id, run from jobs')"
[ ! -d home1/runs/2 ] || fail "a second run was planned: $(ls home1/runs)"
W home1 show 3 | grep -q "admitted  into run 1" || fail "weft show does not say c was admitted: $(W home1 show 3)"
W home1 logs 3 | grep -q "tenant c joins the pack" || fail "the run's log does not show c joining"
grep -q "tenant c takes a free slot" home1/runs/1/attempt-1.log || fail "c never took a slot"
[ "$(grep -c 'name = "c"' home1/runs/1/run.cfg)" = 1 ] || fail "run 1's spec does not list c once"
same_bits out1 "a job admitted into a running pack"
diff <(tmetrics solo-c/metrics.jsonl c) <(tmetrics home1/runs/1/out/metrics.jsonl c) >/dev/null ||
    fail "c's metrics in the pack differ from its solo run's"
[ -z "$(once home1)" ] || fail "jobs without exactly one final state: $(once home1)"
pass "a job submitted after its pack started joins it as a slot frees: solo bits for all three"

# 2. The pack holds still at step 401 (a fault point of attempt 1: a ended
# and was checkpointed at step 400), c is admitted meanwhile, and a rank is
# killed: the retry reads c from the spec but not from ckpt-400, so c
# starts at its step 0. Then a rank is killed again after a checkpoint that
# holds c: that retry resumes c at its step.
kill_rank() { # home
    local sid pid
    sid=$(sqlite3 "$1/weft.db" "select executor_id from runs where id = 1")
    pid=$(ps -o pid=,comm= -s "$sid" | awk '$2 == "weft-worker" { print $1; exit }')
    [ -n "$pid" ] || fail "no rank of run 1 to kill (session $sid)"
    kill -9 "$pid"
}
# a checkpoint after step 400 that holds c (c joined once a ended)
ckpt_with_c() {
    local d
    for d in "$1"/runs/1/out/ckpt-*; do
        [ "${d##*-}" -gt 400 ] 2>/dev/null &&
            h5dump -a /tasks/c/step "$d/state.h5" >/dev/null 2>&1 && return 0
    done
    return 1
}
spec first out2 a long
spec late out2 c
WEFT_FAULT=0:401:hang start home2
W home2 submit first.cfg >/dev/null || fail "submit first.cfg (2)"
submit_late home2
until_ok grep -q "job 3 (c) admitted into run 1" home2/weftd.log || fail "c was not admitted (2)"
kill_rank home2
until_ok grep -q "resuming from" home2/runs/1/attempt-2.log 2>/dev/null ||
    fail "the first retry did not resume: $(tail -3 home2/runs/1/attempt-2.log)"
grep -q "resuming from .*ckpt-400 " home2/runs/1/attempt-2.log ||
    fail "the first retry did not resume from ckpt-400: $(head -2 home2/runs/1/attempt-2.log)"
grep -q "tenant c was admitted after step 400" home2/runs/1/attempt-2.log ||
    fail "the first retry did not take c as a tenant its checkpoint lacks"
until_ok ckpt_with_c home2 || fail "the retry never checkpointed c"
kill_rank home2
until_ok grep -q "resuming from" home2/runs/1/attempt-3.log 2>/dev/null ||
    fail "the second retry did not resume: $(tail -3 home2/runs/1/attempt-3.log)"
! grep -q "tenant c was admitted after step" home2/runs/1/attempt-3.log ||
    fail "the second retry took c as a newcomer although its checkpoint holds it"
W home2 watch 1 2 3 >watch2.log 2>&1 || fail "after the kills: $(tail -5 watch2.log)"
[ "$(sqlite3 home2/weft.db 'select run from jobs where id = 3')" = 1 ] || fail "c left run 1 (2)"
same_bits out2 "kill -9 after an admission"
[ -z "$(once home2)" ] || fail "jobs without exactly one final state after the kills: $(once home2)"
pass "kill -9 after an admission, before and after a checkpoint holds c: each job once, solo bits"

# 3. kill -9 of weftd right after it admitted c: the group trains on, a new
# weftd carries the run over and tells it again (ADMIT repeated for every
# member: no FAIL), every job ends once with its solo bits.
spec first out3 a long
spec late out3 c
start home3
W home3 submit first.cfg >/dev/null || fail "submit first.cfg (3)"
submit_late home3
until_ok grep -q "job 3 (c) admitted into run 1" home3/weftd.log || fail "c was not admitted (3)"
kill -9 "$(cat "$T/home3/weftd.pid")"
for _ in $(seq 50); do flock -n "$T/home3/weftd.pid" true && break; sleep 0.1; done
start home3
W home3 watch 1 2 3 >watch3.log 2>&1 || fail "after kill -9 of weftd: $(tail -5 watch3.log)"
grep -q "carried over" home3/weftd.log || fail "the run was not carried over the restart"
grep -q "run 1 attempt 1: ADMIT again" home3/weftd.log || fail "the new weftd did not repeat ADMIT"
[ "$(sqlite3 home3/weft.db 'select run from jobs where id = 3')" = 1 ] || fail "c left run 1 (3)"
! grep -q "cannot join the pack" home3/runs/1/attempt-1.log ||
    fail "the repeated ADMIT failed a member: $(grep 'cannot join' home3/runs/1/attempt-1.log)"
same_bits out3 "kill -9 of weftd after an admission"
[ -z "$(once home3)" ] || fail "jobs without exactly one final state after kill -9 of weftd: $(once home3)"
pass "kill -9 of weftd after an admission: carried over, each job once, solo bits"

summary
