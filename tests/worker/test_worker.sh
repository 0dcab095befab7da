#!/bin/bash
# test_worker.sh: weft-worker under a real mpirun: exact resume after a kill
# (LoRA pack of 4 and full), SIGUSR1 -> 75 -> exact resume, a truncated
# newest checkpoint, the watchdog, metrics exactly once, loss going down, and
# the exit codes of bad input.
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp worker

make_corpora 4
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"

lora_spec() { # name out [extra settings]
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "lora";
model = "base.h5";
output = "$2";
train = { steps = 24; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 8;
          checkpoint_every = 6; keep_checkpoints = 3; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; dropout = 0.1; targets = ["attn.c_attn", "mlp.c_fc"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; },
            { name = "b"; data = "b.h5"; lr = 0.005; r = 8; alpha = 16.0; },
            { name = "c"; data = "c.h5"; steps = 12; },
            { name = "d"; data = "d.h5"; batch_size = 8; } );
${3:-}
CFG
}

full_spec() { # name out
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "full";
model = "base.h5";
data = "a.h5";
output = "$2";
train = { steps = ${3:-20}; batch_size = 4; seq_len = 16; lr = 0.003; warmup = 2;
          eval_every = 10; checkpoint_every = 5; eval_windows = 4; };
resources = { ranks = 2; threads = 1; };
CFG
}

# Train losses and val losses of a metrics file, without timings.
# (A full run's one task is named after its spec, so that name goes too.)
losses() {
    sed -E -e 's/"(elapsed|tokens_per_s|attempt|run|allreduce_s|step_s|compute_s)":[^,}]*,?//g' \
        -e "s/\"tenant\":\"$(basename "$(dirname "$1")")\"/\"tenant\":\"-\"/" "$1" | sort
}

same_run() { # ref got: adapters/model and metrics equal
    local f
    for f in $(cd "$1" && ls */adapter.h5 model.h5 2>/dev/null); do
        cmp -s "$1/$f" "$2/$f" || fail "$2/$f differs from the uninterrupted run's"
    done
    diff <(losses "$1/metrics.jsonl") <(losses "$2/metrics.jsonl") >/dev/null ||
        fail "$2/metrics.jsonl differs from the uninterrupted run's"
}

# 1. Resume is exact after a kill (LoRA, 4 tenants; full).
lora_spec ref ref; lora_spec kill kill
mpirun -np 2 weft-worker ref.cfg >ref.log 2>&1 || fail "reference LoRA run: $(tail -3 ref.log)"
WEFT_FAULT=1:15:kill mpirun -np 2 weft-worker kill.cfg >kill1.log 2>&1
[ $? -ne 0 ] || fail "the killed run exited 0"
ls -d kill/ckpt-* >/dev/null 2>&1 || fail "no checkpoint before the kill"
mpirun -np 2 weft-worker kill.cfg >kill2.log 2>&1 || fail "resume: $(tail -3 kill2.log)"
grep -q "resuming from .*ckpt-12" kill2.log || fail "did not resume from ckpt-12: $(head -3 kill2.log)"
same_run ref kill
[ "$(ls ref/*/adapter.h5 | wc -l)" = 4 ] || fail "expected 4 adapters"
pass "LoRA pack of 4: killed at step 15, resumed, same bits"

full_spec fref fref; full_spec fkill fkill
mpirun -np 2 weft-worker fref.cfg >fref.log 2>&1 || fail "reference full run: $(tail -3 fref.log)"
WEFT_FAULT=0:12:kill mpirun -np 2 weft-worker fkill.cfg >fk1.log 2>&1
mpirun -np 2 weft-worker fkill.cfg >fk2.log 2>&1 || fail "full resume: $(tail -3 fk2.log)"
same_run fref fkill
pass "full fine-tuning: killed at step 12, resumed, same bits"

