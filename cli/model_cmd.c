/* model_cmd.c: `weft init-model` (a freshly initialised weft-model file) and
 * `weft grad` (loss and gradients of one batch: the engine's probe, and the
 * tool the reference test and a puzzled user reach for). */
#include "model/adapter.h"
#include "common/fsutil.h"
#include "engine/gpt2.h"
#include "common/h5util.h"
#include "common/log.h"
#include "model/model_file.h"
#include "model/tokenizer.h"
#include "common/weft_cmds.h"
#include "engine/par.h"
#include "cli/device_opt.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses a whole number in [lo, hi] for option opt. */
static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return weft_error("%s: '%s' is not a whole number in [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return 0;
}

/* The value after argv[*i], or an error naming the option. */
static const char *option_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        weft_error("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static void init_usage(FILE *out)
{
    fprintf(out,
            "usage: weft init-model [--arch gpt2|llama] --preset NAME [--layers L] [--heads H]\n"
            "         [--embd C] [--vocab V] [--ctx T] [--seed N] [--tokenizer byte|gpt2|PATH]\n"
            "         [LLAMA OPTIONS] -o MODEL.h5\n"
            "--tokenizer PATH (a tokenizer.json, a folder holding one or vocab.json +\n"
            "merges.txt, or a model file carrying one) is carried in MODEL.h5; --vocab\n"
            "defaults to its vocabulary size.\n"
            "presets: tiny, small, gpt2 (gpt2); llama-tiny, smollm2-135m, qwen2.5-0.5b (llama)\n"
            "llama options: --kv-heads KV --head-dim HD --inner I --theta X --eps X --tie 0|1\n"
            "         --bias none|q,k,v,o,gate,up,down (projections with a bias)\n"
            "         --rope-scaling none|linear:FACTOR|llama3:FACTOR:LOW:HIGH:ORIGINAL_CTX\n");
}

/* Parses a number for option opt. */
static int parse_float(const char *opt, const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0.0) || v > 1e30)
        return weft_error("%s: '%s' is not a positive number", opt, s);
    *out = (float)v;
    return 0;
}

/* --bias: comma-separated projection names, or none. */
static int parse_bias(const char *s, unsigned *mask)
{
    static const char *names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    *mask = 0;
    if (!strcmp(s, "none")) return 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int j = 0; j < 7; j++)
            if (!strcmp(t, names[j])) found = j;
        if (found < 0)
            return weft_error("--bias: '%s' is not a projection (q, k, v, o, gate, up, down or "
                              "none)",
                              t);
        *mask |= 1u << found;
    }
    return 0;
}

/* --rope-scaling none | linear:F | llama3:F:LOW:HIGH:ORIG */
static int parse_rope(const char *s, llama_config_t *x)
{
    double f = 0, lo = 0, hi = 0;
    int orig = 0, n = 0;
    if (!strcmp(s, "none")) {
        x->rope_type = ROPE_DEFAULT;
        return 0;
    }
    if (sscanf(s, "linear:%lf%n", &f, &n) == 1 && !s[n]) {
        x->rope_type = ROPE_LINEAR;
    } else if (sscanf(s, "llama3:%lf:%lf:%lf:%d%n", &f, &lo, &hi, &orig, &n) == 4 && !s[n]) {
        x->rope_type = ROPE_LLAMA3;
    } else {
        return weft_error("--rope-scaling '%s': use none, linear:FACTOR or "
                          "llama3:FACTOR:LOW:HIGH:ORIGINAL_CTX",
                          s);
    }
    x->rope_factor = (float)f;
    x->rope_low_freq_factor = (float)lo;
    x->rope_high_freq_factor = (float)hi;
    x->rope_original_ctx = orig;
    return 0;
}

