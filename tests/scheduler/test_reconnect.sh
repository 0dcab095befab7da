#!/bin/bash
# test_reconnect.sh: `weft watch` and `weft submit --wait` outlive a weftd
# restart (kill -9, then a new weftd on the same home): both reconnect and
# resume from the last event seen, so every training step is shown exactly
# once, and both end with the job's state instead of waiting 600 s.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-reconnect-XXXXXX)
cleanup() {
    [ -f "$T/home/weftd.pid" ] && kill "$(cat "$T/home/weftd.pid")" 2>/dev/null
    for p in ${CLIENTS:-}; do kill "$p" 2>/dev/null; done
    pkill -f "weft-worker $T" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

STEPS=300
make_corpus t0 GPL-3 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"
cat >job.cfg <<CFG
name = "rc"; mode = "lora"; model = "base.h5"; output = "out";
train = { steps = $STEPS; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 100;
          checkpoint_every = 50; eval_windows = 2; };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "t0"; data = "t0.h5"; } );
CFG
start() { weftd --home "$T/home" --slots 2 >/dev/null || fail "weftd would not start"; }
stored() { sqlite3 "$T/home/weft.db" "select count(*) from metrics where kind = 'train'" 2>/dev/null || echo 0; }

start
timeout 240 weft --home "$T/home" submit job.cfg --wait --json >wait.log 2>wait.err &
WAIT=$!
for i in $(seq 100); do [ "$(stored)" -gt 0 ] && break; sleep 0.1; done
timeout 240 weft --home "$T/home" watch 1 --json >watch.log 2>watch.err &
WATCH=$!
CLIENTS="$WAIT $WATCH"
# Both clients are streaming before weftd goes.
for i in $(seq 300); do
    grep -q '"kind": "train"' watch.log && grep -q '"kind": "train"' wait.log &&
        [ "$(stored)" -gt 20 ] && break
    sleep 0.1
done
grep -q '"kind": "train"' watch.log || fail "watch showed no step before the restart"
before=$(stored)
[ "$before" -lt "$STEPS" ] || fail "the job ended before weftd could be restarted"
kill -9 "$(cat "$T/home/weftd.pid")"
# The lock goes with the last holder of its file (a child between fork and exec).
for i in $(seq 50); do flock -n "$T/home/weftd.pid" true && break; sleep 0.1; done
sleep 1
start
wait $WAIT
rc_wait=$?
wait $WATCH
rc_watch=$?
CLIENTS=
[ $rc_wait = 0 ] || fail "submit --wait exited $rc_wait after a weftd restart: $(tail -3 wait.err)"
[ $rc_watch = 0 ] || fail "watch exited $rc_watch after a weftd restart: $(tail -3 watch.err)"
grep -q "reconnected" watch.err || fail "watch did not say it reconnected: $(cat watch.err)"

# Every train step exactly once in each client's stream, and the end.
check='
import json, sys
text, dec, pos, steps, ends = open(sys.argv[1]).read(), json.JSONDecoder(), 0, [], []
while pos < len(text):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos == len(text):
        break
    obj, pos = dec.raw_decode(text, pos)
    if obj.get("kind") == "train":
        steps.append(obj["data"]["step"])
    if obj.get("end"):
        ends.append(obj["state"])
want = list(range(1, int(sys.argv[2]) + 1))
if steps != want or ends != ["succeeded"]:
    dup = len(steps) - len(set(steps))
    miss = sorted(set(want) - set(steps))[:10]
    print("%d train lines, %d duplicated, missing %s, ends %s" % (len(steps), dup, miss, ends))
    sys.exit(1)
'
out=$(/usr/bin/python3 -c "$check" wait.log $STEPS) || fail "submit --wait's stream: $out"
out=$(/usr/bin/python3 -c "$check" watch.log $STEPS) || fail "watch's stream: $out"
pass "weftd killed at $before of $STEPS steps and restarted: watch and submit --wait reconnected, each step shown once"
summary
