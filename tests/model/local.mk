# tests/model/: the tokenizers, safetensors, import/export and PEFT.
check_PROGRAMS += tests/model/test_tokenizer
tests_model_test_tokenizer_SOURCES = tests/model/test_tokenizer.c
tests_model_test_tokenizer_CFLAGS = $(TEST_CFLAGS)
tests_model_test_tokenizer_LDADD = $(MODEL_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/model/test_tokenizer tests/model/test_gpt2_js.sh tests/model/test_tokenize_cli.sh \
	tests/model/test_shard_bpe.py tests/model/test_model_tok.sh tests/model/test_chat_bpe.py
EXTRA_DIST += tests/model/test_chat_bpe.py tests/model/corpus.py tests/model/maketok.py tests/model/test_shard_bpe.py tests/model/gpt2_js.js tests/model/test_gpt2_js.sh \
	tests/model/test_tokenize_cli.sh tests/model/test_model_tok.sh
# The npm package the JavaScript comparison installs into the build tree.
clean-local-npm:
	rm -rf tests/model/npm
CLEAN_LOCAL_HOOKS += clean-local-npm

# Tests: the parser's rules and conversions in C; import/export/merge and
# PEFT against an independent Python writer and the PyTorch references.
check_PROGRAMS += tests/model/test_safetensors
tests_model_test_safetensors_SOURCES = tests/model/test_safetensors.c
tests_model_test_safetensors_CFLAGS = $(TEST_CFLAGS)
tests_model_test_safetensors_LDADD = $(MODEL_LIBS) $(WEFT_LIBS) $(TEST_LIBS)
TESTS += tests/model/test_safetensors tests/model/test_hf_import.py \
	tests/model/test_hf_reference.py tests/model/test_peft.py \
	tests/model/test_mistral_window.sh tests/model/test_peft_llama.py
EXTRA_DIST += tests/model/test_mistral_window.sh tests/model/test_peft_llama.py
EXTRA_DIST += tests/model/test_hf_import.py tests/model/test_hf_reference.py \
	tests/model/test_peft.py tests/model/stwriter.py tests/model/modeltest.py

# The header parser's fuzz target (docs/FUZZING.md), replayed by make check.
FUZZ_NAMES += safetensors
FUZZ_safetensors_LIBS = $(MODEL_LIBS) $(WEFT_LIBS)
check_PROGRAMS += tests/fuzz/replay_safetensors
TESTS += tests/fuzz/replay_safetensors
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c tests/fuzz/replay.c
tests_fuzz_replay_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS) \
	-DFUZZ_TARGET='"safetensors"'
tests_fuzz_replay_safetensors_LDADD = $(FUZZ_safetensors_LIBS)
if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_safetensors
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_safetensors_LDADD = $(FUZZ_safetensors_LIBS)
endif

# The LoRA module table (model/modules.h).
check_PROGRAMS += tests/model/test_modules
tests_model_test_modules_SOURCES = tests/model/test_modules.c
tests_model_test_modules_CFLAGS = $(TEST_CFLAGS)
tests_model_test_modules_LDADD = $(MODEL_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/model/test_modules
