#!/bin/sh
# test_mpi.sh: a shard file read by 3 real MPI ranks at once (each opens it
# read-only): windows stay in each rank's shards, the ranks cover every
# shard once, and restored cursors repeat their windows.
set -eu
work=$(mktemp -d /tmp/weft-test-shards-mpi-XXXXXX)
trap 'rm -rf "$work"' EXIT
# 300 documents of varied length
awk 'BEGIN { for (i = 0; i < 300; i++) { for (j = 0; j <= i % 37; j++) printf "word%d ", i * j; print ""; print "---" } }' \
    >"$work/in.txt"
weft shard --quiet --shards 7 --val-fraction 0.1 --seed 3 -o "$work/in.h5" "$work/in.txt" >/dev/null
# Open MPI keeps some allocations until exit, which LeakSanitizer would
# report in a sanitizer build; the reader's own leaks are test_shardset's.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    ${MPIRUN:-mpirun} -np 3 "${top_builddir:-.}/tests/shards/mpi_windows" "$work/in.h5"
