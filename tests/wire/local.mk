# tests/wire/: tests of the wire area (owned with that area): the message
# layer and the outbox over real ZeroMQ sockets on ipc:// in a temp folder.
check_PROGRAMS += tests/wire/test_wire tests/wire/test_outbox
tests_wire_test_wire_SOURCES = tests/wire/test_wire.c
tests_wire_test_wire_CFLAGS = $(TEST_CFLAGS)
tests_wire_test_wire_LDADD = common/libweftwire.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
tests_wire_test_outbox_SOURCES = tests/wire/test_outbox.c
tests_wire_test_outbox_CFLAGS = $(TEST_CFLAGS)
tests_wire_test_outbox_LDADD = common/libweftwire.a common/libweftcommon.a $(TEST_LIBS) $(WEFT_LIBS)
TESTS += tests/wire/test_wire tests/wire/test_outbox
