/* bench_lora.c: placeholder until this benchmark lands. */
#include "bench.h"
#include <stdio.h>
int bench_lora(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft-bench lora: not built yet\n");
    return 1;
}
