/* hf_cmd.c: `weft import`, `weft export`, `weft export-adapter` and
 * `weft merge`: option parsing around hf_model.c and peft.c. */
#include "model/hf.h"
#include "common/log.h"
#include "model/peft.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *pos, *out, *model, *adapter, *base;
    int bf16;
} opts_t;

/* Parses [POS] -o OUT [--dtype f32|bf16] [--model M] [--adapter A]
 * [--base-model NAME], accepting only the options in allowed. -o, and POS,
 * --model and --adapter where allowed, must be given; required names them
 * for the error. 0, 1 after --help, or -1 and one line. */
static int parse(int argc, char **argv, const char *allowed, const char *required, opts_t *o,
                 void (*usage)(FILE *))
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (a[0] != '-') {
            if (o->pos || !strstr(allowed, "POS"))
                return weft_error("unexpected argument '%s'; see --help", a);
            o->pos = a;
            continue;
        }
        if (i + 1 >= argc) return weft_error("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            o->out = v;
        else if (!strcmp(a, "--dtype") && strstr(allowed, "dtype")) {
            if (strcmp(v, "f32") && strcmp(v, "bf16"))
                return weft_error("--dtype '%s': use f32 or bf16", v);
            o->bf16 = !strcmp(v, "bf16");
        } else if (!strcmp(a, "--model") && strstr(allowed, "model"))
            o->model = v;
        else if (!strcmp(a, "--adapter") && strstr(allowed, "adapter"))
            o->adapter = v;
        else if (!strcmp(a, "--base-model") && strstr(allowed, "base"))
            o->base = v;
        else
            return weft_error("unknown option '%s'; see --help", a);
    }
    if (!o->out || (strstr(allowed, "POS") && !o->pos) || (strstr(allowed, "model") && !o->model) ||
        (strstr(allowed, "adapter") && !o->adapter)) {
        usage(stderr);
        return weft_error("%s are required", required);
    }
    return 0;
}

/* A command: its options parsed (see parse), then act on them; main's exit
 * status (0 after --help, 1 and one line on any error). */
static int run(int argc, char **argv, const char *allowed, const char *required,
               void (*usage)(FILE *), int (*act)(const opts_t *))
{
    opts_t o;
    int p = parse(argc, argv, allowed, required, &o, usage);
    if (p == 1) return 0;
    if (p == 0 && act(&o) == 0) return 0;
    weft_report();
    return 1;
}

static void import_usage(FILE *out)
{
    fprintf(out, "usage: weft import HF_DIR -o MODEL.h5\n"
                 "HF_DIR holds config.json, model.safetensors (or model.safetensors.index.json\n"
                 "and its shards) and optionally tokenizer.json or vocab.json + merges.txt.\n"
                 "Architectures: GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM,\n"
                 "MistralForCausalLM. F32, F16, BF16 and F64 weights are read.\n");
}

static int import(const opts_t *o)
{
    uint64_t bytes = 0;
    if (hf_import(o->pos, o->out, &bytes) != 0) return -1;
    printf("%s: imported %s (%.1f MB of weights)\n", o->out, o->pos, (double)bytes / 1e6);
    return 0;
}

int cmd_import(int argc, char **argv)
{
    return run(argc, argv, "POS", "HF_DIR and -o", import_usage, import);
}

static void export_usage(FILE *out)
{
    fprintf(out, "usage: weft export MODEL.h5 -o HF_DIR [--dtype f32|bf16]\n"
                 "Writes config.json, model.safetensors and the model's tokenizer files.\n");
}

static int export(const opts_t *o)
{
    if (hf_export(o->pos, o->out, o->bf16) != 0) return -1;
    printf("%s: exported %s as a Hugging Face folder (%s)\n", o->out, o->pos,
           o->bf16 ? "bf16" : "f32");
    return 0;
}

int cmd_export(int argc, char **argv)
{
    return run(argc, argv, "POS dtype", "MODEL.h5 and -o", export_usage, export);
}

static void export_adapter_usage(FILE *out)
{
    fprintf(out, "usage: weft export-adapter ADAPTER.h5 -o PEFT_DIR [--dtype f32|bf16]\n"
                 "         [--base-model NAME]\n"
                 "Writes adapter_config.json and adapter_model.safetensors, as PEFT saves them.\n");
}

static int export_adapter(const opts_t *o)
{
    if (peft_export(o->pos, o->out, o->bf16, o->base) != 0) return -1;
    printf("%s: exported %s as a PEFT adapter (%s)\n", o->out, o->pos, o->bf16 ? "bf16" : "f32");
    return 0;
}

int cmd_export_adapter(int argc, char **argv)
{
    return run(argc, argv, "POS dtype base", "ADAPTER.h5 and -o", export_adapter_usage,
               export_adapter);
}

static void merge_usage(FILE *out)
{
    fprintf(out, "usage: weft merge --model MODEL.h5 --adapter ADAPTER -o MERGED.h5\n"
                 "ADAPTER is a weft-adapter file or a PEFT folder; MERGED.h5 is the model with\n"
                 "scaling·B·A added to every targeted weight.\n");
}

static int merge(const opts_t *o)
{
    if (peft_merge(o->model, o->adapter, o->out) != 0) return -1;
    printf("%s: %s with %s folded in\n", o->out, o->model, o->adapter);
    return 0;
}

int cmd_merge(int argc, char **argv)
{
    return run(argc, argv, "model adapter", "--model, --adapter and -o", merge_usage, merge);
}
