#!/bin/bash
# test_model_tok.sh: a model file carries its tokenizer (docs/FORMATS-model.md):
# init-model --tokenizer stores tokenizer.json (or vocab.json + merges.txt)
# and its SHA-256; weft tokenize, shard, generate and eval use it; a full
# run's output model carries it on; weft eval and weft-worker refuse shards
# made with another tokenizer, naming both hashes; weftd shards a tenant's
# raw text with the model's tokenizer.
set -euo pipefail
. "${top_srcdir:-.}/tests/lib.sh"
work=$(mktemp -d /tmp/weft-test-model-tok-XXXXXX)
cleanup() {
    [ -f "$work/home/weftd.pid" ] && kill "$(cat "$work/home/weftd.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
PY=${PYTHON3:-/usr/bin/python3}
maketok="${top_srcdir:-.}/tests/model/maketok.py"

$PY "$maketok" tok.json
# the same tokenizer written differently: another SHA-256
$PY -c "import json,sys; json.dump(json.load(open('tok.json')), open('tok2.json','w'), indent=1)"
mkdir pair
$PY - <<'PY'
import json
t = json.load(open("tok.json"))
vocab = dict(t["model"]["vocab"], **{"<|endoftext|>": 261})
json.dump(vocab, open("pair/vocab.json", "w"))
open("pair/merges.txt", "w").write("#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in t["model"]["merges"]))
PY
awk 'BEGIN { for (i = 0; i < 120; i++) { printf "in the %d then the word in %d\n", i, i * 7; if (i % 10 == 9) print "---" } }' >in.txt

weft init-model --preset tiny --ctx 32 --tokenizer tok.json -o m.h5 >/dev/null || fail "init-model --tokenizer"
$PY - <<'PY' || fail "model attributes or datasets"
import hashlib, h5py, sys
f = h5py.File("m.h5", "r")
raw = open("tok.json", "rb").read()
assert f.attrs["tokenizer"] == b"bpe", f.attrs["tokenizer"]
assert f.attrs["tokenizer_sha256"].decode() == hashlib.sha256(raw).hexdigest()
d = f["tokenizer/tokenizer.json"]
assert d.dtype == "uint8" and d.ndim == 1 and d[:].tobytes() == raw
assert f.attrs["vocab_size"] == 262 and f["wte"].shape[0] == 262
PY
pass "init-model --tokenizer tok.json: /tokenizer/tokenizer.json, tokenizer = bpe, its SHA-256, V = 262"

weft init-model --preset tiny --ctx 32 --tokenizer pair -o p.h5 >/dev/null || fail "init-model --tokenizer pair/"
$PY - <<'PY' || fail "GPT-2 pair in the model file"
import hashlib, h5py
f = h5py.File("p.h5", "r")
v, m = open("pair/vocab.json", "rb").read(), open("pair/merges.txt", "rb").read()
assert f["tokenizer/vocab.json"][:].tobytes() == v and f["tokenizer/merges.txt"][:].tobytes() == m
assert f.attrs["tokenizer_sha256"].decode() == hashlib.sha256(v + m).hexdigest()
PY
[ "$(weft tokenize --tokenizer p.h5 in.txt)" = "$(weft tokenize --tokenizer pair in.txt)" ] ||
    fail "the pair read from p.h5 encodes differently"
pass "init-model --tokenizer pair/: vocab.json + merges.txt, SHA-256 of both"

[ "$(weft tokenize --tokenizer m.h5 in.txt)" = "$(weft tokenize --tokenizer tok.json in.txt)" ] ||
    fail "tokenize with the model file differs from tokenize with tok.json"
pass "weft tokenize --tokenizer MODEL.h5 equals the tokenizer.json it carries"

out=$(weft generate --model m.h5 --prompt "in the" --tokens 8 --seed 2) || fail "generate"
case "$out" in "in the"*) ;; *) fail "generate: '$out'" ;; esac
pass "weft generate with the model's tokenizer: '$out'"

weft shard --quiet --tokenizer m.h5 --val-fraction 0.3 --shards 2 -o d.h5 in.txt || fail "shard"
loss=$(weft eval --model m.h5 --data d.h5 --seq-len 16 --windows 4) || fail "eval"
pass "weft eval on shards of the model's tokenizer: $loss"

weft shard --quiet --tokenizer tok2.json --val-fraction 0.3 --shards 2 -o d2.h5 in.txt || fail "shard tok2"
sha1=$(sha256sum <tok.json | cut -c1-64)
sha2=$(sha256sum <tok2.json | cut -c1-64)
rc=0
weft eval --model m.h5 --data d2.h5 --seq-len 16 2>err || rc=$?
[ $rc -ne 0 ] && grep -q "$sha1" err && grep -q "$sha2" err || fail "eval of other shards: $(cat err)"
pass "weft eval refuses shards of another tokenizer: $(cat err)"

spec() { # name data
    cat >"$1.cfg" <<CFG
name = "$1";
mode = "full";
model = "m.h5";
data = "$2";
output = "$1.out";
train = { steps = 4; batch_size = 2; seq_len = 16; lr = 0.003; eval_every = 2;
          checkpoint_every = 2; eval_windows = 2; };
resources = { ranks = 1; threads = 1; };
CFG
}
spec bad d2.h5
rc=0
${MPIRUN:-mpirun} -np 1 weft-worker bad.cfg >out 2>&1 || rc=$?
[ $rc -eq 65 ] || [ $rc -eq 78 ] || fail "weft-worker on other shards exited $rc: $(tail -3 out)"
grep -q "$sha1" out && grep -q "$sha2" out || fail "weft-worker's refusal names both hashes: $(tail -3 out)"
pass "weft-worker refuses shards of another tokenizer (exit $rc): $(grep -m1 "$sha2" out)"

spec good d.h5
${MPIRUN:-mpirun} -np 1 weft-worker good.cfg >out 2>&1 || fail "weft-worker: $(tail -3 out)"
[ "$(weft tokenize --tokenizer good.out/model.h5 --info | grep sha256)" = "sha256 $sha1" ] ||
    fail "the trained model does not carry the tokenizer"
pass "a full run's model.h5 carries the backbone's tokenizer"

spec prep in.txt
weftd --home "$work/home" --slots 1 >/dev/null || fail "weftd would not start"
weft --home "$work/home" submit prep.cfg --wait >prep.log 2>&1 || fail "raw text job: $(tail -3 prep.log)"
cache=$(ls "$work"/home/data/*.h5 2>/dev/null | head -1)
[ -n "$cache" ] || fail "weftd left no sharded cache in $work/home/data"
$PY - "$cache" "$sha1" <<'PY' || fail "weftd's cache $cache is not sharded with the model's tokenizer"
import h5py, sys
f = h5py.File(sys.argv[1], "r")
assert f.attrs["tokenizer"] == b"bpe" and f.attrs["tokenizer_sha256"].decode() == sys.argv[2]
assert f.attrs["eot_id"] == 261
PY
pass "weftd shards raw text with the model's tokenizer ($(basename "$cache"))"
summary
