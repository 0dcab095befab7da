/* plan.c: the backbone's config from its weft-model file (read as the worker
 * reads it), parameter counts from the engine's table, memory estimates per
 * rank, and existence/format checks of the data and adapter files a spec
 * names. */
#include "jobs/plan.h"

#include "common/h5util.h"
#include "common/log.h"
#include "model/model_file.h"
#include "model/modules.h"
#include "shards/shardset.h"

#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens an HDF5 file read-only after checking it exists; -1 with an error. */
static hid_t open_h5(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        weft_error("%s %s: file not found", what, path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        weft_error("%s %s: not a regular file", what, path);
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        weft_error("%s %s: not an HDF5 file", what, path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) weft_error("%s %s: cannot open as HDF5", what, path);
    return f;
}

static int check_format(hid_t f, const char *path, const char *what, const char *want)
{
    char fmt[64];
    if (h5_attr_read_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, want))
        return weft_error("%s %s: not a %s file (root attribute format should be \"%s\")", what,
                          path, want, want);
    return 0;
}

int plan_model_read(const char *path, plan_model_t *m)
{
    h5_quiet();
    memset(m, 0, sizeof *m);
    hid_t f = open_h5(path, "model");
    if (f < 0) return -1;
    int rc = model_file_read_config(f, &m->cfg, m->tokenizer, sizeof m->tokenizer);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("model %s", path) : 0;
}

int64_t plan_model_params(const plan_model_t *m)
{
    return (int64_t)gpt2_nparams(&m->cfg);
}

/* The modules a targets set names on model m (all-linear: all it has). */
static unsigned module_set(const plan_model_t *m, unsigned targets)
{
    unsigned have = modules_of(m->cfg.arch);
    return targets & MODULES_ALL_LINEAR ? have : targets & have;
}

int64_t plan_adapter_params(const plan_model_t *m, const spec_lora_t *l)
{
    unsigned t = module_set(m, l->targets);
    int64_t per_layer = 0;
    for (int k = 0; k < LORA_NMODULES; k++) {
        int in, out;
        if ((t >> k) & 1 && gpt2_module_dims(&m->cfg, k, &in, &out) == 0)
            per_layer += (int64_t)l->r * (in + out);
    }
    return per_layer * m->cfg.n_layer;
}

void plan_memory(const spec_t *s, const plan_model_t *m, plan_memory_t *o)
{
    memset(o, 0, sizeof *o);
    double N = (double)plan_model_params(m);
    const gpt2_config_t *c = &m->cfg;
    double C = c->n_embd, L = c->n_layer, NH = c->n_head, V = c->vocab_size;
    double T = s->train.seq_len;
    int64_t per = (int64_t)s->resources.ranks * s->train.grad_accum;
    /* activation floats per sequence, llm.c's layout: per layer 18C (ln, qkv,
     * attention out, projections, residuals, fc, gelu) + 4 (ln statistics)
     * + 2*NH*T (scores before and after softmax); then 2C + 2V + 3 for the
     * final norm, logits, probabilities and losses. */
    double per_seq = T * (L * (18 * C + 4 + 2 * NH * T) + 2 * C + 2 * V + 3);
    if (c->arch == ARCH_LLAMA) {
        /* engine/llama.c: per layer 4C (norms, residuals) + 2 QD (q, attention
         * out) + 2 KD + 2 I (gate, up) + 2 (norm statistics) + NH*T
         * probabilities; then the final norm, logits and the whole-model
         * scratch of one layer's width */
        double QD = (double)c->n_head * c->llama.head_dim;
        double KD = (double)c->llama.n_kv_head * c->llama.head_dim, I = c->llama.n_inner;
        per_seq =
            T * (L * (4 * C + 2 * QD + 2 * KD + 2 * I + 2 + NH * T) + 4 * C + 2 * V + 3 * I + 3);
    }
    o->weights = 4 * N;
    if (s->mode == SPEC_FULL) {
        o->grads = 4 * N;
        o->optimizer = 8 * N;
    }
    for (int i = 0; i < s->ntenants; i++) {
        const spec_tenant_t *t = &s->tenants[i];
        int64_t rows = t->train.batch_size / per;
        o->rows += rows;
        if (s->mode == SPEC_LORA) {
            double P = (double)plan_adapter_params(m, &t->lora);
            o->adapters += 4 * P;
            o->grads += 4 * P;
            o->optimizer += 8 * P;
            /* x*A^T per targeted module, and the dropout-masked input */
            int modules = __builtin_popcount(module_set(m, t->lora.targets));
            o->activations += 2.0 * 4 * (double)rows * T * L * modules *
                              (t->lora.r + (t->lora.dropout > 0 ? 4 * C : 0));
        }
    }
    /* forward activations and an equal buffer of their gradients */
    o->activations += 2.0 * 4 * (double)o->rows * per_seq;
    o->total = o->weights + o->grads + o->optimizer + o->adapters + o->activations;
}

