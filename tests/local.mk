# tests/: each area's tests live in tests/<area>/ and are listed here.
check_PROGRAMS += tests/common/test_common
tests_common_test_common_SOURCES = tests/common/test_common.c
tests_common_test_common_CFLAGS = $(TEST_CFLAGS)
tests_common_test_common_LDADD = common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/common/test_common
# What the Python tests share: PASS/FAIL counting, and driving a real weftd.
EXTRA_DIST += tests/checks.py tests/weftlib.py

include tests/shards/local.mk
include tests/shards/chat.mk
include tests/engine/local.mk
include tests/jobs/local.mk
include tests/wire/local.mk
include tests/slurm/local.mk
include tests/worker/local.mk
include tests/lora/local.mk
include tests/scheduler/local.mk
include tests/fuzz/local.mk
include tests/security/local.mk
include tests/chaos/local.mk
include tests/input/local.mk
include tests/model/local.mk
include tests/cuda/local.mk
