# tests/engine/packed.mk: packed documents against float64 references.
check_PROGRAMS += tests/engine/test_packed
tests_engine_test_packed_SOURCES = tests/engine/test_packed.c
tests_engine_test_packed_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_engine_test_packed_LDADD = worker/libweftmodel.a worker/libweftengine.a model/libwefttok.a \
	common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/engine/test_packed
EXTRA_DIST += tests/engine/data/tiny-packed.h5 tests/engine/data/lgqa-packed.h5 \
	tests/engine/data/lrope3-packed.h5
