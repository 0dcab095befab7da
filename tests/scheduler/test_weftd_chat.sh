#!/bin/bash
# test_weftd_chat.sh: a tenant's raw chat JSONL in a spec (format = "chat",
# template): weftd shards it as chat data with a loss mask, the job trains
# and succeeds; the same file as plain JSONL is another preparation (the
# cache file names the format), and the chat shards are what `weft shard
# --format chat` writes.
set -u
. "$top_srcdir/tests/lib.sh"
T=$(mktemp -d /tmp/weft-test-weftd-chat-XXXXXX)
cleanup() {
    [ -f "$T/home/weftd.pid" ] && kill "$(cat "$T/home/weftd.pid")" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

for c in ls cp mv rm cat grep sed awk tar find sort uniq head tail wc du df ps kill top; do
    for q in "What does $c do?" "Explain $c." "$c?"; do
        printf '{"text": "%s", "messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s is a command."}]}\n' "$q $q $q $q $q $q $q $q" "$q" $c
    done
done > qa.jsonl
weft init-model --preset tiny --ctx 64 --seed 3 -o base.h5 >/dev/null || fail "init-model"
cat > chat.cfg <<CFG
name = "chat"; mode = "lora"; model = "base.h5"; output = "out";
train = { steps = 6; batch_size = 4; seq_len = 64; lr = 0.01; eval_every = 3; eval_windows = 2; };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "qa"; data = "qa.jsonl"; format = "chat"; template = "plain"; },
            { name = "raw"; data = "qa.jsonl"; } );
CFG
weftd --home "$T/home" --slots 2 >/dev/null || fail "weftd would not start"
weft --home "$T/home" submit chat.cfg --wait >wait.log 2>&1 || fail "the chat job failed: $(tail -5 wait.log)"
n=$(ls "$T"/home/data/*chat-plain*.h5 2>/dev/null | wc -l)
[ "$n" = 1 ] || fail "no chat cache file: $(ls "$T/home/data")"
[ "$(ls "$T"/home/data/*-jsonl-*.h5 2>/dev/null | wc -l)" = 1 ] ||
    fail "the same file as jsonl was not its own preparation: $(ls "$T/home/data")"
cache=$(ls "$T"/home/data/*chat-plain*.h5)
/usr/bin/python3 - "$cache" <<'PY' || fail "the chat cache file has no loss mask or the wrong format"
import sys, h5py
with h5py.File(sys.argv[1], "r") as h:
    fmt = h.attrs["data_format"]
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    assert fmt == "chat", fmt
    m = h["/train/loss_mask"][:]
    assert len(m) == len(h["/train/tokens"]) and 0 < m.sum() < len(m), m.sum()
PY
grep -q succeeded wait.log || fail "no success line: $(tail -3 wait.log)"
pass "format = \"chat\" in a spec: weftd shards chat data with a loss mask, apart from the same file as jsonl; both jobs succeed"
summary
