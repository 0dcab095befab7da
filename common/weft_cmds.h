/* weft_cmds.h: the `weft` command's subcommands. Each lives with the code it
 * drives and returns the process exit code; scheduler/weft.c dispatches. */
#ifndef WEFT_CMDS_H
#define WEFT_CMDS_H

int cmd_shard(int argc, char **argv);      /* shards/shard_cmd.c */
int cmd_tokenize(int argc, char **argv);   /* model/tokenize_cmd.c */
int cmd_validate(int argc, char **argv);   /* jobs/validate_cmd.c */
int cmd_init_model(int argc, char **argv); /* cli/model_cmd.c */
int cmd_grad(int argc, char **argv);       /* cli/model_cmd.c */

int cmd_generate(int argc, char **argv);   /* cli/generate_cmd.c */
int cmd_eval(int argc, char **argv);       /* cli/generate_cmd.c */
int cmd_submit(int argc, char **argv);     /* scheduler/client_cmds.c */
int cmd_ls(int argc, char **argv);         /* scheduler/client_cmds.c */
int cmd_show(int argc, char **argv);       /* scheduler/client_cmds.c */
int cmd_watch(int argc, char **argv);      /* scheduler/client_cmds.c */
int cmd_cancel(int argc, char **argv);     /* scheduler/client_cmds.c */
int cmd_results(int argc, char **argv);    /* scheduler/client_cmds.c */
int cmd_logs(int argc, char **argv);       /* scheduler/client_cmds.c */
int cmd_sbatch(int argc, char **argv);     /* scheduler/sbatch_cmd.c */
int cmd_plot(int argc, char **argv);       /* scheduler/client_plot.c */
int cmd_keygen(int argc, char **argv);     /* scheduler/keygen_cmd.c */
int cmd_import(int argc, char **argv);         /* model/hf_cmd.c */
int cmd_export(int argc, char **argv);         /* model/hf_cmd.c */
int cmd_export_adapter(int argc, char **argv); /* model/hf_cmd.c */
int cmd_merge(int argc, char **argv);          /* model/hf_cmd.c */

#endif