int plan_check_data(const char *path, spec_data_kind_t kind, const plan_model_t *m,
                    int64_t *train_tokens)
{
    *train_tokens = 0;
    struct stat st;
    if (kind != SPEC_DATA_SHARDS) {
        if (stat(path, &st) < 0) return weft_error("data %s: file not found", path);
        if (!S_ISREG(st.st_mode)) return weft_error("data %s: not a regular file", path);
        return 0;
    }
    h5_quiet();
    hid_t f = open_h5(path, "data");
    if (f < 0) return -1;
    int rc = check_format(f, path, "data", "weft-shards");
    int64_t vocab = 0;
    if (!rc && h5_attr_read_i64(f, "vocab_size", &vocab))
        rc = weft_error("data %s: root attribute vocab_size missing", path);
    if (!rc && m && vocab > m->cfg.vocab_size)
        rc = weft_error("data %s: vocabulary of %lld tokens does not fit the model's %d", path,
                        (long long)vocab, m->cfg.vocab_size);
    int rank;
    hsize_t dims[8];
    if (!rc && h5_dataset_shape(f, "/train/tokens", &rank, dims) == 0 && rank == 1)
        *train_tokens = (int64_t)dims[0];
    H5Fclose(f);
    return rc;
}

#define SCAN_BLOCK (1 << 20) /* tokens per read when scanning */

/* Every token of a split below vocab. */
static int scan_split(shardset_t *ss, shardset_split_t split, int vocab, int32_t *buf)
{
    int64_t n = shardset_tokens(ss, split);
    for (int64_t p = 0; p < n; p += SCAN_BLOCK) {
        int64_t k = n - p < SCAN_BLOCK ? n - p : SCAN_BLOCK;
        if (shardset_read(ss, split, p, k, buf) < 0) return -1;
        for (int64_t i = 0; i < k; i++)
            if (buf[i] < 0 || buf[i] >= vocab)
                return weft_error("data %s: %s token %lld is %d, outside the vocabulary of %d; "
                                  "shard the data with the model's tokenizer",
                                  shardset_path(ss), split == SHARDSET_TRAIN ? "train" : "val",
                                  (long long)(p + i), (int)buf[i], vocab);
    }
    return 0;
}

int plan_check_unit_data(const spec_t *u, const plan_model_t *m, int scan)
{
    const char *path = u->tenants[0].data;
    spec_data_kind_t kind = u->tenants[0].data_kind;
    const spec_train_t *t = &u->tenants[0].train;
    int ranks = u->resources.ranks, T = t->seq_len;
    struct stat st;
    if (stat(path, &st) < 0) return weft_error("data %s: file not found", path);
    if (!S_ISREG(st.st_mode)) return weft_error("data %s: not a regular file; give a file", path);
    if (kind != SPEC_DATA_SHARDS) return 0;
    h5_quiet();
    shardset_t *ss = shardset_new(path);
    if (!ss) return weft_error_prefix("data");
    int rc = 0;
    if (m && m->tokenizer[0] && strcmp(shardset_tokenizer(ss), m->tokenizer))
        rc = weft_error("data %s: uses the %s tokenizer but the model uses %s; shard it with the "
                        "model's tokenizer",
                        path, shardset_tokenizer(ss), m->tokenizer);
    if (!rc && m && shardset_vocab_size(ss) > m->cfg.vocab_size)
        rc = weft_error("data %s: vocabulary of %d tokens does not fit the model's %d", path,
                        shardset_vocab_size(ss), m->cfg.vocab_size);
    if (!rc && shardset_shards(ss) < ranks)
        rc = weft_error("data %s: %lld shard%s for %d ranks; re-shard it with --shards %d (or a "
                        "multiple)",
                        path, (long long)shardset_shards(ss), shardset_shards(ss) == 1 ? "" : "s",
                        ranks, ranks);
    for (int r = 0; !rc && r < ranks; r++)
        if (shardset_select(ss, r, ranks, T) < 0) rc = -1;
    if (!rc && shardset_val_windows(ss, T) < 1)
        rc = weft_error("data %s: /val holds %lld tokens, not one window of seq_len+1 = %d; "
                        "shard it with a larger --val-fraction (e.g. 0.1)",
                        path, (long long)shardset_tokens(ss, SHARDSET_VAL), T + 1);
    if (!rc && scan) {
        int vocab = m && m->cfg.vocab_size < shardset_vocab_size(ss) ? m->cfg.vocab_size
                                                                     : shardset_vocab_size(ss);
        int32_t *buf = malloc(SCAN_BLOCK * sizeof *buf);
        rc = buf ? 0 : weft_error("out of memory");
        for (int split = 0; !rc && split < 2; split++)
            rc = scan_split(ss, (shardset_split_t)split, vocab, buf);
        free(buf);
    }
    shardset_destroy(&ss);
    return rc;
}

