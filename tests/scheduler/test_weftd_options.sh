#!/bin/bash
# test_weftd_options.sh: weftd's command line: a malformed number is refused
# in one line that names the option it was given to (exit 64), and
# --insecure-tcp's warning is printed once by a weftd in the foreground.
set -u
. "$top_srcdir/tests/lib.sh"

T=$(mktemp -d /tmp/weft-test-options-XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# 1. Every numeric option, given a word, a number with a tail, and nothing.
for opt in slots pack-size liveness max-message max-spec max-tenants max-trials max-watch \
    max-watch-per-client; do
    for bad in x 3x ""; do
        weftd --home "$T/home" --foreground "--$opt" "$bad" >"$T/out" 2>"$T/err"
        rc=$?
        [ $rc = 64 ] || fail "weftd --$opt '$bad' exits $rc, want 64: $(cat "$T/err")"
        [ "$(wc -l <"$T/err")" = 1 ] || fail "weftd --$opt '$bad' says more than one line: $(cat "$T/err")"
        grep -q -- "--$opt " "$T/err" || fail "weftd --$opt '$bad' names another option: $(cat "$T/err")"
        grep -qF "'$bad'" "$T/err" || fail "weftd --$opt '$bad' does not quote the value: $(cat "$T/err")"
        [ ! -s "$T/out" ] || fail "weftd --$opt '$bad' printed on stdout: $(cat "$T/out")"
    done
done
[ ! -e "$T/home/weftd.pid" ] || fail "a refused command line still took the home's lock"
pass "a malformed number for each of 9 numeric options: exit 64, one line naming that option"

# 2. --insecure-tcp in the foreground: the warning once, on stderr.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
weftd --home "$T/home" --foreground --endpoint "tcp://127.0.0.1:$port" --insecure-tcp \
    >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$T/err" && break
    kill -0 $pid 2>/dev/null || fail "weftd --insecure-tcp did not start: $(cat "$T/err")"
    sleep 0.1
done
grep -q "listening on" "$T/err" || fail "weftd --insecure-tcp never listened: $(cat "$T/err")"
kill $pid
wait $pid
pid=
n=$(grep -c "NOT authenticated" "$T/err")
[ "$n" = 1 ] || fail "--insecure-tcp's warning printed $n times, want 1: $(cat "$T/err")"
pass "--insecure-tcp in the foreground: one warning on stderr"
summary
