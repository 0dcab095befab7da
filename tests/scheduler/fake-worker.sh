#!/bin/sh
# A stand-in worker program for the executor test: every rank prints its
# arguments and records its pid, then behaves as WEFT_TEST_MODE says (an exit
# code, or sleep).
echo "rank ${OMPI_COMM_WORLD_RANK:-?} args: $* threads=$OPENBLAS_NUM_THREADS"
[ -n "$WEFT_TEST_DIR" ] && echo $$ > "$WEFT_TEST_DIR/rank-${OMPI_COMM_WORLD_RANK:-x}.pid"
case "${WEFT_TEST_MODE:-0}" in
sleep) exec sleep 60 ;;
*) exit "${WEFT_TEST_MODE:-0}" ;;
esac
