# worker/: the engine (pure computation on buffers, libweftengine.a), model
# and adapter files and their commands (libweftmodel.a), and weft-worker.
noinst_LIBRARIES += worker/libweftengine.a worker/libweftmodel.a
worker_libweftengine_a_CFLAGS = $(AM_CFLAGS) $(ENGINE_CFLAGS) -fopenmp-simd -fno-math-errno -fno-trapping-math
worker_libweftengine_a_SOURCES = \
	worker/gpt2.c worker/gpt2.h \
	worker/kernels.c worker/kernels.h \
	worker/optim.c worker/optim.h \
	worker/rng.c worker/rng.h
worker_libweftmodel_a_SOURCES = \
	worker/model_file.c worker/model_file.h \
	worker/model_cmd.c
