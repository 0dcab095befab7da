#!/bin/bash
# test_asha.sh: weftd with real workers: a finished tenant's job ends at once
# while its pack goes on; an early-stopped sweep (ASHA) stops trials with STOP,
# each decision following the rule (top ceil(n/eta) of the trials that reached
# the rung so far); stopped trials end `stopped` with their adapter published,
# and `weft results` shows the rung and the best step.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp asha

make_corpus a GPL-3 >/dev/null
make_corpus b Apache-2.0 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

# 1. A 2-step tenant packed with a long one: its job ends while the pack runs.
cat > pair.cfg <<'CFG'
name = "pair"; mode = "lora"; model = "base.h5"; output = "out-pair";
train = { steps = 100000; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 50;
          checkpoint_every = 1000; eval_windows = 2; };
lora = { r = 4; alpha = 8.0; };
resources = { ranks = 1; threads = 1; };
tenants = ( { name = "short"; data = "a.h5"; steps = 2; }, { name = "long"; data = "b.h5"; } );
CFG
weftd --home "$T/home1" --slots 1 --pack-size 4 >/dev/null || fail "weftd would not start"
W home1 submit pair.cfg >/dev/null || fail "submit pair"
ok=0
for _ in $(seq 1 100); do
    s1=$(W home1 show 1 | awk '$1 == "state" { print $2 }')
    s2=$(W home1 show 2 | awk '$1 == "state" { print $2 }')
    [ "$s1" = succeeded ] && [ "$s2" = running ] && { ok=1; break; }
    sleep 0.2
done
[ $ok = 1 ] || fail "the 2-step tenant's job is '$s1' (long: '$s2'), want succeeded while the pack runs"
[ -s out-pair/short/adapter.h5 ] || fail "the 2-step tenant's adapter was not published at once"
W home1 cancel 2 >/dev/null
pass "a tenant that finished in a running pack ends its job at once (adapter published)"

# 2. ASHA: 9 trials, rungs at 10, 30, 90 and 270 of 600 steps, eta 3; the
# best learning rate first, so that later arrivals rank below it.
cat > sweep.cfg <<'CFG'
name = "sw"; mode = "lora"; model = "base.h5"; output = "out-sw";
train = { steps = 600; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 0;
          checkpoint_every = 100; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; };
resources = { ranks = 1; threads = 1; };
tenants = ( { name = "t"; data = "a.h5"; } );
sweep = { train = { lr = [0.03, 0.003, 0.0003]; }; lora = { r = [8, 4, 2]; };
          early_stop = { policy = "asha"; eta = 3; min_steps = 10; metric = "val_loss"; }; };
CFG
weftd --home "$T/home2" --slots 1 --pack-size 9 --max-watch-per-client 16 >/dev/null || fail "weftd would not start"
W home2 submit sweep.cfg --wait >wait.log 2>&1 || fail "the early-stopped sweep did not end well: $(tail -5 wait.log)"
W home2 results 1 --json > res.json || fail "results"
python3 - res.json "$T/home2/weft.db" <<'PY' || fail "ASHA results or decisions are wrong"
import json, sqlite3, sys, math
jobs = json.load(open(sys.argv[1]))["jobs"]
states = [j["state"] for j in jobs]
assert len(jobs) == 9, len(jobs)
assert set(states) <= {"succeeded", "stopped"}, states
nstop = states.count("stopped")
assert 3 <= nstop <= 8, states
for j in jobs:
    assert "best_val_step" in j, j
    if j["state"] == "stopped":
        assert j.get("rung") is not None and j.get("stopped_at_rung") is True, j
        assert j["step"] < 600, j
        assert j.get("output"), j
# every decision follows the rule, replayed in the order weftd made them
db = sqlite3.connect(sys.argv[2])
seen = {}
for (detail,) in db.execute("select detail from events where kind = 'rung' order by id"):
    d = json.loads(detail)
    seen.setdefault(d["rung"], []).append(d["val_loss"])
    losses = seen[d["rung"]]
    assert d["reached"] == len(losses), d
    rank = 1 + sum(1 for x in losses if x < d["val_loss"])
    want = "continue" if rank <= math.ceil(len(losses) / 3) else "stop"
    assert d["decision"] == want, (d, losses)
assert len(seen.get(0, [])) == 9, seen
print("stopped", nstop, "rung0", seen.get(0), "rung1", seen.get(1))
PY
for j in $(python3 -c "import json; print(' '.join(j['name'] for j in json.load(open('res.json'))['jobs'] if j['state']=='stopped'))"); do
    [ -s "out-sw/$j/adapter.h5" ] || fail "stopped trial $j has no published adapter"
done
W home2 results 1 > res.txt || fail "results table"
grep -q "stopped" res.txt && grep -q "BEST_AT" res.txt && grep -Eq " [0-9]\* " res.txt ||
    fail "results do not mark stopped trials with their rung: $(cat res.txt)"
pass "ASHA: 9 trials, each rung decision by the rule; stopped trials published and marked"

summary
