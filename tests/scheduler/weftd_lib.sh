# tests/scheduler/weftd_lib.sh: shared helpers for the shell tests that drive
# a real weftd: a temporary folder whose weftds are stopped on exit, weftd
# and weft on a home in it, small LoRA batch specs, a job's state.
# shellcheck shell=bash
. "$top_srcdir/tests/lib.sh"

# weftd_tmp NAME: T=/tmp/weft-test-NAME-XXXXXX, made the working folder. On
# exit every weftd of a home in it is stopped, the test's own on_exit runs
# (where it defines one) and the folder is removed (kept when KEEP is set).
weftd_tmp() {
    T=$(mktemp -d "/tmp/weft-test-$1-XXXXXX")
    trap weftd_cleanup EXIT
    cd "$T" || fail "cd $T"
}
weftd_cleanup() {
    local h
    for h in "$T"/home*; do
        [ -f "$h/weftd.pid" ] && kill "$(cat "$h/weftd.pid")" 2>/dev/null
    done
    declare -F on_exit >/dev/null && on_exit
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}

# start HOME [weftd options]: a weftd on $T/HOME, 2 slots, packs of 4
# (WEFTD names another weftd executable than the one in PATH).
start() {
    local h=$1; shift
    "${WEFTD:-weftd}" --home "$T/$h" --slots 2 --pack-size 4 "$@" >/dev/null ||
        fail "weftd would not start on $h"
}
W() { local h=$1; shift; weft --home "$T/$h" "$@"; }

# spec NAME OUTPUT TENANT...: a LoRA batch of 6 steps on base.h5, one tenant
# per TENANT, written NAME:DATA or NAME:DATA:SETTINGS (its own settings,
# e.g. "slow:good.h5:lr = 1e-6;").
spec() {
    local name=$1 out=$2; shift 2
    echo "name = \"$name\"; mode = \"lora\"; model = \"base.h5\"; output = \"$out\";"
    echo "train = { steps = 6; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 3;"
    echo "          checkpoint_every = 3; eval_windows = 2; max_attempts = 1; };"
    echo "lora = { r = 2; alpha = 4.0; targets = [\"attn.c_attn\"]; };"
    echo "resources = { ranks = 2; threads = 1; };"
    echo "tenants = ("
    local sep="" t rest data extra
    for t in "$@"; do
        rest=${t#*:}
        data=${rest%%:*}
        extra=""
        [ "$data" != "$rest" ] && extra=" ${rest#*:}"
        echo "  $sep{ name = \"${t%%:*}\"; data = \"$data\";$extra }"
        sep=","
    done
    echo ");"
}

# state_of HOME ID: the job's state word (preparing, queued, ..., cancelled).
state_of() { W "$1" show "$2" --json | grep -o '"state": "[a-z]*"' | head -1 | cut -d'"' -f4; }
