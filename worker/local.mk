# worker/: the engine (pure computation on buffers, libweftengine.a), model
# and adapter files and their commands (libweftmodel.a), and weft-worker.
noinst_LIBRARIES += worker/libweftengine.a worker/libweftmodel.a
# The user's CFLAGS (by default -g -O2) come last on the command line and
# would turn -O3's vectoriser back down to -O2's: name it explicitly. omp simd
# gives the reductions a fixed lane order; no -ffast-math (results stay IEEE).
# No peeling for alignment: a loop's lanes start at its first element
# wherever the row sits in memory, so a row's bits do not depend on its
# address (a tenant's rows sit elsewhere packed than alone).
ENGINE_VECTOR_FLAGS = -ftree-vectorize -fvect-cost-model=dynamic -fopenmp-simd \
	-fno-math-errno -fno-trapping-math --param=vect-max-peeling-for-alignment=0
worker_libweftengine_a_CFLAGS = $(AM_CFLAGS) $(ENGINE_CFLAGS) $(ENGINE_VECTOR_FLAGS)
worker_libweftengine_a_SOURCES = \
	worker/gpt2.c worker/gpt2.h \
	worker/segmm.c worker/segmm.h \
	worker/kernels.c worker/kernels.h \
	worker/optim.c worker/optim.h \
	worker/rng.c worker/rng.h
worker_libweftmodel_a_SOURCES = \
	worker/model_file.c worker/model_file.h \
	worker/model_cmd.c worker/device_opt.h
