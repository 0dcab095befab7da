#!/bin/bash
# test_cuda_sbatch.sh: `weft sbatch --dry-run` asks Slurm for one GPU per task
# (--gpus-per-task=1) for a device = "cuda" job and for none otherwise, and the
# run file it writes keeps resources.gpus. No Slurm or GPU needed (dry run);
# in a build without CUDA the cuda job is refused in one line, exit 78.
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp cuda-sbatch
make_corpus a GPL-3
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"
spec() { # name device ranks
    cat > "$1.cfg" <<CFG
name = "$1"; mode = "full"; model = "base.h5"; data = "a.h5"; output = "out-$1";
train = { steps = 10; batch_size = 4; seq_len = 16; };
resources = { ranks = $3; device = "$2"; };
CFG
}
spec cpujob cpu 2
out=$(weft sbatch cpujob.cfg --dry-run 2>&1) || fail "dry run of a cpu job: $out"
echo "$out" | grep -q -- '--ntasks=2' || fail "no --ntasks=2: $out"
echo "$out" | grep -q -- '--gpus' && fail "a cpu job asked for GPUs: $out"
pass "a cpu job asks Slurm for no GPU"

spec gpujob cuda 2
if grep -q 'define WEFT_HAVE_CUDA 1' "$top_builddir/config.h"; then
    out=$(weft sbatch gpujob.cfg --dry-run 2>&1) || fail "dry run of a cuda job: $out"
    echo "$out" | grep -q -- '--ntasks=2 .*--gpus-per-task=1' || fail "no --gpus-per-task=1: $out"
    grep -q 'device = "cuda"; precision = "bf16"; gpus = 2;' out-gpujob/slurm/run-0.cfg ||
        fail "run-0.cfg lost the GPUs: $(grep resources out-gpujob/slurm/run-0.cfg)"
    pass "a cuda job of 2 ranks asks Slurm for --gpus-per-task=1; its run file keeps gpus = 2"
else
    weft sbatch gpujob.cfg --dry-run >s.log 2>&1
    rc=$?
    [ $rc = 78 ] && [ "$(grep -c 'built with CUDA' s.log)" = 1 ] ||
        fail "a cuda job in a build without CUDA (exit $rc): $(cat s.log)"
    pass "a build without CUDA refuses a cuda job in one line, exit 78"
fi
summary
