# tests/fuzz/: libFuzzer targets for what a hostile user controls: job specs
# (spec), wire messages (wire), checkpoint manifests (ckpt) and shard files
# (shards). Each target is also built with replay.c as a plain program that
# `make check` runs over its committed seed corpus (tests/fuzz/corpus/NAME)
# and every input that once crashed it (tests/fuzz/regress/NAME).
# `./configure --enable-fuzzing` (clang) builds tests/fuzz/fuzz_NAME, and
# `make fuzz FUZZ_SECONDS=60` runs each for that long.
FUZZ_NAMES = spec wire ckpt shards dispatch tokenizer
FUZZ_SECONDS = 60
FUZZ_spec_LIBS = $(JOBS_LIBS) $(WEFT_LIBS)
FUZZ_wire_LIBS = common/libweftwire.a common/libweftcommon.a $(WEFT_LIBS)
FUZZ_ckpt_LIBS = worker/libweftrun.a common/libweftcommon.a $(WEFT_LIBS)
FUZZ_shards_LIBS = $(SHARDS_LIBS) $(WEFT_LIBS)
# weftd's dispatcher: its own sources, weftd.c without main (weftd_core.c).
FUZZ_dispatch_SRC = tests/fuzz/fuzz_dispatch.c tests/fuzz/weftd_core.c scheduler/api.c \
	scheduler/monitor.c scheduler/monitor_msg.c scheduler/launch.c scheduler/publish.c \
	scheduler/zap.c scheduler/prepare.c scheduler/admit.c scheduler/early_stop.c scheduler/admit_run.c \
	scheduler/published.c
FUZZ_dispatch_LIBS = scheduler/libweftsched.a $(JOBS_LIBS) $(WEFT_LIBS)
FUZZ_tokenizer_LIBS = $(MODEL_LIBS) $(WEFT_LIBS)
FUZZ_CPPFLAGS = $(AM_CPPFLAGS)

check_PROGRAMS += tests/fuzz/replay_spec tests/fuzz/replay_wire tests/fuzz/replay_ckpt \
	tests/fuzz/replay_shards tests/fuzz/replay_dispatch tests/fuzz/replay_tokenizer
TESTS += tests/fuzz/replay_spec tests/fuzz/replay_wire tests/fuzz/replay_ckpt \
	tests/fuzz/replay_shards tests/fuzz/replay_dispatch tests/fuzz/replay_tokenizer
tests_fuzz_replay_tokenizer_SOURCES = tests/fuzz/fuzz_tokenizer.c tests/fuzz/replay.c
tests_fuzz_replay_tokenizer_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_TARGET='"tokenizer"'
tests_fuzz_replay_tokenizer_LDADD = $(FUZZ_tokenizer_LIBS)
tests_fuzz_replay_spec_SOURCES = tests/fuzz/fuzz_spec.c tests/fuzz/replay.c
tests_fuzz_replay_spec_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_TARGET='"spec"'
tests_fuzz_replay_spec_LDADD = $(FUZZ_spec_LIBS)
tests_fuzz_replay_wire_SOURCES = tests/fuzz/fuzz_wire.c tests/fuzz/replay.c
tests_fuzz_replay_wire_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_TARGET='"wire"'
tests_fuzz_replay_wire_LDADD = $(FUZZ_wire_LIBS)
tests_fuzz_replay_ckpt_SOURCES = tests/fuzz/fuzz_ckpt.c tests/fuzz/replay.c
tests_fuzz_replay_ckpt_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_TARGET='"ckpt"'
tests_fuzz_replay_ckpt_LDADD = $(FUZZ_ckpt_LIBS)
tests_fuzz_replay_shards_SOURCES = tests/fuzz/fuzz_shards.c tests/fuzz/replay.c
tests_fuzz_replay_shards_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_TARGET='"shards"'
tests_fuzz_replay_shards_LDADD = $(FUZZ_shards_LIBS)
tests_fuzz_replay_dispatch_SOURCES = $(FUZZ_dispatch_SRC) tests/fuzz/replay.c
tests_fuzz_replay_dispatch_CPPFLAGS = $(FUZZ_CPPFLAGS) \
	-DFUZZ_TARGET='"dispatch"'
