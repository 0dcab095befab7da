#!/bin/bash
# test_versions.sh: the adapter kept and the versions published (DESIGN.md
# "Published outputs"), by weft-worker alone and under weftd: keep = "best"
# publishes bitwise the adapter of the step with the lowest validation loss,
# also across a kill and resume; each run is a new v<N>; current moves only
# to a version no worse on tonight's /val unless promote = "always";
# keep_versions prunes all but the newest and current; continue = true starts
# from the current version (bitwise as init_adapter would), or warns.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-versions-XXXXXX)
cleanup() {
    [ -f "$T/home/weftd.pid" ] && kill "$(cat "$T/home/weftd.pid")" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

make_corpus a GPL-3 >/dev/null
weft init-model --preset tiny --seed 3 -o base.h5 >/dev/null || fail "init-model"

spec() { # file output steps lr [extra train settings] [extra tenant settings]
    cat > "$1" <<CFG
name = "v"; mode = "lora"; model = "base.h5"; output = "$2";
train = { steps = $3; batch_size = 4; seq_len = 16; lr = $4; schedule = "constant";
          eval_every = 4; checkpoint_every = 4; eval_windows = 4; ${5:-} };
lora = { r = 4; alpha = 8.0; targets = ["attn.c_attn", "mlp.c_fc"]; };
resources = { ranks = 2; threads = 1; };
tenants = ( { name = "a"; data = "a.h5"; ${6:-} } );
CFG
}
worker() { mpirun -np 2 weft-worker "$@"; }
same_tensors() { # two adapter files: every dataset equal, bit for bit
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
na, nb = [], []
a.visititems(lambda n, o: na.append(n) if isinstance(o, h5py.Dataset) else None)
b.visititems(lambda n, o: nb.append(n) if isinstance(o, h5py.Dataset) else None)
assert na == nb and na, (na, nb)
for n in na:
    assert a[n][()].tobytes() == b[n][()].tobytes(), n
PY
}
json() { /usr/bin/python3 -c "import json,sys; print(eval(sys.argv[2], {}, {'j': json.load(open(sys.argv[1]))}))" "$@"; }

# 1. keep = "best": a high constant learning rate overfits, so the best
# evaluation comes before the last step; the published adapter is bitwise
# the one a run stopped at that step publishes with keep = "last".
spec best.cfg best 40 0.05
worker best.cfg >best.log 2>&1 || fail "keep=best run: $(tail -3 best.log)"
b=$(/usr/bin/python3 - best/metrics.jsonl <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ev = [e for e in ev if e["kind"] == "eval" and e["step"] >= 1]
print(min(ev, key=lambda e: (e["val_loss"], e["step"]))["step"])
PY
)
[ "$b" -lt 40 ] || fail "the best evaluation is the last step ($b): the test needs one before it"
[ "$(json best/a/current/version.json "j['step']")" = "$b" ] || fail "version.json says step $(json best/a/current/version.json "j['step']"), the best is $b"
[ "$(json best/result.json "j['tenants'][0]['best_step']")" = "$b" ] || fail "result.json does not name step $b"
spec upto.cfg upto "$b" 0.05 'keep = "last";'
worker upto.cfg >upto.log 2>&1 || fail "run to step $b: $(tail -3 upto.log)"
same_tensors best/a/adapter.h5 upto/a/adapter.h5 || fail "the kept adapter is not the adapter of step $b"
[ ! -e best/a/best.h5 ] && [ ! -e best/a/new ] || fail "best.h5 or new/ left behind: $(ls best/a)"
pass "keep = \"best\" publishes the adapter of step $b (of 40), bitwise; result.json and version.json name it"

spec last.cfg last 40 0.05 'keep = "last";'
worker last.cfg >last.log 2>&1 || fail "keep=last run"
[ "$(json last/a/current/version.json "j['step']")" = 40 ] || fail "keep=last did not publish step 40"
same_tensors best/a/adapter.h5 last/a/adapter.h5 2>/dev/null && fail "keep=last published the best adapter"
pass "keep = \"last\" publishes step 40"

# 2. Killed after the best was kept and resumed: the same bits.
spec kill.cfg kill 40 0.05
WEFT_FAULT=1:$((b + 6)):kill worker kill.cfg >kill1.log 2>&1 && fail "the killed run exited 0"
[ -s "kill/a/best.h5" ] || fail "no best.h5 written when the loss improved: $(ls kill/a)"
worker kill.cfg >kill2.log 2>&1 || fail "resume: $(tail -3 kill2.log)"
grep -q "resuming from" kill2.log || fail "did not resume: $(head -3 kill2.log)"
cmp -s best/a/adapter.h5 kill/a/adapter.h5 || fail "killed at step $((b + 6)) and resumed, the kept adapter differs"
pass "killed at step $((b + 6)) after the best (step $b) was written, resumed: the same adapter"

# 3. Versions without weftd: the next run of the same spec is v2; a worse
# one is v3 but not current; promote = "always" moves current anyway;
# keep_versions prunes, never the current one.
worker best.cfg >n2.log 2>&1 || fail "second run: $(tail -3 n2.log)"
[ -d best/a/v1 ] && [ -d best/a/v2 ] && [ "$(readlink best/a/current)" = v2 ] ||
    fail "second run: $(ls -l best/a)"
grep -q "published as v2, promoted" n2.log || fail "v2 not promoted: $(grep published n2.log)"
pass "the next run is v2 (v1 kept), promoted: no worse on the same data"

spec worse.cfg best 1 0.000001 'keep = "last";'
worker worse.cfg >n3.log 2>&1 || fail "worse run: $(tail -3 n3.log)"
[ -d best/a/v3 ] && [ "$(readlink best/a/current)" = v2 ] || fail "a worse v3 was promoted: $(ls -l best/a)"
[ "$(json best/a/v3/version.json "j['promoted']")" = False ] || fail "v3's version.json says promoted"
/usr/bin/python3 - best/a/v3/version.json <<'PY' || fail "v3's losses: $(cat best/a/v3/version.json)"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["val_loss"] > v["baseline"]["val_loss"], v
assert v["baseline"]["adapter"].endswith("/a/v2/adapter.h5"), v
PY
r=$(json best/result.json "(j['tenants'][0]['promoted'], j['tenants'][0]['version'], j['tenants'][0]['baseline_val_loss'] is not None)")
[ "$r" = "(False, 3, True)" ] || fail "result.json: $r"
cmp -s best/a/adapter.h5 best/a/v2/adapter.h5 || fail "adapter.h5 is not the current version's"
pass "a worse run is v3 and not promoted; current, adapter.h5 and peft stay on v2"

spec always.cfg best 1 0.000001 'keep = "last"; promote = "always";'
worker always.cfg >n4.log 2>&1 || fail "always run: $(tail -3 n4.log)"
[ "$(readlink best/a/current)" = v4 ] || fail "promote = always did not promote v4: $(ls -l best/a)"
pass "promote = \"always\" makes the worse v4 current"

spec good2.cfg best 40 0.05 'keep_versions = 2;'
worker good2.cfg >n5.log 2>&1 || fail "prune run: $(tail -3 n5.log)"
got=$(cd best/a && ls -d v* | sort | tr '\n' ' ')
[ "$got" = "v4 v5 " ] && [ "$(readlink best/a/current)" = v5 ] || fail "keep_versions = 2 left: $got, current $(readlink best/a/current)"
spec prune.cfg best 1 0.000001 'keep = "last"; keep_versions = 2;'
worker prune.cfg >n6.log 2>&1 || fail "prune run 2"
worker prune.cfg >n7.log 2>&1 || fail "prune run 3"
got=$(cd best/a && ls -d v* | sort | tr '\n' ' ')
[ "$got" = "v5 v6 v7 " ] && [ "$(readlink best/a/current)" = v5 ] || fail "the current v5 was pruned, or too few kept: $got"
pass "keep_versions = 2 keeps the newest two and the current one, never removing current"

# 4. continue = true: from the current version, bitwise as init_adapter.
spec cont.cfg best 8 0.01 '' 'continue = true;'
worker cont.cfg >c1.log 2>&1 || fail "continue run: $(tail -3 c1.log)"
grep -q "continues its current version v5" c1.log || fail "did not continue v5: $(grep -i contin c1.log)"
cp best/a/v5/adapter.h5 v5.h5
spec init.cfg init 8 0.01 '' "init_adapter = \"$T/v5.h5\";"
worker init.cfg >c2.log 2>&1 || fail "init_adapter run"
same_tensors best/a/v8/adapter.h5 init/a/adapter.h5 || fail "continue = true differs from init_adapter = v5"
spec fresh.cfg fresh 8 0.01 '' 'continue = true;'
worker fresh.cfg >c3.log 2>&1 || fail "continue without a version: $(tail -3 c3.log)"
grep -q "warning: tenant a: continue = true but there is no earlier version" c3.log ||
    fail "no warning for continue without a version: $(head -5 c3.log)"
pass "continue = true starts from the current version (as init_adapter does, bitwise); with none, a warning and a fresh start"

# 5. Under weftd: the same layout in the spec's output, results show the
# old and new validation loss and the promotion.
weftd --home "$T/home" --slots 2 --pack-size 4 >/dev/null || fail "weftd would not start"
W() { weft --home "$T/home" "$@"; }
spec d1.cfg "$T/pub" 12 0.01
W submit d1.cfg --wait >d1.log 2>&1 || fail "weftd run 1: $(tail -5 d1.log)"
W submit d1.cfg --wait >d2.log 2>&1 || fail "weftd run 2: $(tail -5 d2.log)"
spec d3.cfg "$T/pub" 1 0.000001 'keep = "last";'
W submit d3.cfg --wait >d3.log 2>&1 || fail "weftd run 3: $(tail -5 d3.log)"
[ "$(cd pub/a && ls -d v* | tr '\n' ' ')" = "v1 v2 v3 " ] && [ "$(readlink pub/a/current)" = v2 ] ||
    fail "weftd's versions: $(ls -l pub/a)"
cmp -s pub/a/v1/adapter.h5 pub/a/v2/adapter.h5 || fail "the same spec twice gave two adapters"
W results 2 >r2.txt && grep -q "v2 from step .*: promoted (current: v2)" r2.txt || fail "results 2: $(cat r2.txt)"
W results 3 >r3.txt && grep -q "v3 from step 1: val_loss [0-9.]*, current version's [0-9.]*: not promoted (current: v2)" r3.txt ||
    fail "results 3: $(cat r3.txt)"
W results 3 --json | grep -q '"baseline_val_loss": [0-9]' || fail "results --json has no baseline_val_loss"
pass "under weftd: v1, v2 (promoted), v3 worse (not promoted); weft results shows both losses"
summary
