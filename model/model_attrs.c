/* model_attrs.c: a weft-model file's root attributes (see model_attrs.h). */
#include "model/model_attrs.h"
#include "common/h5util.h"
#include "common/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int read_int(hid_t f, const char *name, int64_t lo, int64_t *v)
{
    if (h5_attr_read_i64(f, name, v) < 0) return -1;
    if (*v < lo || *v > (1 << 30))
        return weft_error("attribute %s = %lld is out of range (%lld..2^30)", name, (long long)*v,
                          (long long)lo);
    return 0;
}

static int read_pos(hid_t f, const char *name, double *v)
{
    if (h5_attr_read_f64(f, name, v) < 0) return -1;
    if (!isfinite(*v) || *v <= 0)
        return weft_error("attribute %s = %g: it must be a positive number", name, *v);
    return 0;
}

static int read_llama(hid_t f, model_attrs_t *a)
{
    if (read_int(f, "n_kv_head", 1, &a->n_kv_head) < 0 ||
        read_int(f, "head_dim", 1, &a->head_dim) < 0 ||
        read_int(f, "n_inner", 1, &a->n_inner) < 0 ||
        read_pos(f, "rms_norm_eps", &a->rms_norm_eps) < 0 ||
        read_pos(f, "rope_theta", &a->rope_theta) < 0 ||
        read_int(f, "tie_word_embeddings", 0, &a->tie_word_embeddings) < 0)
        return -1;
    if (a->tie_word_embeddings > 1)
        return weft_error("attribute tie_word_embeddings = %lld: it must be 0 or 1",
                          (long long)a->tie_word_embeddings);
    if (h5_attr_exists(f, "rope_scaling_type") > 0) {
        if (h5_attr_read_str(f, "rope_scaling_type", a->rope_scaling_type,
                             sizeof a->rope_scaling_type) < 0)
            return -1;
        int llama3 = !strcmp(a->rope_scaling_type, "llama3");
        if (!llama3 && strcmp(a->rope_scaling_type, "linear"))
            return weft_error("rope_scaling_type \"%s\" is not supported: use linear or llama3",
                              a->rope_scaling_type);
        if (read_pos(f, "rope_scaling_factor", &a->rope_scaling_factor) < 0) return -1;
        if (llama3 &&
            (read_pos(f, "rope_scaling_low_freq_factor", &a->rope_scaling_low_freq_factor) < 0 ||
             read_pos(f, "rope_scaling_high_freq_factor", &a->rope_scaling_high_freq_factor) < 0 ||
             read_int(f, "rope_scaling_original_max_position_embeddings", 1,
                      &a->rope_scaling_original_max_position_embeddings) < 0))
            return -1;
    }
    if (h5_attr_exists(f, "sliding_window") > 0 &&
        read_int(f, "sliding_window", 1, &a->sliding_window) < 0)
        return -1;
    if (h5_attr_exists(f, "hf_architecture") > 0 &&
        h5_attr_read_str(f, "hf_architecture", a->hf_architecture, sizeof a->hf_architecture) < 0)
        return -1;
    return 0;
}

int model_attrs_read(hid_t f, model_attrs_t *a)
{
    char format[64];
    memset(a, 0, sizeof *a);
    if (h5_attr_read_str(f, "format", format, sizeof format) < 0 || strcmp(format, "weft-model"))
        return weft_error("not a weft-model file (root attribute format is not \"weft-model\")");
    if (h5_attr_read_i64(f, "version", &a->version) < 0) return -1;
    if (a->version != 1 && a->version != 2)
        return weft_error("weft-model version %lld is not supported (this weft reads versions 1 "
                          "and 2)",
                          (long long)a->version);
    if (h5_attr_read_str(f, "arch", a->arch, sizeof a->arch) < 0) return -1;
    int llama = !strcmp(a->arch, "llama");
    if (strcmp(a->arch, "gpt2") && !(llama && a->version >= 2))
        return weft_error("arch \"%s\" is not supported in a version %lld file (\"gpt2\", or "
                          "\"llama\" from version 2)",
                          a->arch, (long long)a->version);
    static const char *names[5] = {"n_layer", "n_head", "n_embd", "vocab_size", "n_ctx"};
    int64_t *dst[5] = {&a->n_layer, &a->n_head, &a->n_embd, &a->vocab_size, &a->n_ctx};
    for (int i = 0; i < 5; i++)
        if (read_int(f, names[i], 1, dst[i]) < 0) return -1;
    return llama ? read_llama(f, a) : 0;
}

int model_attrs_write(hid_t f, const model_attrs_t *a)
{
    if (h5_attr_write_str(f, "format", "weft-model") < 0 ||
        h5_attr_write_i64(f, "version", a->version) < 0 ||
        h5_attr_write_str(f, "arch", a->arch) < 0 ||
        h5_attr_write_i64(f, "n_layer", a->n_layer) < 0 ||
        h5_attr_write_i64(f, "n_head", a->n_head) < 0 ||
        h5_attr_write_i64(f, "n_embd", a->n_embd) < 0 ||
        h5_attr_write_i64(f, "vocab_size", a->vocab_size) < 0 ||
        h5_attr_write_i64(f, "n_ctx", a->n_ctx) < 0)
        return -1;
    if (strcmp(a->arch, "llama")) return 0;
    if (h5_attr_write_i64(f, "n_kv_head", a->n_kv_head) < 0 ||
        h5_attr_write_i64(f, "head_dim", a->head_dim) < 0 ||
        h5_attr_write_i64(f, "n_inner", a->n_inner) < 0 ||
        h5_attr_write_f64(f, "rms_norm_eps", a->rms_norm_eps) < 0 ||
        h5_attr_write_f64(f, "rope_theta", a->rope_theta) < 0 ||
        h5_attr_write_i64(f, "tie_word_embeddings", a->tie_word_embeddings) < 0)
        return -1;
    if (a->rope_scaling_type[0] &&
        (h5_attr_write_str(f, "rope_scaling_type", a->rope_scaling_type) < 0 ||
         h5_attr_write_f64(f, "rope_scaling_factor", a->rope_scaling_factor) < 0))
        return -1;
    if (!strcmp(a->rope_scaling_type, "llama3") &&
        (h5_attr_write_f64(f, "rope_scaling_low_freq_factor", a->rope_scaling_low_freq_factor) <
             0 ||
         h5_attr_write_f64(f, "rope_scaling_high_freq_factor", a->rope_scaling_high_freq_factor) <
             0 ||
         h5_attr_write_i64(f, "rope_scaling_original_max_position_embeddings",
                           a->rope_scaling_original_max_position_embeddings) < 0))
        return -1;
    if (a->sliding_window && h5_attr_write_i64(f, "sliding_window", a->sliding_window) < 0)
        return -1;
    if (a->hf_architecture[0] && h5_attr_write_str(f, "hf_architecture", a->hf_architecture) < 0)
        return -1;
    return 0;
}
