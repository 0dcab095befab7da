#!/bin/bash
# test_chat_worker.sh: weft-worker on chat data: a LoRA pack of a chat
# tenant (rows of whole documents), the same data with doc_boundaries off
# and a raw-text tenant resumes exactly after a kill; the chat tenant's
# adapter is the one it gets alone (pack-mates change nothing); trainable
# tokens reported; a prompt that fills seq_len leaves nothing to train and
# says so; weft eval gives the answer-only loss the worker reported; weft
# generate --chat answers and stops at the end of the turn.
set -u
. "$top_srcdir/tests/lib.sh"
test_tmp chatw

make_corpus raw GPL-3
i=0
for c in ls cp mv rm cat grep sed awk tar find sort uniq head tail wc du df ps kill top; do
    for q in "What does $c do?" "Explain $c." "$c?"; do
        i=$((i + 1))
        printf '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s is command %d."}]}\n' "$q" $c $i
    done
done > qa.jsonl
weft shard --quiet --format chat --shards 2 --val-fraction 0.2 --seed 1 -o qa.h5 qa.jsonl >/dev/null ||
    fail "weft shard --format chat"
weft init-model --preset tiny --ctx 64 --seed 3 -o base.h5 >/dev/null || fail "init-model"

spec() { # name out tenants
    cat > "$1.cfg" <<CFG
name = "$1";
mode = "lora";
model = "base.h5";
output = "$2";
train = { steps = 16; batch_size = 4; seq_len = 64; lr = 0.01; eval_every = 8;
          checkpoint_every = 6; keep_checkpoints = 3; eval_windows = 4; };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn", "mlp.c_fc"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( $3 );
CFG
}
PACK='{ name = "chat"; data = "qa.h5"; },
       { name = "flat"; data = "qa.h5"; doc_boundaries = false; lr = 0.005; },
       { name = "raw"; data = "raw.h5"; }'
losses() {
    sed -E 's/"(elapsed|tokens_per_s|trainable_tokens_per_s|attempt|run|allreduce_s)":[^,}]*,?//g' "$1" | sort
}

spec ref ref "$PACK"; spec kill kill "$PACK"
mpirun -np 2 weft-worker ref.cfg >ref.log 2>&1 || fail "chat pack: $(tail -3 ref.log)"
WEFT_FAULT=1:9:kill mpirun -np 2 weft-worker kill.cfg >kill1.log 2>&1
[ $? -ne 0 ] || fail "the killed run exited 0"
mpirun -np 2 weft-worker kill.cfg >kill2.log 2>&1 || fail "resume: $(tail -3 kill2.log)"
grep -q "resuming from .*ckpt-6" kill2.log || fail "did not resume from ckpt-6: $(head -3 kill2.log)"
for t in chat flat raw; do
    cmp -s ref/$t/adapter.h5 kill/$t/adapter.h5 || fail "tenant $t differs after kill and resume"
done
diff <(losses ref/metrics.jsonl) <(losses kill/metrics.jsonl) >/dev/null || fail "metrics differ after resume"
pass "chat rows of documents, windows over chat data and raw text: killed at step 9, resumed, same bits"

grep '"tenant":"chat"' ref/metrics.jsonl | grep -q '"trainable_tokens":[1-9][0-9]*' ||
    fail "no trainable_tokens in the chat tenant's metrics"
grep '"tenant":"raw"' ref/metrics.jsonl | grep -q trainable && fail "raw text reports trainable tokens"
grep -q "trained tok/s" ref.log || fail "no trained tok/s in the log"
pass "metrics report trainable tokens beside all tokens for chat data"

spec alone alone '{ name = "chat"; data = "qa.h5"; }'
mpirun -np 2 weft-worker alone.cfg >alone.log 2>&1 || fail "alone: $(tail -3 alone.log)"
cmp -s alone/chat/adapter.h5 ref/chat/adapter.h5 || fail "the chat tenant's adapter depends on its pack-mates"
pass "a chat tenant's adapter is the same alone and in a pack"

# weft eval: the answer-only validation loss of the adapter, as the worker
# reported it at the end (the same 4 rows of documents).
want=$(grep '"kind":"eval".*"step":16,.*"tenant":"chat"' ref/metrics.jsonl | grep -o '"val_loss":[0-9.]*' | cut -d: -f2)
got=$(weft eval --model base.h5 --adapter ref/chat/adapter.h5 --data qa.h5 --seq-len 64 --windows 4) ||
    fail "weft eval on chat data"
awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-4 * a) }' ||
    fail "weft eval $got, the worker's final val_loss $want"
pass "weft eval gives the worker's answer-only validation loss ($got)"

out=$(weft generate --model base.h5 --adapter ref/chat/adapter.h5 --chat --prompt "What does ls do?" \
      --tokens 60 --temperature 0) || fail "generate --chat"
case "$out" in *"User:"*) fail "generate --chat echoed the prompt: $out" ;; esac
pass "weft generate --chat answers (\"$out\")"

# A prompt that fills seq_len leaves no answer: skipped, and with nothing
# else to train, one clear error (exit 65).
long=$(printf 'x%.0s' $(seq 80))
printf '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "ok"}]}\n' "$long" "$long" > long.jsonl
weft shard --quiet --format chat -o long.h5 long.jsonl >/dev/null || fail "shard long"
spec long long '{ name = "long"; data = "long.h5"; }'
sed -i 's/ranks = 2/ranks = 1/' long.cfg
mpirun -np 1 weft-worker long.cfg >long.log 2>&1; rc=$?
[ $rc = 65 ] && grep -q "no document .* has a trainable token within seq_len 64" long.log ||
    fail "all answers cut off: exit $rc: $(grep error long.log | head -2)"
pass "documents whose answer lies past seq_len are skipped; with none left, exit 65 and why"
summary
