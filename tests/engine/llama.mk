# tests/engine/llama.mk: the Llama family beyond the references.
check_PROGRAMS += tests/engine/test_llama
tests_engine_test_llama_SOURCES = tests/engine/test_llama.c
tests_engine_test_llama_CFLAGS = $(TEST_CFLAGS)
tests_engine_test_llama_LDADD = $(MODEL_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/engine/test_llama
TESTS += tests/engine/test_llama_cli.sh
EXTRA_DIST += tests/engine/test_llama_cli.sh
include tests/engine/packed.mk
