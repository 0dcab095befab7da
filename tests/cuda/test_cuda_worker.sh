#!/bin/bash
# test_cuda_worker.sh: resources.device = "cuda" in weft-worker, in whatever
# build and on whatever machine it runs:
#  - a build without CUDA: weft validate and the worker refuse it, one line, 78;
#  - a CUDA build (./configure --with-cuda) with no GPU: the worker says so in
#    one line and exits 78;
#  - a CUDA build on a GPU (scripts/device-check): full fine-tuning in fp32
#    follows the CPU run's losses; same bits run to run; killed and resumed to
#    the same bits; bf16 learns; more ranks than GPUs is refused (78).
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp cuda-worker

make_corpus a GPL-3
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"

spec() { # name out device precision ranks [steps]
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "full";
model = "base.h5";
data = "a.h5";
output = "$2";
train = { steps = ${6:-20}; batch_size = 4; seq_len = 16; lr = 0.003; warmup = 2;
          eval_every = 10; checkpoint_every = 5; eval_windows = 4; };
resources = { ranks = $5; threads = 1; device = "$3"; precision = "$4"; };
CFG
}
# step -> loss of a run's train metrics
losses() { grep '"kind":"train"' "$1" | sed -E 's/.*"step":([0-9]+).*"loss":([-0-9.e+naif]+).*/\1 \2/' | sort -n; }
strip() {
    sed -E -e 's/"(elapsed|tokens_per_s|attempt|run|allreduce_s|step_s|compute_s)":[^,}]*,?//g' \
        -e 's/"tenant":"[^"]*"/"tenant":"-"/' "$1" | sort
}

spec nogpu out-nogpu cuda bf16 1
if ! grep -q 'define WEFT_HAVE_CUDA 1' "$top_builddir/config.h"; then
    weft validate nogpu.cfg >v.log 2>&1
    rc=$?
    [ $rc = 78 ] || fail "weft validate of a cuda spec in a build without CUDA exited $rc: $(cat v.log)"
    grep -q 'needs a weft built with CUDA' v.log || fail "validate did not say why: $(cat v.log)"
    mpirun -np 1 weft-worker nogpu.cfg >w.log 2>&1
    rc=$?
    [ $rc = 78 ] || fail "the worker ran a cuda spec in a build without CUDA (exit $rc): $(tail -3 w.log)"
    [ "$(grep -c 'built with CUDA' w.log)" = 1 ] || fail "not one line: $(cat w.log)"
    for cmd in "grad --model base.h5 --batch b.h5 -o g.h5" "generate --model base.h5 --prompt x"; do
        weft $cmd --device cuda >c.log 2>&1
        rc=$?
        [ $rc = 78 ] && [ "$(wc -l <c.log)" = 1 ] && grep -q 'built with CUDA' c.log ||
            fail "weft ${cmd%% *} --device cuda in a build without CUDA (exit $rc): $(cat c.log)"
    done
    pass "a build without CUDA refuses device = \"cuda\" in one line, exit 78 (validate, worker, grad, generate)"
    summary
    exit 0
fi

if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    mpirun -np 1 weft-worker nogpu.cfg >w.log 2>&1
    rc=$?
    [ $rc = 78 ] || fail "device = \"cuda\" on a machine without a GPU exited $rc: $(tail -3 w.log)"
    [ "$(grep -c 'has no usable GPU' w.log)" = 1 ] || fail "not one line naming the GPU: $(cat w.log)"
    pass "a CUDA build without a GPU: one line, exit 78"
    summary
    exit 0
fi

# On a GPU.
ngpu=$(nvidia-smi -L | grep -c '^GPU')
data="$top_srcdir/tests/engine/data"
weft grad --model "$data/tiny.h5" --batch "$data/tiny-grad.h5" -o gcpu.h5 --logits >/dev/null ||
    fail "weft grad on the CPU"
weft grad --model "$data/tiny.h5" --batch "$data/tiny-grad.h5" -o ggpu.h5 --logits --device cuda \
    >ggpu.log 2>&1 || fail "weft grad --device cuda: $(cat ggpu.log)"
if command -v h5diff >/dev/null; then
    h5diff --delta=2e-5 gcpu.h5 ggpu.h5 >h5diff.log 2>&1 ||
        fail "weft grad --device cuda (fp32) differs from the CPU's by more than 2e-5: $(head -5 h5diff.log)"
    pass "weft grad --device cuda: loss, losses, logits and every gradient within 2e-5 of the CPU's"
else
    echo "SKIP: weft grad comparison (no h5diff; install hdf5-tools)"
fi
a=$(weft generate --model base.h5 --prompt "The " --tokens 24 --temperature 0)
b=$(weft generate --model base.h5 --prompt "The " --tokens 24 --temperature 0 --device cuda) ||
    fail "weft generate --device cuda"
