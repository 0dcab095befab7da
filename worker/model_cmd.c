/* model_cmd.c: placeholder until the engine's commands land (issue 3). */
#include "weft_cmds.h"
#include <stdio.h>
int cmd_init_model(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft init-model: not built yet\n");
    return 1;
}
int cmd_grad(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft grad: not built yet\n");
    return 1;
}
