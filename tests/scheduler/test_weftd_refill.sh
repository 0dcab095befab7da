#!/bin/bash
# test_weftd_refill.sh: continuous packing through weftd with real workers.
# With fewer slots than packs, one run takes every queued compatible job and
# its worker admits them pack_size at a time as slots free: each job ends
# with its solo adapter, bitwise; a job cancelled while it waits for a slot
# never trains; kill -9 of weftd, or of a rank, after the run was planned and
# before the waiting tenants' first steps: every job still ends exactly once
# (one final state event) with the same bits.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp wrefill

make_corpora 4
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"
start() { weftd --home "$T/$1" --slots 1 --pack-size 2 --liveness 20 >/dev/null ||
              fail "weftd would not start on $1"; }
# the final state events of every job: one per job, or the job ids at fault
once() {
    sqlite3 "$T/$1/weft.db" "select job, count(*) from events where kind = 'state' and
        (detail like '%\"succeeded\"%' or detail like '%\"failed\"%' or detail like '%\"cancelled\"%')
        group by job having count(*) != 1"
}

TEN_a='{ name = "a"; data = "a.h5"; steps = 6; }'
TEN_b='{ name = "b"; data = "b.h5"; steps = 14; lr = 0.005; r = 8; alpha = 16.0; schedule = "linear"; }'
TEN_c='{ name = "c"; data = "c.h5"; steps = 4; schedule = "constant"; }'
TEN_d='{ name = "d"; data = "d.h5"; steps = 9; warmup = 2; }'
spec() { # name out tenants...
    local name=$1 out=$2; shift 2
    {
        echo "name = \"$name\"; mode = \"lora\"; model = \"base.h5\"; output = \"$out\";"
        echo "train = { batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 3;"
        echo "          checkpoint_every = 2; keep_checkpoints = 2; eval_windows = 4; };"
        echo "lora = { r = 4; alpha = 8.0; dropout = 0.1; };"
        echo "resources = { ranks = 1; threads = 1; };"
        tenants_block "$@"
    } > "$name.cfg"
}
for t in a b c d; do
    spec solo-$t solo-$t $t
    mpirun -np 1 weft-worker solo-$t.cfg >solo-$t.log 2>&1 || fail "solo $t: $(tail -3 solo-$t.log)"
done
same_bits() { # out what
    for t in a b c d; do
        cmp -s solo-$t/$t/adapter.h5 "$1/$t/adapter.h5" ||
            fail "$2: $t's adapter differs from its solo run's"
    done
}

# 1. One slot, packs of two, four jobs: one run takes all four and refills.
spec four out1 a b c d
start home1
W home1 submit four.cfg --wait >wait1.log 2>&1 || fail "the refilling run did not end well: $(tail -5 wait1.log)"
[ -d home1/runs/1 ] && [ ! -d home1/runs/2 ] || fail "want one run for four jobs: $(ls home1/runs)"
grep -q "pack_size = 2" home1/runs/1/run.cfg || fail "the run's spec does not train two at once"
[ "$(grep -c 'data = ' home1/runs/1/run.cfg)" = 4 ] || fail "the run's spec does not hold four tenants"
grep -q "takes a free slot" home1/runs/1/attempt-1.log || fail "no tenant was admitted as a slot freed"
same_bits out1 "weftd refill"
[ -z "$(once home1)" ] || fail "jobs without exactly one final state: $(once home1)"
pass "four jobs, one slot, packs of two: one run admits them as slots free, solo bits"

# 2. A job cancelled while it waits for a slot of a running pack never trains
# (before, the worker took the order only for tenants training, and admitted
# the cancelled one when the long one ended).
TEN_l='{ name = "long"; data = "a.h5"; steps = 300; }'
TEN_w='{ name = "w"; data = "b.h5"; steps = 5; }'
spec wait out2 l w
weftd --home "$T/home2" --slots 1 --pack-size 1 --liveness 20 >/dev/null || fail "weftd home2"
W home2 submit wait.cfg >/dev/null || fail "submit wait"
for _ in $(seq 100); do
    [ "$(W home2 show 1 | awk '$1 == "state" { print $2 }')" = running ] && break
    sleep 0.1
done
W home2 cancel 2 >/dev/null || fail "cancel of the waiting job"
W home2 watch 1 >watch2.log 2>&1 || fail "the long job did not succeed: $(tail -3 watch2.log)"
for _ in $(seq 100); do
    [ -f home2/runs/1/out/result.json ] && break
    sleep 0.1
done
python3 -c "
import json; r = {t['name']: t['status'] for t in json.load(open('home2/runs/1/out/result.json'))['tenants']}
assert r == {'long': 'succeeded', 'w': 'cancelled'}, r
" || fail "result.json: want long succeeded, w cancelled: $(cat home2/runs/1/out/result.json)"
! grep -q '"tenant":"w","kind":"train"' home2/runs/1/out/metrics.jsonl ||
    fail "the job cancelled while waiting for a slot trained anyway"
[ ! -e out2/w/adapter.h5 ] || fail "the cancelled waiting job published an adapter"
[ "$(W home2 show 2 | awk '$1 == "state" { print $2 }')" = cancelled ] || fail "job 2 is not cancelled"
pass "a job cancelled while it waits for a slot in the pack never trains"

# 3. kill -9 of weftd after the run was planned, before c and d's first steps
# (they wait for slots); a new weftd carries the run over.
spec killd out3 a b c d
start home3
W home3 submit killd.cfg >/dev/null || fail "submit killd"
for _ in $(seq 200); do
    [ -f home3/runs/1/out/metrics.jsonl ] && grep -q '"tenant":"a","kind":"train"' home3/runs/1/out/metrics.jsonl && break
    sleep 0.05
done
! grep -q '"tenant":"d","kind":"train"' home3/runs/1/out/metrics.jsonl ||
    echo "note: d trained before weftd was killed (a slow machine's luck)"
kill -9 "$(cat "$T/home3/weftd.pid")"
for _ in $(seq 50); do flock -n "$T/home3/weftd.pid" true && break; sleep 0.1; done
start home3
W home3 watch 1 2 3 4 >watch3.log 2>&1 || fail "after the restart: $(tail -5 watch3.log)"
same_bits out3 "kill -9 of weftd"
[ -z "$(once home3)" ] || fail "jobs without exactly one final state after kill -9 of weftd: $(once home3)"
pass "kill -9 of weftd before the waiting tenants' first steps: each job ends once, solo bits"

# 4. kill -9 of the rank at pack step 5 (a and c have ended... b trains, d
# waits): the retry resumes from the checkpoint with the same members.
spec killr out4 a b c d
WEFT_FAULT=0:5:kill start home4
W home4 submit killr.cfg --wait >wait4.log 2>&1 || fail "the killed run did not heal: $(tail -5 wait4.log)"
[ -f home4/runs/1/attempt-2.log ] || fail "the rank was not killed (no second attempt)"
grep -q "resuming from" home4/runs/1/attempt-2.log || fail "the retry did not resume from a checkpoint"
same_bits out4 "kill -9 of a rank"
[ -z "$(once home4)" ] || fail "jobs without exactly one final state after kill -9 of a rank: $(once home4)"
pass "kill -9 of a rank mid-refill: the retry resumes with the same members, each job once, solo bits"

summary
