# tests/lora/: LoRA adapters and packed multi-tenant training: the math on
# buffers, the adapter file, packing properties on the engine, the PyTorch
# reference, `weft grad --adapter`, and the adapter file from h5py.
LORA_TEST_CFLAGS = $(TEST_CFLAGS)
LORA_ENGINE_LIBS = $(ENGINE_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
LORA_MODEL_LIBS = model/libweftmodel.a $(LORA_ENGINE_LIBS)

check_PROGRAMS += tests/lora/test_lora tests/lora/test_adapter tests/lora/test_pack \
	tests/lora/test_lora_ref
tests_lora_test_lora_SOURCES = tests/lora/test_lora.c
tests_lora_test_lora_CFLAGS = $(LORA_TEST_CFLAGS)
tests_lora_test_lora_LDADD = $(LORA_ENGINE_LIBS)
tests_lora_test_adapter_SOURCES = tests/lora/test_adapter.c
tests_lora_test_adapter_CFLAGS = $(LORA_TEST_CFLAGS)
tests_lora_test_adapter_LDADD = $(LORA_MODEL_LIBS)
tests_lora_test_pack_SOURCES = tests/lora/test_pack.c
tests_lora_test_pack_CFLAGS = $(LORA_TEST_CFLAGS)
tests_lora_test_pack_LDADD = $(LORA_ENGINE_LIBS)
tests_lora_test_lora_ref_SOURCES = tests/lora/test_lora_ref.c
tests_lora_test_lora_ref_CFLAGS = $(LORA_TEST_CFLAGS)
tests_lora_test_lora_ref_LDADD = $(LORA_MODEL_LIBS)

TESTS += tests/lora/test_lora tests/lora/test_adapter tests/lora/test_pack tests/lora/test_coretypes.sh \
	tests/lora/test_lora_ref tests/lora/test_grad_adapter.sh tests/lora/test_h5py.py
EXTRA_DIST += tests/lora/test_grad_adapter.sh tests/lora/test_h5py.py tests/lora/test_coretypes.sh \
	tests/lora/data/base.h5 tests/lora/data/acme.h5 tests/lora/data/acme-ref.h5 \
	tests/lora/data/globex.h5 tests/lora/data/globex-ref.h5 \
	scripts/make-lora-reference.py docs/FORMATS-adapter.md