tests_fuzz_replay_dispatch_LDADD = $(FUZZ_dispatch_LIBS)
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/regress tests/fuzz/hdf5-bugs

if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_spec tests/fuzz/fuzz_wire tests/fuzz/fuzz_ckpt \
	tests/fuzz/fuzz_shards tests/fuzz/fuzz_dispatch tests/fuzz/fuzz_tokenizer
tests_fuzz_fuzz_tokenizer_SOURCES = tests/fuzz/fuzz_tokenizer.c
tests_fuzz_fuzz_tokenizer_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_tokenizer_LDADD = $(FUZZ_tokenizer_LIBS)
tests_fuzz_fuzz_dispatch_SOURCES = $(FUZZ_dispatch_SRC)
tests_fuzz_fuzz_dispatch_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_dispatch_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_dispatch_LDADD = $(FUZZ_dispatch_LIBS)
tests_fuzz_fuzz_spec_SOURCES = tests/fuzz/fuzz_spec.c
tests_fuzz_fuzz_spec_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_spec_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_spec_LDADD = $(FUZZ_spec_LIBS)
tests_fuzz_fuzz_wire_SOURCES = tests/fuzz/fuzz_wire.c
tests_fuzz_fuzz_wire_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_wire_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_wire_LDADD = $(FUZZ_wire_LIBS)
tests_fuzz_fuzz_ckpt_SOURCES = tests/fuzz/fuzz_ckpt.c
tests_fuzz_fuzz_ckpt_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_ckpt_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_ckpt_LDADD = $(FUZZ_ckpt_LIBS)
tests_fuzz_fuzz_shards_SOURCES = tests/fuzz/fuzz_shards.c
tests_fuzz_fuzz_shards_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_shards_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_shards_LDADD = $(FUZZ_shards_LIBS)

# Each target runs FUZZ_SECONDS from the seeds plus what earlier runs found
# (tests/fuzz/work/NAME in the build folder), then runs every input of that
# corpus once more with leak detection. A crashing input is saved as
# tests/fuzz/artifacts/NAME/crash-* and fails the run.
FUZZ_FLAGS = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
# HDF5 1.10 has memory bugs of its own on damaged files (tests/fuzz/hdf5-bugs/):
# the shard target goes on past crashes and leaves them for triage.
FUZZ_shards_FLAGS = -fork=1 -ignore_crashes=1
fuzz: $(FUZZ_NAMES:%=fuzz-%)
fuzz-%: tests/fuzz/fuzz_%
	@mkdir -p tests/fuzz/work/$* tests/fuzz/artifacts/$*
	@echo "fuzz: $* for $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1 ./tests/fuzz/fuzz_$* -max_total_time=$(FUZZ_SECONDS) \
	  -detect_leaks=0 $(FUZZ_FLAGS) $(FUZZ_$*_FLAGS) -artifact_prefix=tests/fuzz/artifacts/$*/ \
	  tests/fuzz/work/$* $(top_srcdir)/tests/fuzz/corpus/$*
	@echo "fuzz: $*: the corpus once more, with leak detection"
	@./tests/fuzz/fuzz_$* -runs=0 -detect_leaks=1 $(FUZZ_FLAGS) \
	  -artifact_prefix=tests/fuzz/artifacts/$*/ tests/fuzz/work/$* \
	  $(top_srcdir)/tests/fuzz/corpus/$* > tests/fuzz/work/$*.leaks.log 2>&1 || \
	  { grep -v '^weft' tests/fuzz/work/$*.leaks.log | tail -n 40; exit 1; }
	@n=$$(ls tests/fuzz/artifacts/$* | wc -l); if [ $$n -gt 0 ]; then \
	  echo "fuzz: $*: $$n crashing input(s) in tests/fuzz/artifacts/$*" >&2; \
	  test "$*" = shards; fi
else
fuzz:
	@echo "make fuzz: configure with --enable-fuzzing (clang) first" >&2; exit 1
endif
.PHONY: fuzz
