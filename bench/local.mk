# bench/: weft-bench, the benchmark programs (ratios measured in one run).
bin_PROGRAMS += weft-bench
weft_bench_SOURCES = bench/bench.c bench/bench.h bench/bench_shard.c bench/bench_engine.c bench/bench_lora.c \
	bench/bench_dp.c bench/bench_sched.c bench/bench_tokenize.c bench/bench_engine_cuda.c \
	bench/bench_import.c bench/bench_sweep.c
weft_bench_CFLAGS = $(AM_CFLAGS) $(ENGINE_CFLAGS)
weft_bench_LDADD = $(JOBS_LIBS) $(WEFT_LIBS)
