# worker/: the engine (pure computation, libweftengine.a), model and adapter
# files (libweftmodel.a), and weft-worker.
noinst_LIBRARIES += worker/libweftengine.a worker/libweftmodel.a
worker_libweftengine_a_CFLAGS = $(AM_CFLAGS) $(ENGINE_CFLAGS)
worker_libweftengine_a_SOURCES = worker/engine_placeholder.c
worker_libweftmodel_a_SOURCES = worker/model_cmd.c
