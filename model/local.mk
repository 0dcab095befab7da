# model/: the model vocabulary and its files (libweftmodel.a): architecture
# attributes and presets, the one table of adapter module names, weft-model
# and weft-adapter files, Hugging Face's byte-level BPE tokenizers (`weft
# tokenize`; PCRE2 splits, utf8proc normalises), safetensors, config.json and
# PEFT (`weft import`, `export`, `export-adapter`, `merge`). Below jobs/ and
# shards/, above engine/.
noinst_LIBRARIES += model/libweftmodel.a
# -O3: the tokenizer's merge loop and the widening loops of the converters.
model_libweftmodel_a_CFLAGS = $(AM_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS) -O3
model_libweftmodel_a_SOURCES = \
	model/modules.c model/modules.h \
	model/model_attrs.c model/model_attrs.h \
	model/model_file.c model/model_file.h \
	model/adapter.c model/adapter.h \
	model/tokenizer.c model/tokenizer.h model/tok_internal.h \
	model/bpe.c \
	model/tok_h5.c model/tok_h5.h \
	model/tokenize_cmd.c \
	model/safetensors.c model/safetensors.h \
	model/hf_config.c model/hf_model.c model/hf.h \
	model/peft.c model/peft.h \
	model/hf_cmd.c
WEFT_LIBS += $(PCRE2_LIBS) $(UTF8PROC_LIBS)
EXTRA_DIST += docs/FORMATS-hf.md
