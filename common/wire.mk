# common/wire.mk: the wire protocol and the worker's outbox (libweftwire.a).
