/* model_file.c: weft-model HDF5 load and save (see model_file.h). Every
 * failure is one line naming the file and what to do about it. */
#include "model_file.h"
#include "fsutil.h"
#include "h5util.h"
#include "log.h"
#include "tok_h5.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static hid_t open_model(const char *path)
{
    if (access(path, R_OK) != 0) {
        weft_error("%s: cannot read the model file (missing or not readable): create one with "
                   "'weft init-model'",
                   path);
        return -1;
    }
    h5_quiet();
    if (H5Fis_hdf5(path) <= 0) {
        weft_error("%s: not an HDF5 file, so not a weft-model file", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) weft_error("%s: cannot open the HDF5 file", path);
    return f;
}

static const char *rope_names[] = {"default", "linear", "llama3"};

/* The Llama settings of a version-2 file: root attributes, and the biases
 * from the datasets present in layer 0. */
static int read_llama(hid_t f, gpt2_config_t *cfg)
{
    llama_config_t *x = &cfg->llama;
    static const char *ints[3] = {"n_kv_head", "head_dim", "n_inner"};
    int *dst[3] = {&x->n_kv_head, &x->head_dim, &x->n_inner};
    int64_t v;
    for (int i = 0; i < 3; i++) {
        if (h5_attr_read_i64(f, ints[i], &v) < 0) return -1;
        if (v < 1 || v > (1 << 30))
            return weft_error("attribute %s = %lld is out of range", ints[i], (long long)v);
        *dst[i] = (int)v;
    }
    if (h5_attr_read_i64(f, "tie_word_embeddings", &v) < 0) return -1;
    if (v != 0 && v != 1)
        return weft_error("attribute tie_word_embeddings = %lld: it must be 0 or 1", (long long)v);
    x->tie_word_embeddings = (int)v;
    double d;
    if (h5_attr_read_f64(f, "rms_norm_eps", &d) < 0) return -1;
    x->rms_norm_eps = (float)d;
    if (h5_attr_read_f64(f, "rope_theta", &d) < 0) return -1;
    x->rope_theta = (float)d;
    x->rope_type = ROPE_DEFAULT;
    if (h5_attr_exists(f, "rope_scaling_type") > 0) {
        char type[64];
        if (h5_attr_read_str(f, "rope_scaling_type", type, sizeof type) < 0) return -1;
        int found = -1;
        for (int i = 1; i < 3; i++)
            if (!strcmp(type, rope_names[i])) found = i;
        if (found < 0)
            return weft_error("rope_scaling_type \"%s\" is not supported: use linear or llama3",
                              type);
        x->rope_type = (rope_type_t)found;
        if (h5_attr_read_f64(f, "rope_scaling_factor", &d) < 0) return -1;
        x->rope_factor = (float)d;
        if (found == ROPE_LLAMA3) {
            if (h5_attr_read_f64(f, "rope_scaling_low_freq_factor", &d) < 0) return -1;
            x->rope_low_freq_factor = (float)d;
            if (h5_attr_read_f64(f, "rope_scaling_high_freq_factor", &d) < 0) return -1;
            x->rope_high_freq_factor = (float)d;
            if (h5_attr_read_i64(f, "rope_scaling_original_max_position_embeddings", &v) < 0)
                return -1;
            if (v < 1 || v > (1 << 30))
                return weft_error("attribute rope_scaling_original_max_position_embeddings = "
                                  "%lld is out of range",
                                  (long long)v);
            x->rope_original_ctx = (int)v;
        }
    }
    static const char *proj[7] = {"self_attn/q_proj", "self_attn/k_proj", "self_attn/v_proj",
                                  "self_attn/o_proj", "mlp/gate_proj",    "mlp/up_proj",
                                  "mlp/down_proj"};
    x->bias = 0;
    for (int j = 0; j < 7; j++) {
        char path[96];
        snprintf(path, sizeof path, "/model/layers/0/%s/bias", proj[j]);
        if (h5_path_exists(f, path) > 0) x->bias |= 1u << j;
    }
    return 0;
}

static int read_config(hid_t f, gpt2_config_t *cfg, char *tokenizer, size_t toksize)
{
    char format[64], arch[64], tok[64];
    int64_t version, v[5];
    if (h5_attr_read_str(f, "format", format, sizeof format) < 0 || strcmp(format, MODEL_FORMAT))
        return weft_error("not a weft-model file (root attribute format is not \"%s\")",
                          MODEL_FORMAT);
    if (h5_attr_read_i64(f, "version", &version) < 0) return -1;
    if (version != 1 && version != MODEL_VERSION)
        return weft_error("weft-model version %lld is not supported (this weft reads versions 1 "
                          "and %d)",
                          (long long)version, MODEL_VERSION);
    if (h5_attr_read_str(f, "arch", arch, sizeof arch) < 0) return -1;
    model_arch_t a;
    if (!strcmp(arch, "gpt2"))
        a = ARCH_GPT2;
    else if (!strcmp(arch, "llama") && version >= 2)
        a = ARCH_LLAMA;
    else
        return weft_error("arch \"%s\" is not supported in a version %lld file (\"gpt2\", or "
                          "\"llama\" from version 2)",
                          arch, (long long)version);
    static const char *names[5] = {"n_layer", "n_head", "n_embd", "vocab_size", "n_ctx"};
    for (int i = 0; i < 5; i++) {
        if (h5_attr_read_i64(f, names[i], &v[i]) < 0) return -1;
        if (v[i] < 1 || v[i] > (1 << 30))
            return weft_error("attribute %s = %lld is out of range", names[i], (long long)v[i]);
    }
    *cfg = (gpt2_config_t){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], a, {0}};
    if (a == ARCH_LLAMA && read_llama(f, cfg) < 0) return -1;
    if (gpt2_config_check(cfg) < 0) return -1;
    if (h5_attr_read_str(f, "tokenizer", tok, sizeof tok) < 0) return -1;
    if (strcmp(tok, "byte") && strcmp(tok, "gpt2") && strcmp(tok, TOK_KIND_BPE))
        return weft_error("tokenizer \"%s\" is not supported (\"byte\", \"gpt2\" or \"bpe\")", tok);
    if (tokenizer) snprintf(tokenizer, toksize, "%s", tok);
    return 0;
}

