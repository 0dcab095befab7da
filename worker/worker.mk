# worker/worker.mk: weft-worker's run-time pieces (checkpoints, and later the
# MPI driver and reporter), apart from the engine in worker/local.mk.
noinst_LIBRARIES += worker/libweftrun.a
worker_libweftrun_a_SOURCES = worker/ckpt.c worker/ckpt.h

bin_PROGRAMS += weft-worker
weft_worker_SOURCES = worker/worker.c worker/guard.c worker/guard.h \
	worker/publish.c worker/publish.h \
	worker/reporter.c worker/reporter.h
weft_worker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/worker -I$(top_srcdir)/jobs \
	-I$(top_srcdir)/shards
weft_worker_LDADD = worker/libweftrun.a worker/libweftmodel.a worker/libweftengine.a \
	jobs/libweftjobs.a shards/libweftshards.a model/libwefttok.a common/libweftwire.a common/libweftcommon.a \
	$(WEFT_LIBS) -lpthread

# `weft generate` and `weft eval`.
worker_libweftmodel_a_SOURCES += worker/generate_cmd.c