# Last night's adapter as tonight's start: it must agree with the spec and
# the backbone; a mismatch is one clear error (exit 78).
lora_spec cont cont
sed -i 's|{ name = "a"; data = "a.h5"; }|{ name = "a"; data = "a.h5"; init_adapter = "ref/a/adapter.h5"; }|' cont.cfg
mpirun -np 2 weft-worker cont.cfg >cont.log 2>&1 || fail "continuing an adapter: $(tail -3 cont.log)"
first=$(grep '"kind":"eval".*"step":0,.*"tenant":"a"' cont/metrics.jsonl | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
fresh=$(grep '"kind":"eval".*"step":0,.*"tenant":"a"' ref/metrics.jsonl | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
[ -n "$first" ] && [ "$first" != "$fresh" ] || fail "init_adapter did not change tenant a's starting point ($first vs $fresh)"
sed -i 's|init_adapter = "ref/a/adapter.h5"; }|init_adapter = "ref/a/adapter.h5"; r = 8; }|' cont.cfg
rm -rf cont
mpirun -np 2 weft-worker cont.cfg >cont2.log 2>&1; rc=$?
[ $rc = 78 ] && grep -q "init_adapter" cont2.log || fail "mismatched init_adapter: exit $rc: $(grep -v '^--\|^ \|^$' cont2.log | head -3)"
weft init-model --preset tiny --seed 4 -o other.h5 >/dev/null
sed -e 's|r = 8; }|}|' -e 's|model = "base.h5"|model = "other.h5"|' cont.cfg > cont3.cfg
mpirun -np 2 weft-worker cont3.cfg >cont3.log 2>&1; rc=$?
[ $rc = 78 ] && grep -q "base_sha256\|backbone" cont3.log || fail "adapter on another backbone: exit $rc: $(head -3 cont3.log)"
pass "init_adapter continues an adapter; a rank or backbone mismatch exits 78 with the reason"

# 5. Every step exactly once in metrics.jsonl across the kill.
for t in a b c d; do
    n=$(grep -c "\"kind\":\"train\".*\"tenant\":\"$t\"" kill/metrics.jsonl)
    u=$(grep "\"kind\":\"train\".*\"tenant\":\"$t\"" kill/metrics.jsonl | grep -o '"step":[0-9]*' | sort -u | wc -l)
    want=24; [ $t = c ] && want=12
    [ "$n" = $want ] && [ "$u" = $want ] || fail "tenant $t: $n metric lines, $u distinct steps, want $want"
done
pass "metrics.jsonl holds every step exactly once across kill and resume"

# 2. SIGUSR1 -> checkpoint, exit 75 -> resume -> same bits.
full_spec long long 400; full_spec longref longref 400
(mpirun -np 2 weft-worker long.cfg >usr1.log 2>&1; echo $? > usr1.rc) &
for i in $(seq 300); do grep -q "step" usr1.log 2>/dev/null && break; sleep 0.05; done
pkill -USR1 -f "mpirun -np 2 weft-worker long.cfg"
wait
[ "$(cat usr1.rc)" = 75 ] || fail "SIGUSR1 gave exit $(cat usr1.rc), want 75: $(tail -3 usr1.log)"
ck=$(ls -d long/ckpt-* | sed 's/.*ckpt-//' | sort -n | tail -1)
[ "$ck" -gt 0 ] && [ "$ck" -lt 400 ] || fail "no mid-run checkpoint after SIGUSR1 (got '$ck')"
mpirun -np 2 weft-worker long.cfg >usr2.log 2>&1 || fail "resume after SIGUSR1: $(tail -3 usr2.log)"
mpirun -np 2 weft-worker longref.cfg >lref.log 2>&1 || fail "reference: $(tail -3 lref.log)"
same_run longref long
pass "SIGUSR1 at step $ck: exit 75, checkpoint, resume, same bits"

# 3. A truncated newest checkpoint: the one before is used, with a warning.
full_spec trunc trunc 20
mpirun -np 2 weft-worker trunc.cfg >tr1.log 2>&1 || fail "trunc run"
truncate -s 100 trunc/ckpt-20/params.h5
sed -i 's/steps = 20/steps = 25/' trunc.cfg
mpirun -np 2 weft-worker trunc.cfg >tr2.log 2>&1
grep -q "warning: skipping broken checkpoint: .*ckpt-20" tr2.log || fail "no warning for the broken checkpoint: $(head -5 tr2.log)"
# The spec changed (steps), so it must refuse with a reason rather than mix runs.
grep -q "the spec changed" tr2.log || fail "changed spec not refused: $(head -5 tr2.log)"
sed -i 's/steps = 25/steps = 20/' trunc.cfg
mpirun -np 2 weft-worker trunc.cfg >tr3.log 2>&1 || fail "resume past a broken checkpoint: $(tail -3 tr3.log)"
grep -q "resuming from .*ckpt-15" tr3.log || fail "did not fall back to ckpt-15: $(head -5 tr3.log)"
pass "a truncated newest checkpoint is skipped with a warning; a changed spec is refused"

# 4. A hung rank: the watchdog ends the group within its limit.
full_spec hang hang 50
start=$(date +%s)
WEFT_FAULT=1:3:hang timeout 120 mpirun -np 2 weft-worker hang.cfg --watchdog 4 >hang.log 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "hung group: exit $rc after ${took}s"
grep -q "watchdog: no progress for" hang.log || fail "no watchdog message: $(tail -5 hang.log)"
[ $took -lt 30 ] || fail "the watchdog took ${took}s for a 4 s limit"
pass "a hung rank is ended by the watchdog in ${took}s (limit 4 s)"

# 6. Loss goes down on the small preset.
weft init-model --preset small --seed 1 -o small.h5 >/dev/null || fail "small init"
cat > learn.cfg <<CFG
name = "learn"; mode = "full"; model = "small.h5"; data = "a.h5"; output = "learn";
train = { steps = 60; batch_size = 8; seq_len = 64; lr = 0.002; warmup = 5;
          eval_every = 60; eval_windows = 16; checkpoint_every = 0; };
resources = { ranks = 2; threads = 1; };
CFG
mpirun -np 2 weft-worker learn.cfg >learn.log 2>&1 || fail "small run: $(tail -3 learn.log)"
first=$(grep '"kind":"train"' learn/metrics.jsonl | head -1 | grep -o '"loss":[0-9.]*' | cut -d: -f2)
val=$(grep '"kind":"eval"' learn/metrics.jsonl | tail -1 | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
awk -v a="$first" -v b="$val" 'BEGIN { exit !(b < a - 1.5) }' ||
    fail "val loss $val is not clearly under the starting loss $first"
pass "small preset: loss $first -> val loss $val after 60 steps"

# Gradient accumulation: batch 8 as 2 micro-steps of 2 rows per rank sees the
# same windows as 4 rows at once, so the losses agree to float rounding.
full_spec acc1 acc1 6; full_spec acc2 acc2 6
sed -i 's/batch_size = 4;/batch_size = 8;/' acc1.cfg acc2.cfg
sed -i 's/train = {/train = { grad_accum = 2;/' acc2.cfg
mpirun -np 2 weft-worker acc1.cfg >acc1.log 2>&1 && mpirun -np 2 weft-worker acc2.cfg >acc2.log 2>&1 ||
    fail "grad_accum runs: $(tail -3 acc2.log)"
l1=$(grep '"kind":"train"' acc1/metrics.jsonl | tail -1 | grep -o '"loss":[0-9.]*' | cut -d: -f2)
l2=$(grep '"kind":"train"' acc2/metrics.jsonl | tail -1 | grep -o '"loss":[0-9.]*' | cut -d: -f2)
awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4 * a) }' ||
    fail "grad_accum 2 ends at loss $l2, one micro-step at $l1"
pass "grad_accum = 2 matches one micro-step of the same rows (loss $l1 vs $l2)"

# Bad input: exit codes and one clear line.
full_spec badranks badranks; sed -i 's/ranks = 2/ranks = 4/' badranks.cfg
mpirun -np 2 weft-worker badranks.cfg >br.log 2>&1; rc=$?
[ $rc = 78 ] || fail "ranks mismatch: exit $rc, want 78"
grep -q "resources.ranks = 4 but the group has 2" br.log || fail "ranks message: $(cat br.log | head -3)"
full_spec single single; 
weft-worker single.cfg >single.log 2>&1; rc=$?
[ $rc = 78 ] && grep -q "single process" single.log || fail "singleton: exit $rc: $(head -2 single.log)"
full_spec baddata baddata; sed -i 's/data = "a.h5"/data = "missing.h5"/' baddata.cfg
mpirun -np 2 weft-worker baddata.cfg >bd.log 2>&1; rc=$?
[ $rc = 65 ] && grep -q "missing.h5" bd.log || fail "missing data: exit $rc: $(head -2 bd.log)"
echo 'name = "x"; mode = "full"; modle = "base.h5";' > typo.cfg
mpirun -np 2 weft-worker typo.cfg >typo.log 2>&1; rc=$?
[ $rc = 78 ] && grep -q "modle" typo.log || fail "typo spec: exit $rc: $(head -2 typo.log)"
printf 'name = "x";\0\377 mode = "full";\n' > nul.cfg
mpirun -np 2 weft-worker nul.cfg >nul.log 2>&1; rc=$?
[ $rc = 78 ] && [ "$(grep -c '^nul.cfg: spec: contains a NUL byte; a spec is text$' nul.log)" = 1 ] ||
    fail "a spec with a NUL byte: exit $rc: $(head -2 nul.log)"
pass "bad input: 78 for ranks, singleton, spec typos and a binary spec; 65 for missing data"

summary
