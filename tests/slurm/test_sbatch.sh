#!/bin/bash
# test_sbatch.sh: `weft sbatch` against a real single-node Slurm: a full job
# with 2 tasks gives the model a direct mpirun gives; a LoRA sweep of 4
# trials runs as a job array and its summary job ranks 4 trials; USR1 to the
# batch shell of a job and of an array task mid-run checkpoints, requeues and
# resumes to the same adapter bits with SLURM_RESTART_COUNT 1; bad input gets
# one clear line.
set -u
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/slurm/slurm_lib.sh"

slurm_up
T=$(mktemp -d /tmp/weft-test-sbatch-XXXXXX)
cleanup() {
    local j
    for j in $(squeue -h -o %A -n sbfull,sbsweep,sbsweep-summary,sbpre,sbprea 2>/dev/null); do
        scancel "$j" 2>/dev/null
    done
    cd / # slurm-local must not start in a directory about to go
    [ -n "${KEEP:-}" ] || rm -rf "$T"
    slurm_down
}
trap cleanup EXIT
cd "$T"

make_corpus a GPL-3 >/dev/null
make_corpus b Apache-2.0 >/dev/null
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"

# job_of OUTPUT: the job id in weft sbatch's first line.
job_of() { sed -n 's/^weft sbatch: job \([0-9]*\):.*/\1/p' <<<"$1" | head -n 1; }

# 1. A full job, 2 tasks: the same model as a direct mpirun.
full_spec() { # name
    cat >"$1.cfg" <<CFG
name = "$1"; mode = "full"; model = "base.h5"; data = "a.h5"; output = "$1";
train = { steps = 16; batch_size = 4; seq_len = 16; lr = 0.003; warmup = 2;
          eval_every = 8; checkpoint_every = 8; eval_windows = 4; };
resources = { ranks = 2; threads = 1; };
CFG
}
full_spec sbfull
full_spec fullref
mpirun -np 2 weft-worker fullref.cfg >fullref.log 2>&1 || fail "direct mpirun run: $(tail -3 fullref.log)"
out=$(weft sbatch sbfull.cfg) || fail "weft sbatch of a full job: $out"
j=$(job_of "$out")
[ -n "$j" ] || fail "weft sbatch printed no job id: $out"
st=$(wait_final "$j" 120)
log=sbfull/slurm/slurm-$j.out
[ "$st" = COMPLETED ] || fail "full job $j ended '$st': $(tail -5 "$log")"
[ "$(job_field "$j" NumTasks)" = 2 ] || fail "full job $j had $(job_field "$j" NumTasks) tasks, want 2"
grep -q "2 rank(s)" "$log" || fail "the worker group did not have 2 ranks: $(head -3 "$log")"
cmp -s sbfull/model.h5 fullref/model.h5 || fail "sbatch's model.h5 differs from mpirun's"
# The same inside the allocation with mpirun instead of srun --mpi=pmix.
rm -rf sbfull
out=$(WEFT_LAUNCH=mpirun weft sbatch sbfull.cfg) || fail "weft sbatch (mpirun): $out"
j=$(job_of "$out")
st=$(wait_final "$j" 120)
log=sbfull/slurm/slurm-$j.out
[ "$st" = COMPLETED ] || fail "full job $j (mpirun) ended '$st': $(tail -5 "$log")"
grep -q ": mpirun, 2 rank(s)" "$log" || fail "WEFT_LAUNCH=mpirun was not used: $(head -3 "$log")"
cmp -s sbfull/model.h5 fullref/model.h5 || fail "sbatch's model.h5 (mpirun inside) differs from mpirun's"
pass "full job via sbatch, 2 tasks (srun and mpirun inside): model.h5 equals a direct mpirun's"

