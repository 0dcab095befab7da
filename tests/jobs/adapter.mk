# tests/jobs/adapter.mk: plan_check_adapter against adapter files.
check_PROGRAMS += tests/jobs/test_plan_adapter
tests_jobs_test_plan_adapter_SOURCES = tests/jobs/test_plan_adapter.c
tests_jobs_test_plan_adapter_CFLAGS = $(TEST_CFLAGS)
tests_jobs_test_plan_adapter_LDADD = $(JOBS_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/jobs/test_plan_adapter
