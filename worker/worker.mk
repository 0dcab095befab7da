# worker/worker.mk: weft-worker's run-time pieces (checkpoints, and later the
# MPI driver and reporter), apart from the engine in worker/local.mk.
noinst_LIBRARIES += worker/libweftrun.a
worker_libweftrun_a_SOURCES = worker/ckpt.c worker/ckpt.h
