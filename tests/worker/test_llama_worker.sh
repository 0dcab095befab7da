#!/bin/bash
# test_llama_worker.sh: weft-worker on a Llama backbone under a real mpirun:
# a LoRA pack (named targets and all-linear) and a full fine-tuning run,
# each killed and resumed to the same bits as an uninterrupted run; a LoRA
# target the architecture lacks exits 78 with one line naming it.
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp llama-worker

make_corpus a GPL-3
make_corpus b Apache-2.0
weft init-model --arch llama --preset llama-tiny --vocab 300 --ctx 32 --bias q,k,v --seed 3 \
    -o base.h5 >/dev/null || fail "init-model --arch llama"

lora_spec() { # name out targets
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "lora";
model = "base.h5";
output = "$2";
train = { steps = 12; batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 6;
          checkpoint_every = 4; keep_checkpoints = 3; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; dropout = 0.1; targets = [$3]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; },
            { name = "b"; data = "b.h5"; r = 2; targets = ["all-linear"]; } );
CFG
}

full_spec() { # name out
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "full";
model = "base.h5";
data = "a.h5";
output = "$2";
train = { steps = 10; batch_size = 4; seq_len = 16; lr = 0.003; warmup = 2;
          eval_every = 5; checkpoint_every = 4; eval_windows = 4; };
resources = { ranks = 2; threads = 1; };
CFG
}

losses() {
    sed -E -e 's/"(elapsed|tokens_per_s|attempt|run|allreduce_s|step_s|compute_s)":[^,}]*,?//g' \
        -e "s/\"tenant\":\"$(basename "$(dirname "$1")")\"/\"tenant\":\"-\"/" "$1" | sort
}

same_run() { # ref got
    local f n=0
    for f in $(cd "$1" && ls */adapter.h5 model.h5 2>/dev/null); do
        cmp -s "$1/$f" "$2/$f" || fail "$2/$f differs from the uninterrupted run's"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || fail "$1 holds no adapter or model to compare"
    diff <(losses "$1/metrics.jsonl") <(losses "$2/metrics.jsonl") >/dev/null ||
        fail "$2/metrics.jsonl differs from the uninterrupted run's"
}

T1='"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"'
lora_spec ref ref "$T1"; lora_spec kill kill "$T1"
mpirun -np 2 weft-worker ref.cfg >ref.log 2>&1 || fail "llama LoRA run: $(tail -3 ref.log)"
WEFT_FAULT=1:10:kill mpirun -np 2 weft-worker kill.cfg >kill1.log 2>&1
[ $? -ne 0 ] || fail "the killed run exited 0"
mpirun -np 2 weft-worker kill.cfg >kill2.log 2>&1 || fail "resume: $(tail -3 kill2.log)"
grep -q "resuming from .*ckpt-8" kill2.log || fail "did not resume from ckpt-8: $(head -3 kill2.log)"
same_run ref kill
h5dump -A -a /targets ref/b/adapter.h5 | grep -q "self_attn.q_proj,self_attn.k_proj" ||
    fail "all-linear did not resolve to the seven Llama modules"
pass "llama LoRA pack: killed at step 10, resumed, same bits"

full_spec fref fref; full_spec fkill fkill
mpirun -np 2 weft-worker fref.cfg >fref.log 2>&1 || fail "llama full run: $(tail -3 fref.log)"
WEFT_FAULT=0:7:kill mpirun -np 2 weft-worker fkill.cfg >fk1.log 2>&1
mpirun -np 2 weft-worker fkill.cfg >fk2.log 2>&1 || fail "full resume: $(tail -3 fk2.log)"
same_run fref fkill
pass "llama full fine-tuning: killed at step 7, resumed, same bits"

lora_spec bad bad '"attn.c_attn"'
mpirun -np 2 weft-worker bad.cfg >bad.log 2>&1
rc=$?
[ "$rc" -eq 78 ] || fail "a GPT-2 target on a Llama backbone exited $rc, not 78: $(tail -2 bad.log)"
grep -q "'attn.c_attn' is not a module of a llama model" bad.log ||
    fail "no line naming the target: $(tail -2 bad.log)"
pass "a target the architecture lacks: exit 78, one line naming it"