/* Whether an adapter's resolved targets (its `targets` attribute) are what
 * the tenant's set asks for: all-linear asks for every module of the
 * backbone's architecture (of either, when m is NULL). */
static int targets_agree(unsigned have, unsigned want, const plan_model_t *m)
{
    if (have == want) return 1;
    if (!(want & MODULES_ALL_LINEAR)) return 0;
    if (m) return have == modules_of(m->cfg.arch);
    return have == MODULES_GPT2 || have == MODULES_LLAMA;
}

int plan_check_adapter(const char *path, const spec_lora_t *l, const plan_model_t *m)
{
    /* A PEFT folder: its settings and shapes are checked against the
     * backbone when the worker loads it. */
    struct stat st;
    char cfg[PATH_MAX];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (snprintf(cfg, sizeof cfg, "%s/adapter_config.json", path) < (int)sizeof cfg &&
            access(cfg, R_OK) == 0)
            return 0;
        return weft_error("init_adapter %s: a folder without adapter_config.json: give a "
                          "weft-adapter file or a PEFT adapter folder",
                          path);
    }
    h5_quiet();
    hid_t f = open_h5(path, "init_adapter");
    if (f < 0) return -1;
    int rc = check_format(f, path, "init_adapter", "weft-adapter");
    int64_t r = 0, rs = 0;
    double alpha = 0;
    char targets[128], want[128];
    unsigned have = 0;
    modules_format(l->targets, want, sizeof want);
    if (!rc && (h5_attr_read_i64(f, "r", &r) || h5_attr_read_f64(f, "alpha", &alpha) ||
                h5_attr_read_i64(f, "use_rslora", &rs) ||
                h5_attr_read_str(f, "targets", targets, sizeof targets)))
        rc = weft_error("init_adapter %s: %s", path, weft_last_error());
    if (!rc && r != l->r)
        rc = weft_error("init_adapter %s: has r = %lld but the tenant trains r = %d; set r = "
                        "%lld or start a fresh adapter",
                        path, (long long)r, l->r, (long long)r);
    if (!rc && alpha != l->alpha)
        rc = weft_error("init_adapter %s: has alpha = %g but the tenant trains alpha = %g", path,
                        alpha, l->alpha);
    if (!rc && (rs != 0) != l->rslora)
        rc = weft_error("init_adapter %s: has use_rslora = %lld but the tenant has rslora = %s",
                        path, (long long)rs, l->rslora ? "true" : "false");
    if (!rc && (modules_parse(targets, &have) < 0 || !targets_agree(have, l->targets, m)))
        rc = weft_error("init_adapter %s: targets \"%s\" but the tenant trains \"%s\"", path,
                        targets, want);
    H5Fclose(f);
    return rc;
}

int64_t plan_steps(const spec_train_t *t, int64_t train_tokens)
{
    if (t->steps > 0) return t->steps;
    if (train_tokens <= 0) return 0;
    double per_step = (double)t->batch_size * t->seq_len;
    return (int64_t)ceil(t->epochs * (double)train_tokens / per_step);
}