[ "$a" = "$b" ] || fail "greedy generation differs: cpu '$a', cuda '$b'"
pass "weft generate --device cuda (fp32, greedy) gives the CPU's text"
spec cpu cpu cpu fp32 1
spec g32 g32 cuda fp32 1
spec g32b g32b cuda fp32 1
spec gkill gkill cuda fp32 1
spec gbf gbf cuda bf16 1 60
mpirun -np 1 weft-worker cpu.cfg >cpu.log 2>&1 || fail "CPU run: $(tail -3 cpu.log)"
mpirun -np 1 weft-worker g32.cfg >g32.log 2>&1 || fail "GPU fp32 run: $(tail -3 g32.log)"
grep -q 'engine on ' g32.log || fail "the GPU run did not say which GPU: $(head -5 g32.log)"
# fp32: every step's loss within 1e-3 relative of the CPU engine's
paste <(losses cpu/metrics.jsonl) <(losses g32/metrics.jsonl) | awk '
    { n++; d = $2 - $4; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2);
      if ($1 != $3 || r > 1e-3) { print "step " $1 ": cpu " $2 " gpu " $4; bad = 1 } }
    END { if (n < 20 || bad) exit 1 }' >cmp.log || fail "fp32 GPU losses differ from the CPU's: $(head -3 cmp.log)"
pass "fp32 on the GPU: 20 steps' losses within 1e-3 of the CPU engine's"

mpirun -np 1 weft-worker g32b.cfg >g32b.log 2>&1 || fail "second GPU run: $(tail -3 g32b.log)"
cmp -s g32/model.h5 g32b/model.h5 || fail "two GPU runs gave different model.h5"
diff <(strip g32/metrics.jsonl) <(strip g32b/metrics.jsonl) >/dev/null || fail "two GPU runs' metrics differ"
pass "same inputs, same bits on the GPU (model.h5 and metrics)"

WEFT_FAULT=0:12:kill mpirun -np 1 weft-worker gkill.cfg >k1.log 2>&1
[ $? -ne 0 ] || fail "the killed GPU run exited 0"
mpirun -np 1 weft-worker gkill.cfg >k2.log 2>&1 || fail "GPU resume: $(tail -3 k2.log)"
grep -q 'resuming from .*ckpt-10' k2.log || fail "did not resume from ckpt-10: $(head -3 k2.log)"
cmp -s g32/model.h5 gkill/model.h5 || fail "killed and resumed on the GPU: model.h5 differs"
diff <(strip g32/metrics.jsonl) <(strip gkill/metrics.jsonl) >/dev/null || fail "resumed metrics differ"
pass "killed at step 12 on the GPU, resumed from step 10: same bits"

# A GPU checkpoint resumes on the CPU (same files, same layout).
spec gcpu gcpu cuda fp32 1
WEFT_FAULT=0:12:kill mpirun -np 1 weft-worker gcpu.cfg >c1.log 2>&1
[ $? -ne 0 ] || fail "the killed GPU run exited 0"
spec gcpu gcpu cpu fp32 1
mpirun -np 1 weft-worker gcpu.cfg >c2.log 2>&1 || fail "CPU resume of a GPU checkpoint: $(tail -3 c2.log)"
grep -q 'resuming from .*ckpt-10' c2.log || fail "the CPU did not resume from ckpt-10: $(head -3 c2.log)"
paste <(losses g32/metrics.jsonl) <(losses gcpu/metrics.jsonl) | awk '
    { n++; d = $2 - $4; if (d < 0) d = -d; if ($1 != $3 || d / $2 > 1e-3) bad = 1 }
    END { if (n < 20 || bad) exit 1 }' || fail "GPU-then-CPU losses drift from the GPU run's"
pass "a GPU checkpoint resumes on the CPU: steps 11-20 within 1e-3 of the GPU run"

mpirun -np 1 weft-worker gbf.cfg >gbf.log 2>&1 || fail "GPU bf16 run: $(tail -3 gbf.log)"
losses gbf/metrics.jsonl | awk 'NR <= 5 { a += $2 } { l[NR] = $2 } END {
    b = 0; for (i = NR - 4; i <= NR; i++) b += l[i]; exit !(b < 0.9 * a) }' ||
    fail "bf16 on the GPU did not learn: $(losses gbf/metrics.jsonl | sed -n '1p;$p')"
pass "bf16 on the GPU learns (last 5 steps' loss < 0.9 x the first 5)"

n=$((ngpu + 1))
spec many many cuda bf16 $n
mpirun -np $n weft-worker many.cfg >many.log 2>&1
rc=$?
[ $rc = 78 ] || fail "$n ranks on $ngpu GPU(s) exited $rc: $(tail -3 many.log)"
[ "$(grep -c 'one rank drives one GPU' many.log)" = 1 ] || fail "not one line: $(cat many.log)"
pass "$n ranks on $ngpu GPU(s): one line, exit 78"

if [ "$ngpu" -ge 2 ]; then
    spec g2 g2 cuda fp32 2
    mpirun -np 2 weft-worker g2.cfg >g2.log 2>&1 || fail "2 ranks on 2 GPUs: $(tail -3 g2.log)"
    pass "2 ranks on 2 GPUs (gradients summed with MPI on host buffers)"
fi
summary
