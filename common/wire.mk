# common/wire.mk: the wire protocol and the worker's outbox (libweftwire.a).
# Link it before common/libweftcommon.a (it uses the logging and file helpers).
noinst_LIBRARIES += common/libweftwire.a
common_libweftwire_a_SOURCES = \
	common/wire.c common/wire.h \
	common/outbox.c common/outbox.h \
	common/auth.c common/auth.h
