# common/: code shared by several programs: errors and logging, SHA-256,
# HDF5 helpers, durable file operations, "did you mean".
noinst_LIBRARIES += common/libweftcommon.a
common_libweftcommon_a_SOURCES = \
	common/log.c common/log.h common/clock.h common/splitmix.h \
	common/sha256.c common/sha256.h \
	common/h5util.c common/h5util.h \
	common/fsutil.c common/fsutil.h \
	common/versions.c common/versions.h \
	common/suggest.c common/suggest.h
# The wire protocol, the worker's outbox and CURVE keys (libweftwire.a, on
# ZeroMQ and Jansson); link it before libweftcommon.a.
noinst_LIBRARIES += common/libweftwire.a
common_libweftwire_a_SOURCES = \
	common/wire.c common/wire.h \
	common/outbox.c common/outbox.h \
	common/auth.c common/auth.h