int cmd_init_model(int argc, char **argv)
{
    const char *preset = NULL, *out = NULL, *tokenizer = NULL, *arch = NULL;
    const char *bias = NULL, *rope = NULL;
    long seed = 1, sizes[5] = {0, 0, 0, 0, 0}, lsizes[4] = {0, 0, 0, -1};
    float theta = 0.0f, eps = 0.0f;
    static const char *lsize_opts[4] = {"--kv-heads", "--head-dim", "--inner", "--tie"};
    static const char *size_opts[5] = {"--layers", "--heads", "--embd", "--vocab", "--ctx"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            init_usage(stdout);
            return 0;
        }
        if (!(v = option_value(argc, argv, &i))) goto fail;
        int known = 1;
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--tokenizer")) tokenizer = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--bias")) bias = v;
        else if (!strcmp(a, "--rope-scaling")) rope = v;
        else if (!strcmp(a, "--theta")) {
            if (parse_float(a, v, &theta) < 0) goto fail;
        } else if (!strcmp(a, "--eps")) {
            if (parse_float(a, v, &eps) < 0) goto fail;
        } else if (!strcmp(a, "--seed")) {
            if (parse_long(a, v, 0, 0x7fffffffL, &seed) < 0) goto fail;
        } else {
            known = 0;
            for (int k = 0; k < 5; k++)
                if (!strcmp(a, size_opts[k])) {
                    if (parse_long(a, v, 1, 1L << 30, &sizes[k]) < 0) goto fail;
                    known = 1;
                }
            for (int k = 0; k < 4; k++)
                if (!strcmp(a, lsize_opts[k])) {
                    if (parse_long(a, v, k == 3 ? 0 : 1, k == 3 ? 1 : 1L << 30, &lsizes[k]) < 0)
                        goto fail;
                    known = 1;
                }
        }
        if (!known) {
            weft_error("unknown option '%s'; see weft init-model --help", a);
            goto fail;
        }
    }
    if (!preset || !out) {
        init_usage(stderr);
        weft_error("--preset and -o are required");
        goto fail;
    }
    gpt2_config_t cfg;
    if (gpt2_config_preset(preset, &cfg) < 0) goto fail;
    int *fields[5] = {&cfg.n_layer, &cfg.n_head, &cfg.n_embd, &cfg.vocab_size, &cfg.n_ctx};
    for (int k = 0; k < 5; k++)
        if (sizes[k]) *fields[k] = (int)sizes[k];
    const char *arch_name = cfg.arch == ARCH_LLAMA ? "llama" : "gpt2";
    if (arch && strcmp(arch, arch_name)) {
        if (strcmp(arch, "llama") && strcmp(arch, "gpt2"))
            weft_error("--arch '%s': use gpt2 or llama", arch);
        else
            weft_error("--arch %s does not match preset '%s' (a %s preset)", arch, preset,
                       arch_name);
        goto fail;
    }
    if (cfg.arch == ARCH_LLAMA) {
        llama_config_t *x = &cfg.llama;
        /* a new width or head count keeps Hugging Face's default head_dim = C/H */
        if ((sizes[1] || sizes[2]) && cfg.n_embd % cfg.n_head == 0)
            x->head_dim = cfg.n_embd / cfg.n_head;
        int *lfields[4] = {&x->n_kv_head, &x->head_dim, &x->n_inner, &x->tie_word_embeddings};
        for (int k = 0; k < 4; k++)
            if (lsizes[k] > (k == 3 ? -1 : 0)) *lfields[k] = (int)lsizes[k];
        if (theta > 0.0f) x->rope_theta = theta;
        if (eps > 0.0f) x->rms_norm_eps = eps;
        if ((bias && parse_bias(bias, &x->bias) < 0) || (rope && parse_rope(rope, x) < 0))
            goto fail;
        /* The Hugging Face class with these biases, recorded so that weft
         * export writes it back ("" when no class has them). */
        unsigned qkv = x->bias & 7u, o = x->bias >> 3 & 1u, mlp = x->bias >> 4;
        const char *hf = qkv == 7u && !o && !mlp ? "Qwen2ForCausalLM"
                         : ((!qkv && !o) || (qkv == 7u && o)) && (!mlp || mlp == 7u)
                             ? "LlamaForCausalLM"
                             : "";
        snprintf(x->hf_architecture, sizeof x->hf_architecture, "%s", hf);
    } else if (bias || rope || theta > 0.0f || eps > 0.0f || lsizes[0] || lsizes[1] ||
               lsizes[2] || lsizes[3] >= 0) {
        weft_error("the llama options (--kv-heads, --head-dim, --inner, --theta, --eps, --tie, "
                   "--bias, --rope-scaling) do not apply to preset '%s' (gpt2)",
                   preset);
        goto fail;
    }
    tok_t *tok = NULL;
    if (!tokenizer) tokenizer = cfg.vocab_size == 50257 ? "gpt2" : "byte";
    if (strcmp(tokenizer, "byte") && strcmp(tokenizer, "gpt2")) {
        if (access(tokenizer, F_OK) < 0) {
            weft_error("--tokenizer '%s': no such file or folder; use byte, gpt2 or a tokenizer "
                       "path",
                       tokenizer);
            goto fail;
        }
        if (!(tok = tok_load(tokenizer))) goto fail;
        if (!sizes[3]) cfg.vocab_size = tok_vocab_size(tok);
        tokenizer = "bpe";
    }
    if (!strcmp(tokenizer, "byte") && cfg.vocab_size < 257) {
        weft_error("the byte tokenizer needs vocab_size >= 257 (bytes and end-of-document), "
                   "not %d",
                   cfg.vocab_size);
        goto fail;
    }
    gpt2_t *model = gpt2_new(&cfg);
    if (!model) {
        tok_destroy(&tok);
        goto fail;
    }
    gpt2_init_weights(model, (uint64_t)seed);
    int rc = model_file_save_tok(model, tokenizer, tok, out);
    tok_destroy(&tok);
    if (rc == 0)
        printf("%s: %s L%d H%d C%d V%d T%d, %zu parameters, seed %ld\n", out, arch_name,
               cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.n_ctx, model->nparams,
               seed);
    gpt2_destroy(&model);
    if (rc < 0) goto fail;
    return 0;
