# worker/: weft-worker, the MPI program that runs one job's worker group: the
# loop (worker.c), checkpoints (ckpt.c, libweftrun.a, also read by tests and
# the fuzz target), the signal guard, publishing outputs and the reporter
# that streams metrics to weftd.
noinst_LIBRARIES += worker/libweftrun.a
worker_libweftrun_a_SOURCES = worker/ckpt.c worker/ckpt.h

bin_PROGRAMS += weft-worker
weft_worker_SOURCES = worker/worker.c worker/guard.c worker/guard.h \
	worker/publish.c worker/publish.h \
	worker/reporter.c worker/reporter.h
weft_worker_LDADD = worker/libweftrun.a $(JOBS_LIBS) $(WEFT_LIBS) -lpthread
