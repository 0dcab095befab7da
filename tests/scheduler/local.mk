# tests/scheduler/: weftd's store, daemon and CLI.
check_PROGRAMS += tests/scheduler/test_store
tests_scheduler_test_store_SOURCES = tests/scheduler/test_store.c
tests_scheduler_test_store_CFLAGS = $(TEST_CFLAGS)
tests_scheduler_test_store_LDADD = scheduler/libweftsched.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/scheduler/test_store

check_PROGRAMS += tests/scheduler/test_planner
tests_scheduler_test_planner_SOURCES = tests/scheduler/test_planner.c
tests_scheduler_test_planner_CFLAGS = $(TEST_CFLAGS)
tests_scheduler_test_planner_LDADD = scheduler/libweftsched.a $(JOBS_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/scheduler/test_planner

check_PROGRAMS += tests/scheduler/test_exec_local
tests_scheduler_test_exec_local_SOURCES = tests/scheduler/test_exec_local.c
tests_scheduler_test_exec_local_CFLAGS = $(TEST_CFLAGS)
tests_scheduler_test_exec_local_LDADD = scheduler/libweftsched.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/scheduler/test_exec_local
EXTRA_DIST += tests/scheduler/fake-worker.sh

TESTS += tests/scheduler/test_weftd.sh
EXTRA_DIST += tests/scheduler/test_weftd.sh tests/scheduler/garbage.py
# weftd's command line: malformed numbers, --insecure-tcp's warning.
TESTS += tests/scheduler/test_weftd_options.sh
EXTRA_DIST += tests/scheduler/test_weftd_options.sh
TESTS += tests/scheduler/test_client_py.sh
EXTRA_DIST += tests/scheduler/test_client_py.sh scripts/weft_client.py
TESTS += tests/scheduler/test_weftd_hostile.sh
EXTRA_DIST += tests/scheduler/test_weftd_hostile.sh
# weft watch and weft submit --wait across a weftd restart.
TESTS += tests/scheduler/test_reconnect.sh
EXTRA_DIST += tests/scheduler/test_reconnect.sh
# What a client sees of the protocol: req echoes, WATCH batches.
TESTS += tests/scheduler/test_protocol.py
EXTRA_DIST += tests/scheduler/test_protocol.py

check_PROGRAMS += tests/scheduler/test_asha_rule
tests_scheduler_test_asha_rule_SOURCES = tests/scheduler/test_asha_rule.c
tests_scheduler_test_asha_rule_CFLAGS = $(TEST_CFLAGS)
tests_scheduler_test_asha_rule_LDADD = scheduler/libweftsched.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/scheduler/test_asha_rule tests/scheduler/test_asha.sh
EXTRA_DIST += tests/scheduler/test_asha.sh
# weftd's continuous packing (runs that take more jobs than a pack holds).
TESTS += tests/scheduler/test_weftd_refill.sh
EXTRA_DIST += tests/scheduler/test_weftd_refill.sh
TESTS += tests/scheduler/test_weftd_admit.sh
EXTRA_DIST += tests/scheduler/test_weftd_admit.sh

check_PROGRAMS += tests/scheduler/test_exec_gpus
tests_scheduler_test_exec_gpus_SOURCES = tests/scheduler/test_exec_gpus.c
tests_scheduler_test_exec_gpus_CFLAGS = $(TEST_CFLAGS)
tests_scheduler_test_exec_gpus_LDADD = scheduler/libweftsched.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/scheduler/test_exec_gpus
TESTS += tests/scheduler/test_weftd_chat.sh
EXTRA_DIST += tests/scheduler/test_weftd_chat.sh
# Helpers the weftd shell tests share.
EXTRA_DIST += tests/scheduler/weftd_lib.sh
# weft cancel ends a preparation's whole process group.
TESTS += tests/scheduler/test_weftd_prep_cancel.sh
EXTRA_DIST += tests/scheduler/test_weftd_prep_cancel.sh
# weft results: succeeded jobs by val loss, failed and cancelled ones last.
TESTS += tests/scheduler/test_weftd_results_rank.sh
EXTRA_DIST += tests/scheduler/test_weftd_results_rank.sh
