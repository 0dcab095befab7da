# engine/: the numerical core, pure computation on buffers (libweftengine.a):
# GPT-2 and the Llama family (forward, backward), their kernels, LoRA over row
# segments, document attention, AdamW and schedules, the RNG, the rank's
# threads. It sees only the C library, OpenBLAS and OpenMP: its include path
# is the tree's root (for "common/log.h" and the like) behind engine/fence,
# whose <mpi.h>, <zmq.h>, <hdf5.h> and <libconfig.h> stop the build.
noinst_LIBRARIES += engine/libweftengine.a
# The user's CFLAGS (by default -g -O2) come last on the command line and
# would turn -O3's vectoriser back down to -O2's: name it explicitly. omp simd
# gives the reductions a fixed lane order; no -ffast-math (results stay IEEE).
# No peeling for alignment: a loop's lanes start at its first element
# wherever the row sits in memory, so a row's bits do not depend on its
# address (a tenant's rows sit elsewhere packed than alone).
ENGINE_VECTOR_FLAGS = -ftree-vectorize -fvect-cost-model=dynamic -fopenmp-simd \
	-fno-math-errno -fno-trapping-math --param=vect-max-peeling-for-alignment=0
ENGINE_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/engine/fence -I$(top_srcdir) -I$(top_builddir)
engine_libweftengine_a_CPPFLAGS = $(ENGINE_CPPFLAGS)
engine_libweftengine_a_CFLAGS = $(WEFT_CFLAGS) $(BLAS_CFLAGS) $(ENGINE_CFLAGS) $(ENGINE_VECTOR_FLAGS)
engine_libweftengine_a_SOURCES = \
	engine/gpt2.c engine/gpt2.h \
	engine/llama.c engine/llama.h \
	engine/kernels.c engine/kernels.h \
	engine/llama_kernels.c engine/llama_kernels.h \
	engine/docattn.c engine/docattn.h \
	engine/segmm.c engine/segmm.h \
	engine/lora.c engine/lora.h \
	engine/lora_train.c engine/lora_train.h \
	engine/optim.c engine/optim.h \
	engine/rng.c engine/rng.h \
	engine/par.c engine/par.h engine/vexp.h
EXTRA_DIST += engine/fence/mpi.h engine/fence/zmq.h engine/fence/hdf5.h engine/fence/libconfig.h

