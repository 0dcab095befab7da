# model/hf.mk: Hugging Face checkpoints in and PEFT adapters out: the
# safetensors reader and writer, config.json mapping, import/export/merge
# (libweftst.a), its tests and its fuzz target. Programs that read adapters
# through worker/libweftmodel.a link libweftst.a after it.
noinst_LIBRARIES += model/libweftst.a
model_libweftst_a_SOURCES = \
	model/safetensors.c model/safetensors.h \
	model/hf_config.c model/hf_model.c model/hf.h \
	model/peft.c model/peft.h \
	model/hf_cmd.c
# The widening loops vectorise (the user's -O2 comes last and would not).
model_libweftst_a_CFLAGS = $(AM_CFLAGS) -ftree-vectorize -fvect-cost-model=dynamic
HF_LIBS = model/libweftst.a common/libweftcommon.a $(WEFT_LIBS)

weft_LDADD += $(HF_LIBS)
weftd_LDADD += $(HF_LIBS)
weft_worker_LDADD += $(HF_LIBS)
weft_bench_LDADD += $(HF_LIBS)
weft_bench_SOURCES += bench/bench_import.c
tests_engine_test_engine_LDADD += $(HF_LIBS)
LORA_MODEL_LIBS += $(HF_LIBS)
FUZZ_dispatch_LIBS += $(HF_LIBS)

# Tests: the parser's rules and conversions in C; import/export/merge and
# PEFT against an independent Python writer and the PyTorch references.
check_PROGRAMS += tests/model/test_safetensors
tests_model_test_safetensors_SOURCES = tests/model/test_safetensors.c
tests_model_test_safetensors_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/model
tests_model_test_safetensors_LDADD = $(HF_LIBS) $(TEST_LIBS)
TESTS += tests/model/test_safetensors tests/model/test_hf_import.py \
	tests/model/test_hf_reference.py tests/model/test_peft.py \
	tests/model/test_mistral_window.sh tests/model/test_peft_llama.py
EXTRA_DIST += tests/model/test_mistral_window.sh tests/model/test_peft_llama.py
EXTRA_DIST += tests/model/test_hf_import.py tests/model/test_hf_reference.py \
	tests/model/test_peft.py tests/model/stwriter.py docs/FORMATS-hf.md

# The header parser's fuzz target (docs/FUZZING.md), replayed by make check.
FUZZ_NAMES += safetensors
FUZZ_safetensors_LIBS = $(HF_LIBS)
check_PROGRAMS += tests/fuzz/replay_safetensors
TESTS += tests/fuzz/replay_safetensors
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c tests/fuzz/replay.c
tests_fuzz_replay_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/model \
	-DFUZZ_TARGET='"safetensors"'
tests_fuzz_replay_safetensors_LDADD = $(FUZZ_safetensors_LIBS)
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_safetensors
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(top_srcdir)/model
tests_fuzz_fuzz_safetensors_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_safetensors_LDADD = $(FUZZ_safetensors_LIBS)
endif
