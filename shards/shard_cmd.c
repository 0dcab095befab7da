/* shard_cmd.c: placeholder until `weft shard` lands (issue 2). */
#include "weft_cmds.h"
#include <stdio.h>
int cmd_shard(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft shard: not built yet\n");
    return 1;
}
