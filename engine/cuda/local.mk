# engine/cuda/local.mk: the CUDA engine in the autotools build, only with
# ./configure --with-cuda (nvcc found); without it nothing here is built and
# weft-worker and weft link exactly as before. engine/cuda/Makefile is the
# standalone build (nvcc and a C compiler alone) that scripts/device-check
# falls back to where the CPU build's libraries are missing.
EXTRA_DIST += engine/cuda/gpt2_cuda.cu engine/cuda/gpt2_cuda.h engine/cuda/kernels_cuda.cuh \
	engine/cuda/attention_wmma.cuh engine/cuda/test_cuda.c engine/cuda/bench_cuda.c \
	engine/cuda/bench_torch_cuda.py engine/cuda/h5_to_raw.py engine/cuda/Makefile \
	engine/cuda/cblas_ref.c engine/cuda/shim/cblas.h
if WITH_CUDA
noinst_LIBRARIES += engine/cuda/libweftcuda.a
engine_cuda_libweftcuda_a_SOURCES = engine/cuda/gpt2_cuda.h
engine_cuda_libweftcuda_a_LIBADD = engine/cuda/gpt2_cuda.$(OBJEXT)
CUDA_NVFLAGS = -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra -lineinfo
engine/cuda/gpt2_cuda.$(OBJEXT): $(srcdir)/engine/cuda/gpt2_cuda.cu \
		$(srcdir)/engine/cuda/gpt2_cuda.h $(srcdir)/engine/cuda/kernels_cuda.cuh \
		$(srcdir)/engine/cuda/attention_wmma.cuh $(srcdir)/engine/gpt2.h
	$(AM_V_GEN)$(MKDIR_P) engine/cuda && \
	$(NVCC) $(CUDA_NVFLAGS) -D_GNU_SOURCE -I$(srcdir)/engine/cuda -I$(srcdir) -I$(builddir) \
		-c $(srcdir)/engine/cuda/gpt2_cuda.cu -o $@
CLEANFILES += engine/cuda/gpt2_cuda.$(OBJEXT)
# Every program may reach the engine (weft-worker; weft grad and weft
# generate through libweftmodel.a): it goes with the libraries all link.
WEFT_LIBS += engine/cuda/libweftcuda.a $(CUDA_LIBS)
AM_CPPFLAGS += $(CUDA_CPPFLAGS)
# weft-bench engine --device cuda runs bench_cuda.c's step.
weft_bench_SOURCES += engine/cuda/bench_cuda.c
weft_bench_CFLAGS += -DWEFT_BENCH_CUDA_LIB
endif
