# bench/sweep.mk: weft-bench sweep (early-stopped sweeps, continuous packing).
weft_bench_SOURCES += bench/bench_sweep.c