fail:
    weft_report();
    return 1;
}

/* ---------------------------------------------------------------------------
 * weft grad */

/* Reads an integer dataset of rank 2 into a malloc'ed int array. */
static int *read_tokens(hid_t f, const char *name, hsize_t dims[2])
{
    int rank;
    hsize_t d[8];
    if (h5_dataset_shape(f, name, &rank, d) < 0) return NULL;
    if (rank != 2 || d[0] < 1 || d[1] < 1 || d[0] * d[1] > (1u << 30)) {
        weft_error("dataset %s must be int32 [B,T] with B, T >= 1", name);
        return NULL;
    }
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t t = H5Dget_type(ds);
    int is_int = H5Tget_class(t) == H5T_INTEGER;
    H5Tclose(t);
    int *buf = is_int ? malloc(d[0] * d[1] * sizeof *buf) : NULL;
    if (!is_int) weft_error("dataset %s must hold integers (int32 token ids)", name);
    else if (!buf) weft_error("out of memory reading %s", name);
    else if (H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        weft_error("cannot read dataset %s", name);
        free(buf);
        buf = NULL;
    }
    H5Dclose(ds);
    dims[0] = d[0];
    dims[1] = d[1];
    return buf;
}

static int read_batch(const char *path, int **inputs, int **targets, int *B, int *T)
{
    if (access(path, R_OK) != 0) return weft_error("%s: cannot read the batch file", path);
    h5_quiet();
    hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)
                                                      : -1;
    if (f < 0) return weft_error("%s: not an HDF5 file (a batch holds /inputs and /targets)", path);
    hsize_t di[2] = {0, 0}, dt[2] = {0, 0};
    *inputs = read_tokens(f, "/inputs", di);
    *targets = *inputs ? read_tokens(f, "/targets", dt) : NULL;
    H5Fclose(f);
    if (*targets && (di[0] != dt[0] || di[1] != dt[1]))
        weft_error("/inputs is [%llu,%llu] but /targets is [%llu,%llu]; they must match",
                   (unsigned long long)di[0], (unsigned long long)di[1],
                   (unsigned long long)dt[0], (unsigned long long)dt[1]);
    else if (*targets) {
        *B = (int)di[0];
        *T = (int)di[1];
        return 0;
    }
    free(*inputs);
    free(*targets);
    *inputs = *targets = NULL;
    return weft_error_prefix("%s", path);
}