# 2. A LoRA sweep of 4 trials as a job array, ranked by its summary job.
cat >sbsweep.cfg <<CFG
name = "sbsweep"; mode = "lora"; model = "base.h5"; output = "sweep";
train = { steps = 12; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 6;
          checkpoint_every = 6; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn"]; };
resources = { ranks = 1; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; } );
sweep = { train = { lr = [0.003, 0.01]; }; lora = { r = [2, 4]; }; };
CFG
out=$(weft sbatch sbsweep.cfg --pack-size 1 --max-parallel 2 --summary) || fail "weft sbatch of a sweep: $out"
j=$(job_of "$out")
sj=$(sed -n 's/^weft sbatch: summary job \([0-9]*\) .*/\1/p' <<<"$out")
[ -n "$j" ] && [ -n "$sj" ] || fail "no array or summary job id: $out"
grep -q "4 run(s) of 4 unit(s) as a job array" <<<"$out" || fail "not an array of 4: $out"
st=$(wait_final "$sj" 180)
[ "$st" = COMPLETED ] || fail "summary job $sj ended '$st': $(cat sweep/slurm/summary-*.out)"
n=$(scontrol show job "$j" -o | grep -c 'JobState=COMPLETED')
[ "$n" = 4 ] || fail "$n of 4 array tasks completed: $(scontrol show job "$j" -o | grep -o 'JobState=[A-Z]*')"
ls sweep/slurm/slurm-"${j}"_{0,1,2,3}.out >/dev/null || fail "array task logs missing"
sum=sweep/slurm/summary.txt
[ "$(grep -c ' succeeded ' "$sum")" = 4 ] || fail "summary does not list 4 succeeded trials: $(cat "$sum")"
for p in "train.lr=0.003 lora.r=2" "train.lr=0.003 lora.r=4" "train.lr=0.01 lora.r=2" "train.lr=0.01 lora.r=4"; do
    grep -q "$p" "$sum" || fail "summary lacks the trial $p: $(cat "$sum")"
done
# Ranked: best val losses ascending, ranks 1..4.
awk 'NR > 1 { print $4 }' "$sum" | sort -c -g || fail "summary is not ranked by best val loss: $(cat "$sum")"
[ "$(awk 'NR > 1 { print $1 }' "$sum" | tr '\n' ' ')" = "1 2 3 4 " ] || fail "ranks: $(cat "$sum")"
for a in $(awk 'NR > 1 { print $NF }' "$sum"); do [ -s "$a" ] || fail "adapter $a missing"; done
# The same trials packed 3 + 1 into two runs: each trial's losses are its own.
out=$(weft sbatch sbsweep.cfg --pack-size 3 --dir "$T/packed" --summary) || fail "packed sweep: $out"
grep -q "2 run(s) of 4 unit(s) as a job array" <<<"$out" || fail "not 2 packed runs: $out"
sj=$(sed -n 's/^weft sbatch: summary job \([0-9]*\) .*/\1/p' <<<"$out")
st=$(wait_final "$sj" 180)
[ "$st" = COMPLETED ] || fail "packed summary job $sj ended '$st'"
cmp -s <(awk 'NR > 1 { print $2, $3, $4, $5, $6 }' "$sum" | sort) \
    <(awk 'NR > 1 { print $2, $3, $4, $5, $6 }' "$T/packed/summary.txt" | sort) ||
    fail "packed trials differ from single ones: $(cat "$T/packed/summary.txt")"
pass "LoRA sweep: 4 array tasks (%2 at once) ranked by val loss; packed 3 + 1, the same losses"

