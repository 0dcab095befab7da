#!/bin/sh
# test_layers.sh: the layers hold. The engine builds with its own flags only,
# and its fence stops <mpi.h>, <zmq.h>, <hdf5.h> and <libconfig.h> there;
# every folder includes only its own headers and those of the layers below it.
set -eu
: "${top_srcdir:=.}"
CC=${CC:-cc}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fail=0

# 1. The fence: with the engine's flags each of these headers is an error
#    naming the engine; a plain C header and OpenBLAS's still compile.
for h in mpi zmq hdf5 libconfig; do
    printf '#include <%s.h>\nint x;\n' "$h" >"$t/probe.c"
    if $CC $ENGINE_CPPFLAGS $ENGINE_CFLAGS -fsyntax-only "$t/probe.c" 2>"$t/err"; then
        echo "FAIL: <$h.h> compiles with the engine's flags"; fail=1
    elif ! grep -q "included from engine/" "$t/err"; then
        echo "FAIL: <$h.h> fails with the engine's flags, but not at the fence:"; cat "$t/err"; fail=1
    fi
done
printf '#include <cblas.h>\n#include <omp.h>\n#include "engine/gpt2.h"\n#include "common/log.h"\nint x;\n' >"$t/probe.c"
if ! $CC $ENGINE_CPPFLAGS $ENGINE_CFLAGS -fsyntax-only "$t/probe.c" 2>"$t/err"; then
    echo "FAIL: the engine's own headers do not compile with its flags:"; cat "$t/err"; fail=1
fi

# 2. Includes go down. Each folder, and what it may include besides itself.
below() {
    case $1 in
    common) echo "" ;;
    engine) echo "common" ;;
    model) echo "common engine" ;;
    shards) echo "common engine model" ;;
    jobs) echo "common engine model shards" ;;
    cli | worker | bench) echo "common engine model shards jobs" ;;
    scheduler) echo "common engine model shards jobs cli" ;;
    esac
}
for dir in common engine model shards jobs cli worker scheduler bench; do
    ok="$dir $(below $dir)"
    for f in "$top_srcdir/$dir"/*.c "$top_srcdir/$dir"/*.h; do
        [ -e "$f" ] || continue
        # "folder/name.h" includes only; a bare "name.h" is the old convention.
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
            while read -r inc; do
                case $inc in
                config.h) continue ;;
                */*) ;;
                *) echo "FAIL: $dir/${f##*/} includes \"$inc\" without its folder"; echo x >>"$t/bad"; continue ;;
                esac
                top=${inc%%/*}
                case " $ok " in
                *" $top "*) ;;
                *) echo "FAIL: $dir/${f##*/} includes \"$inc\": $dir may include only $ok"; echo x >>"$t/bad" ;;
                esac
            done
    done
done
[ -e "$t/bad" ] && fail=1
[ $fail = 0 ] && echo "layers: fence holds, includes go down"
exit $fail
