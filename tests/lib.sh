# tests/lib.sh: shared helpers for the shell tests: pass/fail lines, a
# closing count, and small real corpora made from Debian's licence texts.
# shellcheck shell=bash
TESTS_PASSED=0
pass() { echo "ok: $*"; TESTS_PASSED=$((TESTS_PASSED + 1)); }
fail() { echo "FAIL: $*"; echo "$TESTS_PASSED passed, 1 failed"; exit 1; }
summary() { echo "$TESTS_PASSED passed, 0 failed"; }

# make_corpus NAME LICENCE: NAME.h5 from /usr/share/common-licenses/LICENCE,
# one document per paragraph, 4 shards, a tenth for validation.
make_corpus() {
    local src=/usr/share/common-licenses/$2
    [ -r "$src" ] || { echo "SKIP: $src is missing"; exit 77; }
    awk 'BEGIN { RS = ""; ORS = "\n---\n" } { print }' "$src" > "$1.txt"
    weft shard --quiet --force --shards 4 --val-fraction 0.1 --seed 1 -o "$1.h5" "$1.txt" ||
        fail "weft shard $1"
}
