# tests/worker/: checkpoints and (later) weft-worker runs under mpirun.
check_PROGRAMS += tests/worker/test_ckpt
tests_worker_test_ckpt_SOURCES = tests/worker/test_ckpt.c
tests_worker_test_ckpt_CFLAGS = $(TEST_CFLAGS)
tests_worker_test_ckpt_LDADD = worker/libweftrun.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/worker/test_ckpt

TESTS += tests/worker/test_worker.sh
EXTRA_DIST += tests/worker/test_worker.sh tests/lib.sh

TESTS += tests/worker/test_llama_worker.sh
EXTRA_DIST += tests/worker/test_llama_worker.sh

TESTS += tests/worker/test_refill.sh
EXTRA_DIST += tests/worker/test_refill.sh
TESTS += tests/worker/test_versions.sh
EXTRA_DIST += tests/worker/test_versions.sh
