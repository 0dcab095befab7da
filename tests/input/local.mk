# tests/input/: hostile and new-user input across areas: files that would
# load as wrong values, and the README's tour run as written.
TESTS += tests/input/test_hostile_files.py tests/input/test_worker_vocab.sh \
	tests/input/test_readme_tour.sh tests/input/test_client_input.sh
EXTRA_DIST += tests/input/test_hostile_files.py tests/input/test_worker_vocab.sh \
	tests/input/test_readme_tour.sh tests/input/test_client_input.sh
check_PROGRAMS += tests/input/test_tenant_path
tests_input_test_tenant_path_SOURCES = tests/input/test_tenant_path.c
tests_input_test_tenant_path_CFLAGS = $(TEST_CFLAGS)
tests_input_test_tenant_path_LDADD = scheduler/libweftsched.a common/libweftcommon.a $(TEST_LIBS) \
	$(WEFT_LIBS)
TESTS += tests/input/test_tenant_path