int model_file_config(const char *path, gpt2_config_t *cfg, char *tokenizer, size_t toksize)
{
    hid_t f = open_model(path);
    if (f < 0) return -1;
    int rc = read_config(f, cfg, tokenizer, toksize);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}

static void tensor_dims(const gpt2_tensor_t *t, hsize_t dims[2])
{
    dims[0] = t->shape[0];
    dims[1] = t->shape[1];
}

int model_file_read_tensors(hid_t file, const gpt2_t *model, float *buf)
{
    char path[80];
    for (size_t i = 0; i < model->ntensors; i++) {
        const gpt2_tensor_t *t = &model->tensors[i];
        hsize_t dims[2];
        tensor_dims(t, dims);
        snprintf(path, sizeof path, "/%s", t->name);
        if (h5_path_exists(file, path) && h5_check_f32le(file, path) < 0) return -1;
        if (h5_read_f32(file, path, t->ndim, dims, buf + t->offset) < 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", weft_last_error());
            const gpt2_config_t *c = &model->cfg;
            return weft_error("%s, but the root attributes (n_layer %d, n_head %d, n_embd %d, "
                              "vocab_size %d, n_ctx %d) need it: the file is damaged",
                              why, c->n_layer, c->n_head, c->n_embd, c->vocab_size, c->n_ctx);
        }
        const float *p = buf + t->offset;
        for (size_t j = 0; j < t->numel; j++)
            if (!isfinite(p[j]))
                return weft_error("dataset %s holds a non-finite value (%g at index %zu): the "
                                  "model is damaged",
                                  path, (double)p[j], j);
    }
    return 0;
}

gpt2_t *model_file_load(const char *path, char *tokenizer, size_t toksize)
{
    hid_t f = open_model(path);
    if (f < 0) return NULL;
    gpt2_config_t cfg;
    gpt2_t *model = NULL;
    if (read_config(f, &cfg, tokenizer, toksize) == 0) {
        model = gpt2_new(&cfg);
        if (model && model_file_read_tensors(f, model, model->params) < 0) gpt2_destroy(&model);
    }
    H5Fclose(f);
    if (!model) weft_error_prefix("%s", path);
    return model;
}