/* losses: (B,T) per position, valid: the targets counted; gradients from
 * m->grads (or the pack's). */
static int write_grad_file(const char *path, gpt2_t *m, lora_pack_t *pack, int B, int T,
                           size_t valid, const float *losses, float loss, const float *logits)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return weft_error("%s: path too long", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return weft_error("%s: cannot create the file (does its folder exist?)", tmp);
    hsize_t bt[3] = {(hsize_t)B, (hsize_t)T, (hsize_t)m->cfg.vocab_size};
    int rc = 0;
    if (h5_attr_write_str(f, "format", "weft-grad") < 0 || h5_attr_write_i64(f, "version", 1) < 0 ||
        h5_attr_write_i64(f, "valid_targets", (int64_t)valid) < 0 ||
        h5_write_f32(f, "/loss", 0, NULL, &loss) < 0 ||
        h5_write_f32(f, "/losses", 2, bt, losses) < 0 ||
        (logits && h5_write_f32(f, "/logits", 3, bt, logits) < 0) ||
        (pack ? adapter_write_tensors(f, "", pack, 0, lora_pack_grads(pack))
              : model_file_write_tensors(f, m, m->grads)) < 0)
        rc = -1;
    if (H5Fclose(f) < 0 && rc == 0) rc = weft_error("cannot finish writing");
    if (rc == 0 && weft_fsync_path(tmp) == 0 && weft_rename_durable(tmp, path) == 0) return 0;
    unlink(tmp);
    return weft_error_prefix("%s", path);
}

static void grad_usage(FILE *out)
{
    fprintf(out, "usage: weft grad --model MODEL.h5 [--adapter ADAPTER.h5] --batch BATCH.h5\n"
                 "         -o OUT.h5 [--logits] [--threads N] [--device cpu|cuda]\n"
                 "         [--precision fp32|tf32|bf16]\n"
                 "BATCH.h5 holds /inputs and /targets, int32 [B,T] (target -1 is ignored).\n"
                 "OUT.h5 gets /loss, /losses [B,T], /logits [B,T,V] (with --logits) and the\n"
                 "gradient of the mean loss for every parameter, under the model's names;\n"
                 "with --adapter, the backbone is frozen and OUT.h5 holds the adapter's\n"
                 "gradients under the adapter file's names (/h/<i>/<module>/lora_A, lora_B).\n"
                 "--device cuda runs the CUDA engine on GPU 0 (GPT-2 models, no adapter), in\n"
                 "--precision fp32 unless told.\n");
}

#ifdef WEFT_HAVE_CUDA
/* weft grad on the GPU: the same file from the CUDA engine. */
static int grad_cuda(gpt2_t *m, const char *prec_name, const int *inputs, const int *targets, int B,
                     int T, int with_logits, const char *out, float *loss, size_t *valid)
{
    gpt2_cuda_precision_t prec;
    if (gpt2_cuda_precision_parse(prec_name, &prec) < 0) return -1;
    size_t N = (size_t)B * T, nlogits = N * (size_t)m->cfg.vocab_size;
    float *losses = malloc(N * sizeof *losses);
    float *logits = with_logits ? malloc(nlogits * sizeof *logits) : NULL;
    gpt2_cuda_t *g = NULL;
    int rc = -1;
    if (!losses || (with_logits && !logits) || !gpt2_grads(m))
        weft_error("out of memory");
    else if (!(g = gpt2_cuda_new(m, prec, 0)) || gpt2_cuda_alloc(g, B, T) < 0 ||
             gpt2_cuda_zero_grad(g) < 0)
        ;
    else if (gpt2_cuda_forward(g, inputs, targets, B, T, loss) < 0 ||
             gpt2_cuda_losses(g, losses) < 0 || (logits && gpt2_cuda_logits(g, logits) < 0) ||
             gpt2_cuda_backward(g, NULL) < 0 || gpt2_cuda_get_grads(g, m->grads, m->nparams) < 0)
        ;
    else {
        *valid = gpt2_cuda_valid_targets(g);
        rc = write_grad_file(out, m, NULL, B, T, *valid, losses, *loss, logits);
    }
    gpt2_cuda_destroy(&g);
    free(losses);
    free(logits);
    return rc;
}
#endif