# 3. Preemption: USR1 to the batch shell mid-run -> checkpoint, exit 75,
#    requeue, resume -> the same adapters as an undisturbed run. A plain job
#    and an array task (requeued as ARRAY_TASK) at the same time.
lora_spec() { # name
    cat >"$1.cfg" <<CFG
name = "$1"; mode = "lora"; model = "base.h5"; output = "$1";
train = { steps = 300; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 100;
          checkpoint_every = 100; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; dropout = 0.1; targets = ["attn.c_attn", "mlp.c_fc"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; }, { name = "b"; data = "b.h5"; lr = 0.005; } );
CFG
}
lora_spec sbpre
lora_spec sbprea
lora_spec preref
mpirun -np 2 weft-worker preref.cfg >preref.log 2>&1 || fail "undisturbed run: $(tail -3 preref.log)"
# Rank 0 of the first attempt holds at step 20 until the signal comes
# (WEFT_FAULT wait), so however fast the machine, the signal lands mid-run.
out=$(WEFT_FAULT=0:20:wait weft sbatch sbpre.cfg) || fail "weft sbatch: $out"
j=$(job_of "$out")
out=$(WEFT_FAULT=0:20:wait weft sbatch sbprea.cfg --array) || fail "weft sbatch --array: $out"
ja=$(job_of "$out")_0
for name in sbpre:$j sbprea:$ja; do
    log=${name%%:*}/slurm/slurm-${name#*:}.out
    for i in $(seq 1200); do grep -q 'WEFT_FAULT wait at step 20' "$log" 2>/dev/null && break; sleep 0.1; done
    grep -q 'WEFT_FAULT wait at step 20' "$log" || fail "${name%%:*} never reached step 20: $(cat "$log")"
    scancel --signal=USR1 --batch "${name#*:}" || fail "scancel --signal=USR1 --batch ${name#*:}"
done
preempted() { # name job log
    local st t
    st=$(wait_final "$2" 180)
    [ "$st" = COMPLETED ] || fail "preempted job $2 ended '$st': $(grep -v '^step' "$3")"
    grep -q "stop requested: checkpointed at step" "$3" || fail "$2: no checkpoint on USR1: $(grep -v '^step' "$3")"
    grep -q "workers exited 75" "$3" || fail "$2: the group did not exit 75: $(grep -v '^step' "$3")"
    grep -q "requeued $2;" "$3" || fail "$2 did not requeue itself: $(grep -v '^step' "$3")"
    grep -q "job $2 restart 1 " "$3" || fail "$2: no start with SLURM_RESTART_COUNT=1: $(grep -v '^step' "$3")"
    grep -q "resuming from .*ckpt-" "$3" || fail "$2: the restarted job did not resume: $(grep -v '^step' "$3")"
    [ "$(job_field "$2" Restarts)" = 1 ] || fail "$2: Restarts=$(job_field "$2" Restarts), want 1"
    grep -q '"attempt": 2' "$1/result.json" || fail "$1/result.json does not say attempt 2"
    for t in a b; do
        cmp -s "$1/$t/adapter.h5" "preref/$t/adapter.h5" ||
            fail "$2: tenant $t's adapter differs from the undisturbed run's"
    done
}
preempted sbpre "$j" "sbpre/slurm/slurm-$j.out"
preempted sbprea "$ja" "sbprea/slurm/slurm-$ja.out"
pass "USR1 to job $j and array task $ja: exit 75, requeue, restart 1, resume, same adapters"

# A full sweep: one run per trial, each writing to OUTPUT/<trial>; the time
# limit comes from resources.time_limit (rounded up to minutes); options pass.
cat >fsweep.cfg <<CFG
name = "fsweep"; mode = "full"; model = "base.h5"; data = "a.h5"; output = "fs";
train = { steps = 8; batch_size = 4; seq_len = 16; lr = 0.003; };
resources = { ranks = 2; threads = 2; time_limit = 601; };
sweep = { train = { lr = [0.001, 0.003, 0.01]; }; };
CFG
out=$(weft sbatch fsweep.cfg --dry-run --signal-lead 300 --partition debug --account acme --max-parallel 2) ||
    fail "dry run: $out"
for w in "--ntasks=2 " "--cpus-per-task=2 " "--signal=B:USR1@300 " "--array=0-2%2 " \
    "--partition=debug " "--account=acme " "--time=11 " "3 run(s) of 3 unit(s) as a job array"; do
    grep -q -- "$w" <<<"$out" || fail "dry run lacks '$w': $out"
done
for r in 0 1 2; do
    o=$(sed -n 's/^output = "\(.*\)";/\1/p' fs/slurm/run-$r.cfg)
    t=$(sed -n "$((r + 1))p" fs/slurm/trials.tsv | cut -f1)
    [ "$o" = "$T/fs/$t" ] || fail "run $r writes to '$o', want $T/fs/$t"
done
[ -z "$(squeue -h -n fsweep)" ] || fail "--dry-run submitted a job"
pass "full sweep: one run per trial in OUTPUT/<trial>; --time from time_limit; options passed"

# Bad input: one clear line and a non-zero exit, nothing submitted.
sed -e 's/"a.h5"/"a.txt"/' -e 's/sbfull/rawdata/' sbfull.cfg >raw.cfg
out=$(weft sbatch raw.cfg 2>&1); rc=$?
[ $rc = 65 ] && grep -q "a.txt is raw text; shard it first" <<<"$out" || fail "raw data: exit $rc: $out"
echo 'name = "x"; mode = "full"; modle = "base.h5";' >typo.cfg
out=$(weft sbatch typo.cfg 2>&1); rc=$?
[ $rc = 78 ] && grep -q "modle" <<<"$out" || fail "a spec typo: exit $rc: $out"
out=$(weft sbatch --summarize "$T/nowhere" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "nowhere/trials.tsv: cannot read" <<<"$out" || fail "summarize of nothing: $rc: $out"
out=$(weft sbatch sbfull.cfg --pack-size 0 2>&1); rc=$?
[ $rc = 64 ] || fail "--pack-size 0: exit $rc: $out"
[ -z "$(squeue -h -n rawdata,x)" ] || fail "bad input was submitted"
pass "bad input: raw data 65, spec typo 78, bad options 64, nothing submitted"

summary
