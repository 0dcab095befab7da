# tests/engine/: the engine against committed PyTorch references, finite
# differences, determinism and bad input; the weft init-model/grad commands.
check_PROGRAMS += tests/engine/test_engine
tests_engine_test_engine_SOURCES = tests/engine/test_engine.c
tests_engine_test_engine_CFLAGS = $(TEST_CFLAGS)
tests_engine_test_engine_LDADD = $(MODEL_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/engine/test_engine tests/engine/test_engine_cli.sh tests/engine/test_layers.sh
EXTRA_DIST += tests/engine/test_engine_cli.sh tests/engine/test_layers.sh tests/check_main.h \
	tests/engine/data/tiny.h5 tests/engine/data/tiny-grad.h5 tests/engine/data/tiny-train.h5 \
	tests/engine/data/l3h3.h5 tests/engine/data/l3h3-grad.h5 tests/engine/data/l3h3-train.h5 \
	tests/engine/data/lgqa.h5 tests/engine/data/lgqa-grad.h5 tests/engine/data/lgqa-train.h5 \
	tests/engine/data/lbias.h5 tests/engine/data/lbias-grad.h5 tests/engine/data/lbias-train.h5 \
	tests/engine/data/lrope3.h5 tests/engine/data/lrope3-grad.h5 tests/engine/data/lrope3-train.h5 \
	tests/engine/data/lhd.h5 tests/engine/data/lhd-grad.h5 tests/engine/data/lhd-train.h5 \
	scripts/make-reference.py scripts/bench-torch.py

# `make bench-engine [BENCH_ARGS="--preset gpt2"]`: weft and PyTorch side by
# side, from one weft-bench invocation (never part of make check).
bench-engine: weft-bench
	top_srcdir='$(abs_top_srcdir)' ./weft-bench engine --vs-torch \
		--torch-script '$(abs_top_srcdir)/scripts/bench-torch.py' $(BENCH_ARGS)
.PHONY: bench-engine
include tests/engine/llama.mk
