#!/bin/bash
# test_weftd_hostile.sh: weftd against hostile and careless input, with real
# processes (weftd, weft, mpirun, weft-worker): a result that cannot be
# published, a FIFO as data, a corpus swapped while it is sharded, the same
# corpus sharded twice at once, one tenant's bad shards packed with a
# healthy tenant.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp hostile

make_corpus good GPL-3 >/dev/null
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"

start home1

# 1. A result that cannot be published is no success: the job fails with
# why, `weft show` says it, and `weft submit --wait` exits non-zero.
spec nopub /proc/weft-x a:good.h5 > nopub.cfg
W home1 submit nopub.cfg --wait >nopub.log 2>&1 && fail "submit --wait exited 0 for a job with no output: $(tail -3 nopub.log)"
[ "$(state_of home1 1)" = failed ] || fail "the job is $(state_of home1 1), want failed"
W home1 show 1 | grep -q "cannot publish" || fail "weft show does not say why: $(W home1 show 1)"
pass "a result that cannot be published fails its job; show says why, --wait exits non-zero"

# 2. One tenant's bad data: refused at SUBMIT, as `weft validate` refuses it
# (here one shard for two ranks; a FIFO as data), before it can be packed.
weft shard --quiet --shards 1 --val-fraction 0.1 -o one.h5 good.txt >/dev/null || fail "shard one.h5"
spec badpack out-bad good:good.h5 bad:one.h5 > badpack.cfg
out=$(W home1 submit badpack.cfg 2>&1) && fail "a tenant with 1 shard for 2 ranks was accepted"
echo "$out" | grep -q "1 shard for 2 ranks" || fail "no reason for the refusal: $out"
weft validate badpack.cfg >/dev/null 2>&1 && fail "weft validate passed 1 shard for 2 ranks"
mkfifo pipe.txt
spec fifo out-fifo a:pipe.txt > fifo.cfg
out=$(timeout 20 weft --home "$T/home1" submit fifo.cfg 2>&1) && fail "a FIFO as data was accepted"
echo "$out" | grep -q "not a regular file" || fail "FIFO refused without the reason: $out"
pass "bad data is refused at SUBMIT with its reason (1 shard for 2 ranks; a FIFO)"

# At run time (the worker on its own, no weftd) a tenant whose data fails to
# load is dropped alone and its pack-mate finishes.
spec runpack out-run good:good.h5 bad:one.h5 > runpack.cfg
mpirun -np 2 --oversubscribe weft-worker runpack.cfg >runpack.log 2>&1 ||
    fail "the pack failed for one tenant's data: $(tail -3 runpack.log)"
[ -s out-run/good/adapter.h5 ] || fail "the healthy tenant has no adapter"
/usr/bin/python3 - out-run/result.json <<'PY' || fail "result.json: $(cat out-run/result.json)"
import json, sys
r = {t["name"]: t for t in json.load(open(sys.argv[1]))["tenants"]}
assert r["good"]["status"] == "succeeded", r
assert r["bad"]["status"] == "failed" and "shard" in r["bad"]["error"], r
PY
pass "at run time a tenant whose data fails to load is dropped alone; its pack-mate succeeds"

# 3. The shard cache is named by the hash of the bytes sharded, and a cache
# file is used only while its source_sha256 is that hash: one planted under
# another corpus's name is sharded again, never trained on.
awk 'BEGIN { RS = ""; ORS = "\n---\n" } { print }' /usr/share/common-licenses/Apache-2.0 > mine.txt
awk 'BEGIN { RS = ""; ORS = "\n---\n" } { print }' /usr/share/common-licenses/Artistic > planted.txt
key=$(sha256sum mine.txt | cut -c1-64)
cache="$T/home1/data/$key-text-byte-v1-s2.h5"
weft shard --quiet --shards 2 --val-fraction 0.1 -o "$cache" planted.txt >/dev/null || fail "plant"
spec cached out-cached a:mine.txt > cached.cfg
W home1 submit cached.cfg --wait >cached.log 2>&1 || fail "job on mine.txt: $(tail -3 cached.log)"
sha=$(/usr/bin/python3 -c 'import h5py, sys; print(h5py.File(sys.argv[1], "r").attrs["source_sha256"].decode())' "$cache")
[ "$sha" = "$key" ] || fail "the job used a cache file holding another corpus ($sha, want $key)"
pass "a cache file that does not hold what its name says is sharded again"

# 4. The same content sharded by several jobs at once: every job succeeds.
for k in 1 2 3; do cp good.txt same$k.txt; done
spec same out-same a:same1.txt b:same2.txt c:same3.txt > same.cfg
W home1 submit same.cfg --wait >same.log 2>&1 || fail "identical corpora sharded at once: $(tail -5 same.log)"
ls "$T/home1/data" | grep -q "tmp\|\.src$" && fail "temporary files left in the cache: $(ls "$T/home1/data")"
pass "identical content sharded at once: every job succeeds, the cache holds no leftovers"

summary
