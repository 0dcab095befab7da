# tests/model/: the tokenizers.
check_PROGRAMS += tests/model/test_tokenizer
tests_model_test_tokenizer_SOURCES = tests/model/test_tokenizer.c
tests_model_test_tokenizer_CFLAGS = $(TEST_CFLAGS)
tests_model_test_tokenizer_LDADD = model/libwefttok.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/model/test_tokenizer tests/model/test_gpt2_js.sh tests/model/test_tokenize_cli.sh \
	tests/model/test_shard_bpe.py tests/model/test_model_tok.sh tests/model/test_chat_bpe.py
EXTRA_DIST += tests/model/test_chat_bpe.py tests/model/corpus.py tests/model/maketok.py tests/model/test_shard_bpe.py tests/model/gpt2_js.js tests/model/test_gpt2_js.sh \
	tests/model/test_tokenize_cli.sh tests/model/test_model_tok.sh
CLEANFILES += tests/model/npm/package.json tests/model/npm/package-lock.json
