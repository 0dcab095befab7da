# model/tokenizer.mk: Hugging Face byte-level BPE tokenizers (libwefttok.a)
# and `weft tokenize`. PCRE2 (UTF, UCP, JIT) splits, utf8proc normalises.
noinst_LIBRARIES += model/libwefttok.a
model_libwefttok_a_CFLAGS = $(AM_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS) -O3
model_libwefttok_a_SOURCES = \
	model/tokenizer.c model/tokenizer.h model/tok_internal.h \
	model/bpe.c \
	model/tok_h5.c model/tok_h5.h \
	model/tokenize_cmd.c
WEFT_LIBS += $(PCRE2_LIBS) $(UTF8PROC_LIBS)
