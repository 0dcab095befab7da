# tests/lib.sh: shared helpers for the shell tests: pass/fail lines, a
# closing count, and small real corpora made from Debian's licence texts.
# shellcheck shell=bash
TESTS_PASSED=0
pass() { echo "ok: $*"; TESTS_PASSED=$((TESTS_PASSED + 1)); }
fail() { echo "FAIL: $*"; echo "$TESTS_PASSED passed, 1 failed"; exit 1; }
summary() { echo "$TESTS_PASSED passed, 0 failed"; }

# tenants_block NAME...: a spec's `tenants = ( ... );` list, each tenant's
# group the value of the shell variable TEN_<NAME>.
tenants_block() {
    local first=1 t v
    echo "tenants = ("
    for t in "$@"; do
        v=TEN_$t
        [ $first = 1 ] || echo ","
        echo "  ${!v}"
        first=0
    done
    echo ");"
}

# test_tmp NAME: T=/tmp/weft-test-NAME-XXXXXX, made the working folder and
# removed on exit (kept when KEEP is set).
test_tmp() {
    T=$(mktemp -d "/tmp/weft-test-$1-XXXXXX")
    trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
    cd "$T" || fail "cd $T"
}

# make_corpora N: the first N of a.h5 .. d.h5 (GPL-3, Apache-2.0, Artistic,
# MPL-2.0), each as make_corpus makes it.
make_corpora() {
    local i=0 c
    for c in a:GPL-3 b:Apache-2.0 c:Artistic d:MPL-2.0; do
        [ $i -lt "$1" ] || break
        make_corpus "${c%%:*}" "${c#*:}" >/dev/null || fail "make_corpus ${c%%:*}"
        i=$((i + 1))
    done
}

# make_corpus NAME LICENCE: NAME.h5 from /usr/share/common-licenses/LICENCE,
# one document per paragraph, 4 shards, a tenth for validation.
make_corpus() {
    local src=/usr/share/common-licenses/$2
    [ -r "$src" ] || { echo "SKIP: $src is missing"; exit 77; }
    awk 'BEGIN { RS = ""; ORS = "\n---\n" } { print }' "$src" > "$1.txt"
    weft shard --quiet --force --shards 4 --val-fraction 0.1 --seed 1 -o "$1.h5" "$1.txt" ||
        fail "weft shard $1"
}
