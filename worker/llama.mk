# worker/llama.mk: the Llama family in the engine (libweftengine.a).
worker_libweftengine_a_SOURCES += worker/llama.c worker/llama.h \
	worker/llama_kernels.c worker/llama_kernels.h
