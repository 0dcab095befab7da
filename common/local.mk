# common/: code shared by several programs: errors and logging, SHA-256,
# HDF5 helpers, durable file operations.
noinst_LIBRARIES += common/libweftcommon.a
common_libweftcommon_a_SOURCES = \
	common/log.c common/log.h \
	common/sha256.c common/sha256.h \
	common/h5util.c common/h5util.h \
	common/fsutil.c common/fsutil.h \
	common/versions.c common/versions.h \
	common/model_attrs.c common/model_attrs.h
