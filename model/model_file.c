/* model_file.c: weft-model HDF5 load and save (see model_file.h). Every
 * failure is one line naming the file and what to do about it. */
#include "model/model_file.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "model/tok_h5.h"
#include "model/model_attrs.h"

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

static const char *rope_names[] = {"", "linear", "llama3"};

/* The engine's config from the file's root attributes (model/model_attrs.c
 * reads and range-checks them), and the biases from the datasets present in
 * layer 0. */
static int read_llama(hid_t f, const model_attrs_t *a, gpt2_config_t *cfg)
{
    llama_config_t *x = &cfg->llama;
    x->n_kv_head = (int)a->n_kv_head;
    x->head_dim = (int)a->head_dim;
    x->n_inner = (int)a->n_inner;
    x->tie_word_embeddings = (int)a->tie_word_embeddings;
    x->rms_norm_eps = (float)a->rms_norm_eps;
    x->rope_theta = (float)a->rope_theta;
    x->rope_type = ROPE_DEFAULT;
    for (int i = 1; i < 3; i++)
        if (!strcmp(a->rope_scaling_type, rope_names[i])) x->rope_type = (rope_type_t)i;
    x->rope_factor = (float)a->rope_scaling_factor;
    x->rope_low_freq_factor = (float)a->rope_scaling_low_freq_factor;
    x->rope_high_freq_factor = (float)a->rope_scaling_high_freq_factor;
    x->rope_original_ctx = (int)a->rope_scaling_original_max_position_embeddings;
    x->sliding_window = (int)a->sliding_window;
    snprintf(x->hf_architecture, sizeof x->hf_architecture, "%s", a->hf_architecture);
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

int model_file_read_config(hid_t f, gpt2_config_t *cfg, char *tokenizer, size_t toksize)
{
    model_attrs_t a;
    char tok[64];
    if (model_attrs_read(f, &a) < 0) return -1;
    model_arch_t arch = strcmp(a.arch, "llama") ? ARCH_GPT2 : ARCH_LLAMA;
    *cfg = (gpt2_config_t){
        (int)a.n_layer, (int)a.n_head, (int)a.n_embd, (int)a.vocab_size, (int)a.n_ctx, arch, {0}};
    if (arch == ARCH_LLAMA && read_llama(f, &a, cfg) < 0) return -1;
    if (gpt2_config_check(cfg) < 0) return -1;
    if (h5_attr_read_str(f, "tokenizer", tok, sizeof tok) < 0) return -1;
    /* "none": a model imported without tokenizer files; it runs on token
     * ids (weft grad) and on shards that say "none" too. */
    if (strcmp(tok, "byte") && strcmp(tok, "gpt2") && strcmp(tok, TOK_KIND_BPE) &&
        strcmp(tok, "none"))
        return weft_error("tokenizer \"%s\" is not supported (\"byte\", \"gpt2\", \"bpe\" or "
                          "\"none\")",
                          tok);
    if (tokenizer) snprintf(tokenizer, toksize, "%s", tok);
    return 0;
}

int model_file_config(const char *path, gpt2_config_t *cfg, char *tokenizer, size_t toksize)
{
    hid_t f = open_model(path);
    if (f < 0) return -1;
    int rc = model_file_read_config(f, cfg, tokenizer, toksize);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}

#define TENSOR_PATH_MAX 80

/* Where tensor i of model lies in a model file: its dataset's path and shape. */
static const gpt2_tensor_t *tensor_place(const gpt2_t *model, size_t i, char path[TENSOR_PATH_MAX],
                                         hsize_t dims[2])
{
    const gpt2_tensor_t *t = &model->tensors[i];
    snprintf(path, TENSOR_PATH_MAX, "/%s", t->name);
    dims[0] = t->shape[0];
    dims[1] = t->shape[1];
    return t;
}

int model_file_read_tensors(hid_t file, const gpt2_t *model, float *buf)
{
    char path[TENSOR_PATH_MAX];
    hsize_t dims[2];
    for (size_t i = 0; i < model->ntensors; i++) {
        const gpt2_tensor_t *t = tensor_place(model, i, path, dims);
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
    if (model_file_read_config(f, &cfg, tokenizer, toksize) == 0) {
        model = gpt2_new(&cfg);
        if (model && model_file_read_tensors(f, model, model->params) < 0) gpt2_destroy(&model);
    }
    H5Fclose(f);
    if (!model) weft_error_prefix("%s", path);
    return model;
}

int model_file_write_tensors(hid_t file, const gpt2_t *model, const float *buf)
{
    char path[TENSOR_PATH_MAX];
    hsize_t dims[2];
    for (size_t i = 0; i < model->ntensors; i++) {
        const gpt2_tensor_t *t = tensor_place(model, i, path, dims);
        if (h5_write_f32(file, path, t->ndim, dims, buf + t->offset) < 0) return -1;
    }
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
    const llama_config_t *x = &c->llama;
    int llama = c->arch == ARCH_LLAMA;
    model_attrs_t a = {.version = llama ? 2 : 1,
                       .n_layer = c->n_layer,
                       .n_head = c->n_head,
                       .n_embd = c->n_embd,
                       .vocab_size = c->vocab_size,
                       .n_ctx = c->n_ctx};
    snprintf(a.arch, sizeof a.arch, "%s", llama ? "llama" : "gpt2");
    if (llama) {
        a.n_kv_head = x->n_kv_head;
        a.head_dim = x->head_dim;
        a.n_inner = x->n_inner;
        a.tie_word_embeddings = x->tie_word_embeddings;
        a.rms_norm_eps = x->rms_norm_eps;
        a.rope_theta = x->rope_theta;
        snprintf(a.rope_scaling_type, sizeof a.rope_scaling_type, "%s", rope_names[x->rope_type]);
        a.rope_scaling_factor = x->rope_factor;
        a.rope_scaling_low_freq_factor = x->rope_low_freq_factor;
        a.rope_scaling_high_freq_factor = x->rope_high_freq_factor;
        a.rope_scaling_original_max_position_embeddings = x->rope_original_ctx;
        a.sliding_window = x->sliding_window;
        snprintf(a.hf_architecture, sizeof a.hf_architecture, "%s", x->hf_architecture);
    }
    if (model_attrs_write(f, &a) < 0 ||
        (tok ? tok_h5_write(f, tok) : h5_attr_write_str(f, "tokenizer", tokenizer)) < 0)
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
