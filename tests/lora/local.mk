# tests/lora/: LoRA adapters and packed multi-tenant training.
check_PROGRAMS += tests/lora/test_lora tests/lora/test_adapter
tests_lora_test_lora_SOURCES = tests/lora/test_lora.c
tests_lora_test_lora_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_lora_test_lora_LDADD = worker/libweftengine.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
tests_lora_test_adapter_SOURCES = tests/lora/test_adapter.c
tests_lora_test_adapter_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_lora_test_adapter_LDADD = worker/libweftmodel.a worker/libweftengine.a common/libweftcommon.a \
	$(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/lora/test_lora tests/lora/test_adapter
check_PROGRAMS += tests/lora/test_pack
tests_lora_test_pack_SOURCES = tests/lora/test_pack.c
tests_lora_test_pack_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_lora_test_pack_LDADD = worker/libweftengine.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/lora/test_pack
check_PROGRAMS += tests/lora/test_lora_ref
tests_lora_test_lora_ref_SOURCES = tests/lora/test_lora_ref.c
tests_lora_test_lora_ref_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/worker
tests_lora_test_lora_ref_LDADD = worker/libweftmodel.a worker/libweftengine.a common/libweftcommon.a \
	$(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/lora/test_lora_ref
EXTRA_DIST += tests/lora/data/base.h5 tests/lora/data/acme.h5 tests/lora/data/acme-ref.h5 \
	tests/lora/data/globex.h5 tests/lora/data/globex-ref.h5
TESTS += tests/lora/test_grad_adapter.sh
EXTRA_DIST += tests/lora/test_grad_adapter.sh
