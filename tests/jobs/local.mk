# tests/jobs/: tests of the jobs area (owned with that area).
check_PROGRAMS += tests/jobs/test_spec
tests_jobs_test_spec_SOURCES = tests/jobs/test_spec.c
tests_jobs_test_spec_CFLAGS = $(TEST_CFLAGS)
tests_jobs_test_spec_LDADD = $(JOBS_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/jobs/test_spec tests/jobs/test_validate.py
EXTRA_DIST += tests/jobs/bad tests/jobs/fixtures.py tests/jobs/test_validate.py

check_PROGRAMS += tests/jobs/test_early_stop
tests_jobs_test_early_stop_SOURCES = tests/jobs/test_early_stop.c
tests_jobs_test_early_stop_CFLAGS = $(TEST_CFLAGS)
tests_jobs_test_early_stop_LDADD = $(JOBS_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/jobs/test_early_stop
include tests/jobs/adapter.mk

check_PROGRAMS += tests/jobs/test_gpus
tests_jobs_test_gpus_SOURCES = tests/jobs/test_gpus.c
tests_jobs_test_gpus_CFLAGS = $(TEST_CFLAGS)
tests_jobs_test_gpus_LDADD = $(JOBS_LIBS) $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/jobs/test_gpus
