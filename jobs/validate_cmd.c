/* validate_cmd.c: placeholder until `weft validate` lands (issue 5). */
#include "weft_cmds.h"
#include <stdio.h>
int cmd_validate(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "weft validate: not built yet\n");
    return 1;
}