int model_file_write_tensors(hid_t file, const gpt2_t *model, const float *buf)
{
    char path[80];
    for (size_t i = 0; i < model->ntensors; i++) {
        const gpt2_tensor_t *t = &model->tensors[i];
        hsize_t dims[2];
        tensor_dims(t, dims);
        snprintf(path, sizeof path, "/%s", t->name);
        if (h5_write_f32(file, path, t->ndim, dims, buf + t->offset) < 0) return -1;
    }
    return 0;
}

/* The Llama root attributes of version 2 (biases are their datasets). */
static int write_llama(hid_t f, const gpt2_config_t *c)
{
    const llama_config_t *x = &c->llama;
    if (h5_attr_write_i64(f, "n_kv_head", x->n_kv_head) < 0 ||
        h5_attr_write_i64(f, "head_dim", x->head_dim) < 0 ||
        h5_attr_write_i64(f, "n_inner", x->n_inner) < 0 ||
        h5_attr_write_f64(f, "rms_norm_eps", x->rms_norm_eps) < 0 ||
        h5_attr_write_f64(f, "rope_theta", x->rope_theta) < 0 ||
        h5_attr_write_i64(f, "tie_word_embeddings", x->tie_word_embeddings) < 0)
        return -1;
    if (x->rope_type == ROPE_DEFAULT) return 0;
    if (h5_attr_write_str(f, "rope_scaling_type", rope_names[x->rope_type]) < 0 ||
        h5_attr_write_f64(f, "rope_scaling_factor", x->rope_factor) < 0)
        return -1;
    if (x->rope_type != ROPE_LLAMA3) return 0;
    if (h5_attr_write_f64(f, "rope_scaling_low_freq_factor", x->rope_low_freq_factor) < 0 ||
        h5_attr_write_f64(f, "rope_scaling_high_freq_factor", x->rope_high_freq_factor) < 0 ||
        h5_attr_write_i64(f, "rope_scaling_original_max_position_embeddings",
                          x->rope_original_ctx) < 0)
        return -1;
    return 0;
}

static int write_model(hid_t f, const gpt2_t *m, const char *tokenizer, const tok_t *tok)
{
    if (!tok && !strcmp(tokenizer, TOK_KIND_BPE))
        return weft_error("a \"bpe\" model file needs its tokenizer's files to carry");
    if (tok && tok_vocab_size(tok) > m->cfg.vocab_size)
        return weft_error("the tokenizer has %d tokens; the model's vocab_size is only %d",
                          tok_vocab_size(tok), m->cfg.vocab_size);
    const gpt2_config_t *c = &m->cfg;
    int llama = c->arch == ARCH_LLAMA;
    if (h5_attr_write_str(f, "format", MODEL_FORMAT) < 0 ||
        h5_attr_write_i64(f, "version", llama ? 2 : 1) < 0 ||
        h5_attr_write_str(f, "arch", llama ? "llama" : "gpt2") < 0 ||
        h5_attr_write_i64(f, "n_layer", c->n_layer) < 0 ||
        h5_attr_write_i64(f, "n_head", c->n_head) < 0 ||
        h5_attr_write_i64(f, "n_embd", c->n_embd) < 0 ||
        h5_attr_write_i64(f, "vocab_size", c->vocab_size) < 0 ||
        h5_attr_write_i64(f, "n_ctx", c->n_ctx) < 0 ||
        (tok ? tok_h5_write(f, tok) : h5_attr_write_str(f, "tokenizer", tokenizer)) < 0 ||
        (llama && write_llama(f, c) < 0))
        return -1;
    return model_file_write_tensors(f, m, m->params);
}

int model_file_save(const gpt2_t *model, const char *tokenizer, const char *path)
{
    return model_file_save_tok(model, tokenizer, NULL, path);
}

int model_file_save_tok(const gpt2_t *model, const char *tokenizer, const tok_t *tok,
                        const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return weft_error("%s: path too long", path);
    h5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return weft_error("%s: cannot create the file (does its folder exist?)", tmp);
    int rc = write_model(f, model, tokenizer, tok);
    if (H5Fclose(f) < 0 && rc == 0) rc = weft_error("%s: cannot finish writing", tmp);
    if (rc == 0 && weft_fsync_path(tmp) < 0) rc = -1;
    if (rc == 0 && weft_rename_durable(tmp, path) < 0) rc = -1;
    if (rc < 0) {
        unlink(tmp);
        return weft_error_prefix("%s", path);
    }
    return 0;
}
