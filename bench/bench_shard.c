/* bench_shard.c: placeholder until this benchmark lands. */
#include "bench.h"
#include <stdio.h>
int bench_shard(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft-bench shard: not built yet\n");
    return 1;
}