int cmd_grad(int argc, char **argv)
{
    const char *model_path = NULL, *batch_path = NULL, *out = NULL, *adapter_path = NULL;
    const char *precision = "fp32";
    int with_logits = 0, device = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            grad_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--logits")) {
            with_logits = 1;
            continue;
        }
        if (!(v = option_value(argc, argv, &i))) goto fail;
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--batch")) batch_path = v;
        else if (!strcmp(a, "--adapter")) adapter_path = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--device")) {
            if ((device = device_opt_parse(v)) < 0) {
                weft_report();
                return 78;
            }
        } else if (!strcmp(a, "--threads")) {
            if (parse_long(a, v, 1, 1024, &threads) < 0) goto fail;
        } else {
            weft_error("unknown option '%s'; see weft grad --help", a);
            goto fail;
        }
    }
    if (!model_path || !batch_path || !out) {
        grad_usage(stderr);
        weft_error("--model, --batch and -o are required");
        goto fail;
    }
    if (device_opt_check(device, precision, adapter_path != NULL) < 0) {
        weft_report();
        return 78;
    }
    if (threads) par_set_threads((int)threads);
    int *inputs = NULL, *targets = NULL, B = 0, T = 0, rc = -1;
    float *logits = NULL;
    lora_pack_t *pack = NULL;
    gpt2_t *m = model_file_load(model_path, NULL, 0);
    if (m && read_batch(batch_path, &inputs, &targets, &B, &T) == 0 &&
        (!adapter_path ||
         (pack = adapter_attach(m, model_path, adapter_path, (size_t)B * T, NULL)))) {
        float loss;
        size_t nlogits = (size_t)B * T * m->cfg.vocab_size;
#ifdef WEFT_HAVE_CUDA
        size_t valid = 0;
        if (device == 1) {
            if (m->cfg.arch != ARCH_GPT2)
                weft_error("--device cuda: the CUDA engine runs GPT-2 models only; %s is of the "
                           "Llama family",
                           model_path);
            else if ((rc = grad_cuda(m, precision, inputs, targets, B, T, with_logits, out, &loss,
                                     &valid)) == 0)
                printf("loss %.6f over %zu targets; wrote %s\n", (double)loss, valid, out);
        } else
#endif
            if (gpt2_forward(m, inputs, targets, B, T, &loss) < 0)
            weft_error_prefix("%s", batch_path);
        else if (with_logits && !(logits = malloc(nlogits * sizeof *logits)))
            weft_error("out of memory for the logits");
        else {
            /* the backward turns the logits into their gradient: keep a copy */
            if (logits) memcpy(logits, gpt2_logits(m), nlogits * sizeof *logits);
            if (gpt2_backward(m, NULL) == 0)
                rc = write_grad_file(out, m, pack, B, T, gpt2_valid_targets(m), gpt2_losses(m), loss,
                                     logits);
            if (rc == 0)
                printf("loss %.6f over %zu targets; wrote %s\n", (double)loss,
                       gpt2_valid_targets(m), out);
        }
    }
    free(logits);
    free(inputs);
    free(targets);
    gpt2_destroy(&m);
    lora_pack_destroy(&pack);
    if (rc < 0) goto fail;
    return 0;
fail:
    weft_report();
    return 1;
}
