/* weft.c: the `weft` command: a table of subcommands, each implemented
 * beside the code it drives (see weft_cmds.h). */
#include "config.h"
#include "scheduler/client.h"
#include "common/log.h"
#include "common/weft_cmds.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"shard", cmd_shard, "tokenize text or JSONL into an HDF5 shard file"},
    {"tokenize", cmd_tokenize, "text to token ids and back with a Hugging Face BPE tokenizer"},
    {"validate", cmd_validate, "check a job spec and print its plan"},
    {"init-model", cmd_init_model, "write a freshly initialised weft-model file"},
    {"grad", cmd_grad, "loss and gradients of one batch (the engine's probe)"},
    {"generate", cmd_generate, "continue a prompt with a backbone, with or without an adapter"},
    {"eval", cmd_eval, "validation loss of a model (and adapter) on a shards file"},
    {"submit", cmd_submit, "queue a job spec with weftd (--wait follows it)"},
    {"ls", cmd_ls, "list jobs (--state, --name, --submission, --json)"},
    {"show", cmd_show, "one job's state, progress and losses"},
    {"watch", cmd_watch, "live progress of jobs until they end"},
    {"cancel", cmd_cancel, "cancel jobs (a tenant leaves its pack; the rest go on)"},
    {"results", cmd_results, "a batch's or sweep's jobs ranked by best val loss"},
    {"logs", cmd_logs, "the worker logs of a job's run, every attempt"},
    {"sbatch", cmd_sbatch, "submit a job, batch or sweep to Slurm (job arrays, requeue)"},
    {"plot", cmd_plot, "training and validation loss curves of a submission (PNG)"},
    {"keygen", cmd_keygen, "a CURVE key pair for weftd or a tcp client (--role)"},
    {"import", cmd_import, "a Hugging Face model folder (safetensors) -> a weft-model file"},
    {"export", cmd_export, "a weft-model file -> a Hugging Face model folder"},
    {"export-adapter", cmd_export_adapter, "a weft-adapter file -> a PEFT adapter folder"},
    {"merge", cmd_merge, "a model with an adapter folded into its weights"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: weft [--home DIR | --endpoint EP] COMMAND [ARGS]\n"
                 "       (weft COMMAND --help for its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    weft_log_init("weft");
    /* Where weftd is: options before the command. */
    while (argc > 2 && (!strcmp(argv[1], "--home") || !strcmp(argv[1], "--endpoint"))) {
        char *dst = !strcmp(argv[1], "--home") ? client_opts.home : client_opts.endpoint;
        if (snprintf(dst, PATH_MAX, "%s", argv[2]) >= PATH_MAX) {
            fprintf(stderr, "weft: %s is too long\n", argv[1]);
            return EX_USAGE;
        }
        argc -= 2;
        argv += 2;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("weft %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        char prog[64];
        snprintf(prog, sizeof prog, "weft %s", commands[i].name);
        weft_log_init(prog);
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "weft: unknown command '%s'; run 'weft --help' for the list\n", argv[1]);
    return EX_USAGE;
}
