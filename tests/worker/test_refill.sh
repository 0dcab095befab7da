#!/bin/bash
# test_refill.sh: continuous packing in weft-worker under a real mpirun. Five
# tenants with different steps, learning rates, schedules and ranks in a pack
# of two: each is admitted when a slot frees and ends with the adapter (and
# metrics) it gets trained alone; a pack killed after refills resumes with the
# same members at the same steps and the same bits; a tenant with broken data
# fails alone and its slot goes to the next; a tenant appended to the spec
# after a checkpoint joins the resumed pack.
set -u
. "$top_srcdir/tests/lib.sh"

test_tmp refill

make_corpora 4
make_corpus e GPL-2
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"

# tenant lines: name data settings
TEN_a='{ name = "a"; data = "a.h5"; steps = 6; }'
TEN_b='{ name = "b"; data = "b.h5"; steps = 14; lr = 0.005; r = 8; alpha = 16.0; schedule = "linear"; }'
TEN_c='{ name = "c"; data = "c.h5"; steps = 4; schedule = "constant"; }'
TEN_d='{ name = "d"; data = "d.h5"; steps = 9; batch_size = 8; warmup = 2; }'
TEN_e='{ name = "e"; data = "e.h5"; steps = 7; lr = 0.02; seed = 9; }'

spec() { # name out pack_size tenants...
    local name=$1 out=$2 ps=$3; shift 3
    {
        echo "name = \"$name\"; mode = \"lora\"; model = \"base.h5\"; output = \"$out\";"
        echo "train = { batch_size = 4; seq_len = 16; lr = 0.01; eval_every = 3;"
        echo "          checkpoint_every = 2; keep_checkpoints = 2; eval_windows = 4; };"
        echo "lora = { r = 4; alpha = 8.0; dropout = 0.1; targets = [\"attn.c_attn\", \"mlp.c_fc\"]; };"
        echo "resources = { ranks = 2; threads = 1; pack_size = $ps; };"
        tenants_block "$@"
    } > "$name.cfg"
}

# A tenant's metric lines without timings and run fields.
tmetrics() { # file tenant
    grep "\"tenant\":\"$2\"" "$1" |
        sed -E 's/"(elapsed|tokens_per_s|attempt|run|allreduce_s)":[^,}]*,?//g' | sort
}

for t in a b c d e; do
    spec solo-$t solo-$t 0 $t
    mpirun -np 2 weft-worker solo-$t.cfg >solo-$t.log 2>&1 || fail "solo $t: $(tail -3 solo-$t.log)"
done

# 1. Five tenants, two slots: every adapter and metric line equals its solo run.
spec pack pack 2 a b c d e
mpirun -np 2 weft-worker pack.cfg >pack.log 2>&1 || fail "pack: $(tail -3 pack.log)"
grep -q "tenant c takes a free slot" pack.log || fail "c was never admitted: $(head -20 pack.log)"
for t in a b c d e; do
    cmp -s solo-$t/$t/adapter.h5 pack/$t/adapter.h5 ||
        fail "$t's adapter trained in a refilling pack differs from its solo run's"
    diff <(tmetrics solo-$t/metrics.jsonl $t) <(tmetrics pack/metrics.jsonl $t) >/dev/null ||
        fail "$t's metrics in the pack differ from its solo run's"
done
# never more than two tenants train between two step boundaries of the pack
python3 - pack/metrics.jsonl <<'PY' || fail "more than pack_size tenants trained at once"
import json, sys
seen, most = [], 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["kind"] != "train": continue
    if m["tenant"] in seen: seen = []
    seen.append(m["tenant"]); most = max(most, len(seen))
sys.exit(0 if most == 2 else 1)
PY
python3 -c "
import json; r = json.load(open('pack/result.json'))
assert [t['status'] for t in r['tenants']] == ['succeeded'] * 5, r
" || fail "result.json does not list five succeeded tenants"
pass "five tenants in a pack of two: each admitted as a slot freed, same bits and metrics as alone"

# 2. Killed after refills (run step 9: c, then d, admitted), resumed: same bits.
spec kill kill 2 a b c d e
WEFT_FAULT=1:9:kill mpirun -np 2 weft-worker kill.cfg >kill1.log 2>&1
[ $? -ne 0 ] || fail "the killed pack exited 0"
h5dump -a /tasks/e/state kill/ckpt-8/state.h5 2>/dev/null | grep -q "(0): 5" ||
    fail "ckpt-8 does not record e as waiting (state 5)"
h5dump -a /tasks/c/step kill/ckpt-8/state.h5 2>/dev/null | grep -q "(0): 2" ||
    fail "ckpt-8 does not record c, admitted at step 6, at its step 2"
mpirun -np 2 weft-worker kill.cfg >kill2.log 2>&1 || fail "resume: $(tail -3 kill2.log)"
grep -q "resuming from .*ckpt-8" kill2.log || fail "did not resume from ckpt-8: $(head -3 kill2.log)"
for t in a b c d e; do
    cmp -s pack/$t/adapter.h5 kill/$t/adapter.h5 || fail "$t differs after kill and resume"
done
pass "a refilling pack killed at step 9 resumes from ckpt-8 with the same members: same bits"

# 3. A tenant with broken data fails alone; its slot goes to the next one.
printf 'not hdf5' > broken.h5
TEN_x='{ name = "x"; data = "broken.h5"; steps = 5; }'
spec bad bad 2 a x c
mpirun -np 2 weft-worker bad.cfg >bad.log 2>&1 || fail "a pack with one broken tenant failed: $(tail -3 bad.log)"
cmp -s solo-c/c/adapter.h5 bad/c/adapter.h5 || fail "c after a broken pack-mate differs from alone"
python3 -c "
import json; r = {t['name']: t['status'] for t in json.load(open('bad/result.json'))['tenants']}
assert r == {'a': 'succeeded', 'x': 'failed', 'c': 'succeeded'}, r
" || fail "result.json: want a, c succeeded and x failed"
pass "a tenant with broken data fails alone; the next takes its slot with the same bits"

# 4. A tenant appended to the spec after a checkpoint (what weftd does when
# it admits a job into a running pack) joins the resumed pack at its own
# step 0; the others resume at their steps: everyone's solo bits.
spec grow grow 2 a b
WEFT_FAULT=1:9:kill mpirun -np 2 weft-worker grow.cfg >grow1.log 2>&1
[ $? -ne 0 ] || fail "the killed pack exited 0 (grow)"
spec grow grow 2 a b e
mpirun -np 2 weft-worker grow.cfg >grow2.log 2>&1 || fail "resume with e appended: $(tail -3 grow2.log)"
grep -q "resuming from .*ckpt-8" grow2.log || fail "did not resume from ckpt-8: $(head -3 grow2.log)"
grep -q "tenant e was admitted after step 8" grow2.log || fail "e was not taken as a newcomer"
for t in a b e; do
    cmp -s solo-$t/$t/adapter.h5 grow/$t/adapter.h5 || fail "$t differs after e was appended"
done
spec mid mid 2 a b
WEFT_FAULT=1:9:kill mpirun -np 2 weft-worker mid.cfg >mid1.log 2>&1
spec mid mid 2 a e b
mpirun -np 2 weft-worker mid.cfg >mid2.log 2>&1
[ $? -eq 78 ] && grep -q "the spec changed since .*ckpt-8" mid2.log ||
    fail "a tenant put among the checkpoint's ones was not refused: $(tail -2 mid2.log)"
pass "a tenant appended after a checkpoint joins the resumed pack at its step 0: solo bits"

summary
