# bench/: weft-bench, the benchmark programs (ratios measured in one run).
