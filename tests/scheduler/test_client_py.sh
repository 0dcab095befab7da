#!/bin/bash
# test_client_py.sh: scripts/weft_client.py, written against docs/PROTOCOL.md
# alone, submits a batch to a real weftd and watches it to the end.
set -u
. "$top_srcdir/tests/lib.sh"
/usr/bin/python3 -c 'import zmq' 2>/dev/null || { echo "SKIP: python3-zmq missing"; exit 77; }
T=$(mktemp -d /tmp/weft-test-pyclient-XXXXXX)
trap '[ -f "$T/home/weftd.pid" ] && kill "$(cat "$T/home/weftd.pid")"; rm -rf "$T"' EXIT
cd "$T"
make_corpus a Apache-2.0 >/dev/null
make_corpus b MPL-2.0 >/dev/null
weft init-model --preset tiny -o base.h5 >/dev/null || fail "init-model"
cat > batch.cfg <<CFG
name = "py"; mode = "lora"; model = "base.h5";
train = { steps = 20; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 10; };
lora = { r = 2; alpha = 4.0; targets = ["attn.c_attn"]; };
resources = { ranks = 1; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; }, { name = "b"; data = "b.h5"; } );
CFG
weftd --home "$T/home" --slots 2 >/dev/null || fail "weftd"
out=$(/usr/bin/python3 "$top_srcdir/scripts/weft_client.py" --endpoint "ipc://$T/home/weftd.sock" \
    submit batch.cfg --watch 2>&1) || fail "weft_client.py: $out"
echo "$out" | grep -q "job 1: succeeded" && echo "$out" | grep -q "job 2: succeeded" ||
    fail "not both succeeded: $out"
echo "$out" | grep -q "val_loss" || fail "no evaluation seen: $out"
echo "$out" | grep -q "step 20/20" || fail "no final step seen: $out"
out=$(/usr/bin/python3 "$top_srcdir/scripts/weft_client.py" --endpoint "ipc://$T/home/weftd.sock" \
    submit /nonexistent.cfg 2>&1); [ $? -ne 0 ] || fail "a missing spec did not fail"
echo 'name = "x"; mode = "lora"; oops = 1;' > bad.cfg
out=$(/usr/bin/python3 "$top_srcdir/scripts/weft_client.py" --endpoint "ipc://$T/home/weftd.sock" \
    submit bad.cfg 2>&1); [ $? -ne 0 ] && echo "$out" | grep -q "oops" || fail "bad spec: $out"
pass "weft_client.py submitted, watched to the end, and reported a bad spec"
summary
