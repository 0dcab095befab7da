#!/bin/bash
# test_client_input.sh: weft's client commands as a new user meets them:
# COMMAND --help prints its usage and exits 0 (show, watch, cancel, results,
# logs, plot); weft logs of a job whose data failed to shard says why.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-client-input-XXXXXX)
cleanup() {
    [ -f "$T/home/weftd.pid" ] && kill "$(cat "$T/home/weftd.pid")" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

for c in show watch cancel results logs plot; do
    out=$(weft $c --help 2>&1)
    rc=$?
    [ $rc = 0 ] && [ "${out#usage: weft $c }" != "$out" ] || fail "weft $c --help: exit $rc: $out"
done
pass "show, watch, cancel, results, logs, plot --help: their usage, exit 0"

make_corpus a GPL-3 >/dev/null
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"
weftd --home "$T/home" --slots 2 >/dev/null || fail "weftd would not start"
W() { weft --home "$T/home" "$@"; }
field() { # job key: one field of weft show --json
    W show "$1" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin).get('$2'))"
}

# data that weft shard refuses: the job fails before any run
printf '{"text": "fine"}\nnot json at all\n' > bad.jsonl
cat > bad.cfg <<CFG
name = "bad"; mode = "lora"; model = "base.h5"; output = "out-bad";
train = { steps = 4; batch_size = 4; seq_len = 16; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "b"; data = "bad.jsonl"; } );
CFG
W submit bad.cfg --wait >bad.log 2>&1 && fail "a job whose data cannot be sharded succeeded"
[ "$(field 1 state)" = failed ] || fail "job 1 is $(field 1 state), want failed"
out=$(W logs 1)
echo "$out" | grep -q "^job 1 never ran: failed: " || fail "weft logs 1: $out"
echo "$out" | grep -q "has not run yet" && fail "weft logs 1 says it has not run yet: $out"
pass "weft logs of a job failed while sharding: $out"

summary
