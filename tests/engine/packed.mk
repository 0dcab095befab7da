# tests/engine/packed.mk: packed documents against float64 references.
check_PROGRAMS += tests/engine/test_packed
tests_engine_test_packed_SOURCES = tests/engine/test_packed.c
tests_engine_test_packed_CFLAGS = $(TEST_CFLAGS)
tests_engine_test_packed_LDADD = $(MODEL_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/engine/test_packed
EXTRA_DIST += tests/engine/data/tiny-packed.h5 tests/engine/data/lgqa-packed.h5 \
	tests/engine/data/lrope3-packed.h5
