/* bench_engine.c: placeholder until this benchmark lands. */
#include "bench.h"
#include <stdio.h>
int bench_engine(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft-bench engine: not built yet\n");
    return 1;
}
