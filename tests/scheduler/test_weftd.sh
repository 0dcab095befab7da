#!/bin/bash
# test_weftd.sh: weftd and the weft CLI with real processes (weftd, weft,
# mpirun, weft-worker): a nightly batch of 8 tenants packed and finished, a
# killed worker group retried to the same bits, kill -9 of weftd mid-run,
# cancelling one tenant of a pack, garbage on the socket, one weftd per home.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-weftd-XXXXXX)
cleanup() {
    for h in "$T"/home*; do
        [ -f "$h/weftd.pid" ] && kill "$(cat "$h/weftd.pid")" 2>/dev/null
    done
    pkill -f "weft-worker $T" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

i=0
for lic in GPL-3 Apache-2.0 Artistic MPL-2.0 GPL-2 LGPL-2.1 CC0-1.0 GFDL-1.3; do
    make_corpus t$i $lic >/dev/null
    i=$((i + 1))
done
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

batch() { # name steps [extra tenant settings for t3]
    {
        echo "name = \"$1\"; mode = \"lora\"; model = \"base.h5\"; output = \"out-$1\";"
        echo "train = { steps = $2; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 20;"
        echo "          checkpoint_every = 10; eval_windows = 4; };"
        echo "lora = { r = 4; alpha = 8.0; targets = [\"attn.c_attn\", \"attn.c_proj\"]; };"
        echo "resources = { ranks = 2; threads = 1; };"
        echo "tenants = ("
        for k in 0 1 2 3 4 5 6 7; do
            sep=","; [ $k = 7 ] && sep=""
            echo "  { name = \"t$k\"; data = \"t$k.h5\"; }$sep"
        done
        echo ");"
    } > "$1.cfg"
}

start() { # home [weftd options]
    local h=$1; shift
    weftd --home "$T/$h" --slots 2 --pack-size 4 "$@" >/dev/null || fail "weftd would not start on $h"
}
W() { local h=$1; shift; weft --home "$T/$h" "$@"; }

# 1. A nightly batch of 8 tenants, packs of 4, slots for one 2-rank run: one
# run takes all 8 and trains 4 at once, refilling (continuous packing).
batch nightly 40
start home1
W home1 submit nightly.cfg --wait >watch1.log 2>&1 || fail "batch did not succeed: $(tail -5 watch1.log)"
W home1 results 1 --json > res1.json || fail "results"
n=$(grep -c '"state": "succeeded"' res1.json)
[ "$n" = 8 ] || fail "results list $n succeeded jobs, want 8"
runs=$(sqlite3 "$T/home1/weft.db" "select count(distinct run) from jobs")
[ "$runs" = 1 ] || fail "8 tenants in packs of 4 with slots for one run made $runs runs, want 1"
grep -q "pack_size = 4;" "$T/home1/runs/1/run.cfg" || fail "the run does not train 4 at once"
for k in 0 1 2 3 4 5 6 7; do
    [ -s out-nightly/t$k/adapter.h5 ] || fail "no adapter for t$k"
    [ -s out-nightly/t$k/peft/adapter_config.json ] && [ -s out-nightly/t$k/peft/adapter_model.safetensors ] ||
        fail "no PEFT folder beside t$k's adapter"
done
n=$(grep -c '"peft": ".*/out-nightly/t[0-7]/v1/peft"' res1.json)
[ "$n" = 8 ] || fail "results list $n PEFT folders, want 8"
W home1 results 1 | grep -q "t3: .*/out-nightly/t3/v1/adapter.h5  PEFT: .*/out-nightly/t3/v1/peft" ||
    fail "weft results does not show the PEFT path"
grep -q "succeeded" watch1.log || fail "watch printed no progress"
pass "nightly batch of 8 tenants: 1 run, 4 at once, 8 adapters (and their PEFT folders), results list 8"

# 1b. weft plot runs no shell: an output path holding a quote, $(...), spaces
# and a newline is written as named, and the command inside it never runs.
if command -v gnuplot >/dev/null; then
    d="$T/plot dir"; mkdir -p "$d"
    png="it's \$(touch pwned) \`touch pwned2\`
line.png"
    (cd "$d" && W home1 plot 1 -o "$png") >plot.log 2>&1 || fail "weft plot: $(cat plot.log)"
    png="$d/$png"
    [ -s "$png" ] || fail "weft plot did not write '$png': $(ls "$d")"
    [ "$(head -c 4 "$png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "'$png' is not a PNG"
    [ ! -e "$d/pwned" ] && [ ! -e "$d/pwned2" ] || fail "weft plot ran a command from its output path"
    pass "weft plot writes a PNG at a path with ', \$(...), spaces and a newline, and runs nothing"
else
    echo "SKIP: gnuplot is not installed: weft plot's path test not run"
fi

# 2. A worker group killed mid-run is retried and resumes to the same bits.
cp nightly.cfg retry.cfg; sed -i 's/"nightly"/"retry"/; s/out-nightly/out-retry/' retry.cfg
WEFT_FAULT=1:25:kill start home2
W home2 submit retry.cfg --wait >watch2.log 2>&1 || fail "retried batch did not succeed: $(tail -5 watch2.log)"
grep -q "lost (exit" "$T/home2/weftd.log" || fail "no run was lost: $(cat "$T/home2/weftd.log")"
attempts=$(sqlite3 "$T/home2/weft.db" "select max(attempt) from runs")
[ "$attempts" -ge 2 ] || fail "no second attempt"
for k in 0 1 2 3 4 5 6 7; do
    cmp -s out-nightly/t$k/adapter.h5 out-retry/t$k/adapter.h5 ||
        fail "t$k's adapter after a retry differs from the uninterrupted run's"
done
pass "a killed worker group is retried from its checkpoint: 8 adapters bit-identical"

# 3. kill -9 of weftd during runs; restart; every job finishes, each step once.
batch restart 300
start home3
W home3 submit restart.cfg >/dev/null || fail "submit"
for i in $(seq 100); do
    [ "$(sqlite3 "$T/home3/weft.db" "select count(*) from metrics" 2>/dev/null)" -gt 20 ] && break
    sleep 0.1
done
kill -9 "$(cat "$T/home3/weftd.pid")"
# The lock goes with the last holder of its file (a child between fork and exec).
for i in $(seq 50); do flock -n "$T/home3/weftd.pid" true && break; sleep 0.1; done
start home3
W home3 watch 1 2 3 4 5 6 7 8 >watch3.log 2>&1 || fail "after restart: $(tail -5 watch3.log)"
bad=$(sqlite3 "$T/home3/weft.db" "select count(*) from (select job, count(*) c, count(distinct step) d, max(step) m from metrics where kind = 'train' group by job) where c != 300 or d != 300 or m != 300")
jobs=$(sqlite3 "$T/home3/weft.db" "select count(distinct job) from metrics where kind = 'train'")
[ "$bad" = 0 ] && [ "$jobs" = 8 ] || fail "metrics after restart: $bad jobs without each of 300 steps exactly once ($jobs jobs)"
grep -q "carried over from before the restart" "$T/home3/weftd.log" || fail "no run was carried over"
pass "kill -9 of weftd mid-run: every job finished, every (job, step) stored exactly once"

# 4. Cancel one tenant of a running pack; the others succeed.
batch cancel 300
start home4
W home4 submit cancel.cfg >/dev/null || fail "submit"
for i in $(seq 100); do
    [ "$(sqlite3 "$T/home4/weft.db" "select count(*) from metrics where job = 2" 2>/dev/null)" -gt 3 ] && break
    sleep 0.1
done
W home4 cancel 2 | grep -q "2: cancelled" || fail "cancel did not answer"
W home4 watch 1 3 4 >watch4.log 2>&1 || fail "the rest of the pack did not succeed: $(tail -5 watch4.log)"
state=$(W home4 show 2 --json | grep -o '"state": "[a-z]*"')
[ "$state" = '"state": "cancelled"' ] || fail "job 2 is $state"
steps=$(sqlite3 "$T/home4/weft.db" "select max(step) from metrics where job = 2 and kind = 'train'")
[ "$steps" -lt 300 ] || fail "the cancelled tenant trained to the end"
[ ! -e out-cancel/t1/adapter.h5 ] || fail "the cancelled tenant has an adapter"
pass "one tenant cancelled inside its pack (at step $steps); the others succeeded"

# 5. Garbage on the socket.
/usr/bin/python3 "$top_srcdir/tests/scheduler/garbage.py" "ipc://$T/home4/weftd.sock" || fail "garbage"
pass "garbage rejected and counted; weftd answers the next request"

# A full fine-tuning job through weftd: metrics stored, the model published.
cat > full.cfg <<CFG
name = "fullft"; mode = "full"; model = "base.h5"; data = "t0.h5"; output = "out-full";
train = { steps = 20; batch_size = 4; seq_len = 16; lr = 0.003; eval_every = 10; eval_windows = 4; };
resources = { ranks = 2; threads = 1; };
CFG
W home4 submit full.cfg --wait >full.log 2>&1 || fail "full job: $(tail -5 full.log)"
fid=$(W home4 ls --name fullft --json | grep -o '"id": [0-9]*' | head -1 | grep -o '[0-9]*')
n=$(sqlite3 "$T/home4/weft.db" "select count(*) from metrics where job = $fid and kind = 'train'")
[ "$n" = 20 ] || fail "full job stored $n train metrics, want 20"
[ -s out-full/model.h5 ] || fail "the full job's model was not published"
pass "a full fine-tuning job through weftd: 20 steps stored, model published"

# 6. A second weftd on the same home refuses, naming the first.
pid=$(cat "$T/home4/weftd.pid")
out=$(weftd --home "$T/home4" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "another weftd (pid $pid)" || fail "second weftd: $rc $out"
pass "a second weftd on the same home refuses and names pid $pid"

# 6b. A lock held a moment longer (a weftd still dying) is waited for.
mkdir -p "$T/home6"
flock "$T/home6/weftd.pid" sleep 1 &
sleep 0.2
start home6
wait
grep -q "listening" "$T/home6/weftd.log" || fail "weftd did not start after the lock came free"
pass "a restart waits for a lock that is let go within 3 s"

# Bad input at the door: a spec error comes back with its line.
echo 'name = "x"; mode = "lora"; model = "base.h5"; trian = {};' > bad.cfg
out=$(W home4 submit bad.cfg 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "bad.cfg:1: trian" || fail "bad spec: $rc $out"
out=$(weft --home "$T/nohome" ls 2>&1); rc=$?
[ $rc = 69 ] && echo "$out" | grep -q "no weftd" || fail "no daemon: $rc $out"
pass "a bad spec is refused with its file:line; no daemon exits 69"

summary
