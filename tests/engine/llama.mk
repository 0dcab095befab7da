# tests/engine/llama.mk: the Llama family beyond the references.
check_PROGRAMS += tests/engine/test_llama
tests_engine_test_llama_SOURCES = tests/engine/test_llama.c
tests_engine_test_llama_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_engine_test_llama_LDADD = worker/libweftmodel.a worker/libweftengine.a model/libwefttok.a \
	common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/engine/test_llama
TESTS += tests/engine/test_llama_cli.sh
EXTRA_DIST += tests/engine/test_llama_cli.sh
include tests/engine/packed.mk
