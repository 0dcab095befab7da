#!/bin/bash
# test_weftd_prep_cancel.sh: `weft cancel` of a job whose raw data weftd is
# still sharding ends the preparation's whole process group (the child weftd
# forked, the shard command it runs, and that command's own child) within
# seconds; the job ends cancelled, stays so once weftd has reaped the
# preparation, and leaves nothing in the data cache.
#
# A preparation is over in a blink, so this one is made slow: weftd runs the
# `weft` beside its own executable, and here weftd (a copy of the one built)
# is installed in a folder of its own beside a `weft` that, for `shard`,
# first waits on a child of its own (as a site's wrapper staging a corpus
# from slow storage would) and then runs the built weft.
set -u
. "$top_srcdir/tests/scheduler/weftd_lib.sh"
weftd_tmp prep-cancel

# proc PID: "STATE PARENT GROUP" of PID while it lives (a zombie does not).
proc() {
    local s state parent pg
    { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
    # the fields after the command name, which may hold spaces and ')'
    read -r state parent pg _ <<< "${s##*) }"
    [ "$state" != Z ] && echo "$state $parent $pg"
}
# group PGID: the live processes of process group PGID.
group() {
    local g=$1 f st
    for f in /proc/[0-9]*; do
        st=$(proc "${f#/proc/}") && [ "${st##* }" = "$g" ] && echo "${f#/proc/}"
    done
}
leader="" shell="" sleeper=""
on_exit() { # what a failure here leaves of the preparation is ended too
    local p
    for p in $sleeper $shell $leader; do proc "$p" >/dev/null && kill -KILL "$p" 2>/dev/null; done
}

awk 'BEGIN { RS = ""; ORS = "\n---\n" } { print }' /usr/share/common-licenses/GPL-3 > raw.txt ||
    fail "raw.txt"
weft init-model --preset tiny --seed 5 -o base.h5 >/dev/null || fail "init-model"
mkdir bin
cp "$(command -v weftd)" bin/weftd || fail "copy weftd"
cat > bin/weft <<EOF
#!/bin/sh
if [ "\$1" = shard ]; then
    sleep 120 &
    echo "\$\$ \$!" > "$T/shard.pids.tmp" && mv "$T/shard.pids.tmp" "$T/shard.pids"
    wait \$!
fi
exec "$(command -v weft)" "\$@"
EOF
chmod +x bin/weft

WEFTD="$T/bin/weftd" start home1
spec prep out-prep a:raw.txt > prep.cfg
W home1 submit prep.cfg >/dev/null || fail "submit"
for _ in $(seq 100); do [ -s shard.pids ] && break; sleep 0.2; done
[ -s shard.pids ] || fail "no preparation ran weft shard in 20 s (job $(state_of home1 1))"
read -r shell sleeper < shard.pids
st=$(proc "$shell") || fail "weft shard (pid $shell) ended before the cancel"
read -r _ leader pgid <<< "$st"
[ "$pgid" = "$leader" ] ||
    fail "weft shard (pid $shell) is in group $pgid, not in its preparation's ($leader)"
weftd_pid=$(cat "$T/home1/weftd.pid")
st=$(proc "$weftd_pid") || fail "weftd is gone"
[ "$pgid" != "${st##* }" ] || fail "the preparation is in weftd's group"
members=$(group "$pgid" | sort -n | tr '\n' ' ')
[ "$members" = "$(printf '%s\n' "$leader" "$shell" "$sleeper" | sort -n | tr '\n' ' ')" ] ||
    fail "group $pgid holds $members, want the preparation $leader, weft shard $shell" \
        "and its child $sleeper"
[ "$(state_of home1 1)" = preparing ] || fail "job 1 is $(state_of home1 1) while sharding"
pass "a preparation runs in a process group of its own" \
    "(pid $leader, weft shard $shell, its child $sleeper)"

t0=$(date +%s%N)
out=$(W home1 cancel 1) || fail "cancel: $out"
echo "$out" | grep -q "1: cancelled" || fail "cancel said: $out"
while left=$(group "$pgid" | tr '\n' ' '); [ -n "$left" ]; do
    [ $(($(date +%s%N) - t0)) -lt 8000000000 ] ||
        fail "8 s after cancel the preparation's group $pgid still holds: $left"
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
for p in "$leader" "$shell" "$sleeper"; do
    proc "$p" >/dev/null && fail "pid $p of the preparation still runs after cancel"
done
pass "cancel ended the preparation, weft shard and its child in $ms ms"

# weftd reaps the preparation: the job stays cancelled, the cache is clean.
for _ in $(seq 50); do compgen -G "$T/home1/data/prep-*" >/dev/null || break; sleep 0.1; done
compgen -G "$T/home1/data/prep-*" >/dev/null && fail "leftovers in the cache: $(ls "$T/home1/data")"
[ "$(state_of home1 1)" = cancelled ] || fail "job 1 is $(state_of home1 1), want cancelled"
kill -0 "$weftd_pid" 2>/dev/null || fail "weftd is gone"
pass "the job is cancelled, the cache holds nothing of the preparation, weftd goes on"

summary
