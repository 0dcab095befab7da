/* hf_config.c: config.json <-> weft-model root attributes, and the tensor
 * table shared by import and export, for GPT-2 and the Llama family. */
#include "model/hf.h"
#include "common/h5util.h"
#include "common/log.h"
#include "model/model_attrs.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *architectures[] = {"GPT2LMHeadModel", "LlamaForCausalLM", "Qwen2ForCausalLM",
                                      "MistralForCausalLM"};
static const char *model_types[] = {"gpt2", "llama", "qwen2", "mistral"};

const char *hf_family_architecture(hf_family_t f)
{
    return architectures[f];
}

/* ---- reading config.json ---- */

static int get_int(const json_t *o, const char *key, int64_t dflt, int64_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) {
        if (dflt < 0) return weft_error("config.json: %s is missing", key);
        *v = dflt;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > (1 << 30))
        return weft_error("config.json: %s must be a whole number in [1, 2^30]", key);
    *v = json_integer_value(j);
    return 0;
}

static int get_num(const json_t *o, const char *key, double dflt, double *v)
{
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) {
        if (isnan(dflt)) return weft_error("config.json: %s is missing", key);
        *v = dflt;
        return 0;
    }
    if (!json_is_number(j) || !isfinite(json_number_value(j)) || json_number_value(j) <= 0)
        return weft_error("config.json: %s must be a positive number", key);
    *v = json_number_value(j);
    return 0;
}

static int get_bool(const json_t *o, const char *key, int dflt)
{
    const json_t *j = json_object_get(o, key);
    return json_is_boolean(j) ? json_is_true(j) : dflt;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int read_gpt2(const json_t *o, hf_config_t *c)
{
    if (get_int(o, "n_layer", -1, &c->n_layer) < 0 || get_int(o, "n_head", -1, &c->n_head) < 0 ||
        get_int(o, "n_embd", -1, &c->n_embd) < 0 ||
        get_int(o, "vocab_size", -1, &c->vocab_size) < 0)
        return -1;
    int64_t npos = 0;
    if (get_int(o, "n_positions", 0, &npos) < 0 || (!npos && get_int(o, "n_ctx", -1, &npos) < 0))
        return -1;
    c->n_ctx = npos;
    int64_t inner = 0;
    if (get_int(o, "n_inner", 4 * c->n_embd, &inner) < 0) return -1;
    if (inner != 4 * c->n_embd)
        return weft_error("config.json: n_inner = %lld; weft's GPT-2 has n_inner = 4 x n_embd",
                          (long long)inner);
    const char *act = get_str(o, "activation_function");
    if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
        return weft_error("config.json: activation_function \"%s\"; weft's GPT-2 uses GELU's "
                          "tanh form (gelu_new)",
                          act);
    double eps = 0;
    if (get_num(o, "layer_norm_epsilon", 1e-5, &eps) < 0) return -1;
    if (eps != 1e-5)
        return weft_error("config.json: layer_norm_epsilon = %g; weft's GPT-2 uses 1e-5", eps);
    if (!get_bool(o, "tie_word_embeddings", 1))
        return weft_error("config.json: tie_word_embeddings is false; weft's GPT-2 ties the head "
                          "to wte");
    if (get_bool(o, "scale_attn_by_inverse_layer_idx", 0) || !get_bool(o, "scale_attn_weights", 1))
        return weft_error("config.json: scale_attn_by_inverse_layer_idx or scale_attn_weights "
                          "differs from GPT-2's; weft scales attention by 1/sqrt(head size)");
    if (c->n_embd % c->n_head)
        return weft_error("config.json: n_embd %lld is not divisible by n_head %lld",
                          (long long)c->n_embd, (long long)c->n_head);
    return 0;
}

/* rope_theta + rope_scaling, or the newer rope_parameters (which carries
 * rope_theta itself). */
static int read_rope(const json_t *o, hf_config_t *c)
{
    const json_t *params = json_object_get(o, "rope_parameters");
    const json_t *s = params && !json_is_null(params) ? params : json_object_get(o, "rope_scaling");
    const json_t *theta_from = params && json_object_get(params, "rope_theta") ? params : o;
    if (get_num(theta_from, "rope_theta", 10000.0, &c->rope_theta) < 0) return -1;
    if (!s || json_is_null(s)) return 0;
    if (!json_is_object(s))
        return weft_error("config.json: %s must be an object",
                          params ? "rope_parameters" : "rope_scaling");
    const char *type = get_str(s, "rope_type");
    if (!type) type = get_str(s, "type");
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "linear") && strcmp(type, "llama3"))
        return weft_error("config.json: rope type \"%s\" is not supported (weft supports "
                          "default, linear and llama3)",
                          type);
    snprintf(c->rope_scaling_type, sizeof c->rope_scaling_type, "%s", type);
    if (get_num(s, "factor", NAN, &c->rope_scaling_factor) < 0) return -1;
    if (!strcmp(type, "llama3") &&
        (get_num(s, "low_freq_factor", NAN, &c->rope_low_freq_factor) < 0 ||
         get_num(s, "high_freq_factor", NAN, &c->rope_high_freq_factor) < 0 ||
         get_int(s, "original_max_position_embeddings", -1, &c->rope_original_max_position) < 0))
        return weft_error_prefix("%s (llama3)", params ? "rope_parameters" : "rope_scaling");
    return 0;
}

static int read_llama(const json_t *o, hf_config_t *c)
{
    if (get_int(o, "num_hidden_layers", -1, &c->n_layer) < 0 ||
        get_int(o, "num_attention_heads", -1, &c->n_head) < 0 ||
        get_int(o, "hidden_size", -1, &c->n_embd) < 0 ||
        get_int(o, "vocab_size", -1, &c->vocab_size) < 0 ||
        get_int(o, "max_position_embeddings", -1, &c->n_ctx) < 0 ||
        get_int(o, "intermediate_size", -1, &c->n_inner) < 0 ||
        get_int(o, "num_key_value_heads", c->n_head, &c->n_kv_head) < 0 ||
        get_num(o, "rms_norm_eps", 1e-6, &c->rms_norm_eps) < 0)
        return -1;
    if (c->n_embd % c->n_head && !json_object_get(o, "head_dim"))
        return weft_error("config.json: hidden_size %lld is not divisible by "
                          "num_attention_heads %lld and no head_dim is given",
                          (long long)c->n_embd, (long long)c->n_head);
    if (get_int(o, "head_dim", c->n_embd / c->n_head, &c->head_dim) < 0) return -1;
    if (c->n_head % c->n_kv_head)
        return weft_error("config.json: num_attention_heads %lld is not a multiple of "
                          "num_key_value_heads %lld",
                          (long long)c->n_head, (long long)c->n_kv_head);
    if (c->head_dim % 2)
        return weft_error("config.json: head_dim %lld is odd; RoPE needs an even head size",
                          (long long)c->head_dim);
    const char *act = get_str(o, "hidden_act");
    if (act && strcmp(act, "silu"))
        return weft_error("config.json: hidden_act \"%s\"; weft's Llama MLP uses silu", act);
    c->tie_word_embeddings = get_bool(o, "tie_word_embeddings", 0);
    if (c->family == HF_QWEN2) {
        c->qkv_bias = 1;
        if (get_bool(o, "use_sliding_window", 0))
            return weft_error("config.json: use_sliding_window is true; weft runs Qwen2 with "
                              "full attention only (set it false)");
    } else if (c->family == HF_LLAMA) {
        c->qkv_bias = c->o_bias = get_bool(o, "attention_bias", 0);
        c->mlp_bias = get_bool(o, "mlp_bias", 0);
    } else { /* Mistral */
        const json_t *w = json_object_get(o, "sliding_window");
        if (w && !json_is_null(w) && get_int(o, "sliding_window", -1, &c->sliding_window) < 0)
            return -1;
    }
    return read_rope(o, c);
}

int hf_config_read(const char *dir, hf_config_t *c)
{
    char path[4096];
    memset(c, 0, sizeof *c);
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return weft_error("%s: path too long", dir);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o)
        return weft_error("%s: cannot read (%s): a Hugging Face model folder holds config.json "
                          "and model.safetensors",
                          path, err.text);
    int rc = -1, family = -1;
    const json_t *archs = json_object_get(o, "architectures");
    const char *arch = json_string_value(json_array_get(archs, 0));
    const char *type = get_str(o, "model_type");
    for (int i = 0; i < 4; i++)
        if ((arch && !strcmp(arch, architectures[i])) ||
            (!arch && type && !strcmp(type, model_types[i])))
            family = i;
    if (!json_is_object(o)) {
        weft_error("%s: not a JSON object", path);
    } else if (family < 0) {
        weft_error("%s: architecture %s is not supported: weft imports GPT2LMHeadModel, "
                   "LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM",
                   path,
                   arch   ? arch
                   : type ? type
                          : "(none given)");
    } else {
        c->family = (hf_family_t)family;
        rc = family == HF_GPT2 ? read_gpt2(o, c) : read_llama(o, c);
        const char *tok = get_str(o, "weft_tokenizer");
        snprintf(c->tokenizer, sizeof c->tokenizer, "%s",
                 tok && (!strcmp(tok, "byte") || !strcmp(tok, "gpt2") || !strcmp(tok, "none")) ? tok
                 : family != HF_GPT2      ? "none"
                 : c->vocab_size == 50257 ? "gpt2"
                                          : "byte");
        if (rc < 0) weft_error_prefix("%s", dir);
    }
    json_decref(o);
    return rc;
}

/* ---- the model file's attributes ---- */

/* The biases of layer 0: bit j for q, k, v, o, gate, up, down. */
static unsigned model_biases(hid_t f)
{
    static const char *proj[7] = {"self_attn/q_proj", "self_attn/k_proj", "self_attn/v_proj",
                                  "self_attn/o_proj", "mlp/gate_proj",    "mlp/up_proj",
                                  "mlp/down_proj"};
    unsigned mask = 0;
    for (int j = 0; j < 7; j++) {
        char path[96];
        snprintf(path, sizeof path, "/model/layers/0/%s/bias", proj[j]);
        if (h5_path_exists(f, path) > 0) mask |= 1u << j;
    }
    return mask;
}

int hf_config_from_model(hid_t f, hf_config_t *c)
{
    model_attrs_t a;
    memset(c, 0, sizeof *c);
    if (model_attrs_read(f, &a) < 0 ||
        h5_attr_read_str(f, "tokenizer", c->tokenizer, sizeof c->tokenizer) < 0)
        return -1;
    c->n_layer = a.n_layer;
    c->n_head = a.n_head;
    c->n_embd = a.n_embd;
    c->vocab_size = a.vocab_size;
    c->n_ctx = a.n_ctx;
    if (!strcmp(a.arch, "gpt2")) {
        c->family = HF_GPT2;
        return 0;
    }
    c->n_kv_head = a.n_kv_head;
    c->head_dim = a.head_dim;
    c->n_inner = a.n_inner;
    c->rms_norm_eps = a.rms_norm_eps;
    c->rope_theta = a.rope_theta;
    c->tie_word_embeddings = a.tie_word_embeddings != 0;
    snprintf(c->rope_scaling_type, sizeof c->rope_scaling_type, "%s", a.rope_scaling_type);
    c->rope_scaling_factor = a.rope_scaling_factor;
    c->rope_low_freq_factor = a.rope_scaling_low_freq_factor;
    c->rope_high_freq_factor = a.rope_scaling_high_freq_factor;
    c->rope_original_max_position = a.rope_scaling_original_max_position_embeddings;
    c->sliding_window = a.sliding_window;
    /* Biases as the datasets say (hf_config_exportable checks them). */
    c->biases = model_biases(f);
    c->qkv_bias = (c->biases & 7u) == 7u;
    c->o_bias = c->biases >> 3 & 1u;
    c->mlp_bias = (c->biases >> 4 & 7u) == 7u;
    int family = -1;
    for (int i = 1; i < 4; i++)
        if (!strcmp(a.hf_architecture, architectures[i])) family = i;
    if (a.hf_architecture[0] && family < 0)
        return weft_error("hf_architecture \"%s\" is not one weft exports (LlamaForCausalLM, "
                          "Qwen2ForCausalLM, MistralForCausalLM)",
                          a.hf_architecture);
    if (family < 0) /* a model weft made: the family whose biases it has */
        family = c->sliding_window                           ? HF_MISTRAL
                 : c->qkv_bias && !c->o_bias && !c->mlp_bias ? HF_QWEN2
                                                             : HF_LLAMA;
    c->family = (hf_family_t)family;
    return 0;
}

int hf_config_exportable(const hf_config_t *c)
{
    if (c->family == HF_GPT2) return 0;
    unsigned qkv = c->biases & 7u, mlp = c->biases >> 4 & 7u;
    if ((qkv && qkv != 7u) || (mlp && mlp != 7u))
        return weft_error("the model has biases on some of %s but not all: no Hugging Face "
                          "architecture has that, so it cannot be exported",
                          qkv && qkv != 7u ? "q_proj, k_proj, v_proj"
                                           : "gate_proj, up_proj, down_proj");
    int family = (int)c->family;
    const char *fits = NULL;
    if (family == HF_LLAMA && c->qkv_bias != c->o_bias)
        fits = "LlamaForCausalLM has biases on all four attention projections (attention_bias) "
               "or none";
    else if (family == HF_QWEN2 && (!c->qkv_bias || c->o_bias || c->mlp_bias))
        fits = "Qwen2ForCausalLM has biases on q_proj, k_proj and v_proj only";
    else if (family == HF_MISTRAL && c->biases)
        fits = "MistralForCausalLM has no biases";
    if (fits)
        return weft_error("the model's biases do not fit %s: %s", architectures[family], fits);
    return 0;
}

int hf_config_write_attrs(hid_t f, const hf_config_t *c)
{
    int gpt2 = c->family == HF_GPT2;
    model_attrs_t a = {.version = gpt2 ? 1 : 2,
                       .n_layer = c->n_layer,
                       .n_head = c->n_head,
                       .n_embd = c->n_embd,
                       .vocab_size = c->vocab_size,
                       .n_ctx = c->n_ctx};
    snprintf(a.arch, sizeof a.arch, "%s", gpt2 ? "gpt2" : "llama");
    if (!gpt2) {
        a.n_kv_head = c->n_kv_head;
        a.head_dim = c->head_dim;
        a.n_inner = c->n_inner;
        a.tie_word_embeddings = c->tie_word_embeddings;
        a.rms_norm_eps = c->rms_norm_eps;
        a.rope_theta = c->rope_theta;
        snprintf(a.rope_scaling_type, sizeof a.rope_scaling_type, "%s", c->rope_scaling_type);
        a.rope_scaling_factor = c->rope_scaling_factor;
        a.rope_scaling_low_freq_factor = c->rope_low_freq_factor;
        a.rope_scaling_high_freq_factor = c->rope_high_freq_factor;
        a.rope_scaling_original_max_position_embeddings = c->rope_original_max_position;
        a.sliding_window = c->sliding_window;
        snprintf(a.hf_architecture, sizeof a.hf_architecture, "%s",
                 hf_family_architecture(c->family));
    }
    return model_attrs_write(f, &a);
}

/* ---- the tensor table ---- */

static void add(hf_tensor_t *t, size_t *n, const char *hf, const char *h5, int ndim, uint64_t d0,
                uint64_t d1)
{
    hf_tensor_t *x = &t[(*n)++];
    snprintf(x->hf, sizeof x->hf, "%s", hf);
    snprintf(x->h5, sizeof x->h5, "%s", h5);
    x->ndim = ndim;
    x->shape[0] = d0;
    x->shape[1] = ndim == 2 ? d1 : 1;
}

/* A Llama-family tensor: the dataset is the key with '.' turned into '/'. */
static void add_llama(hf_tensor_t *t, size_t *n, const char *key, int ndim, uint64_t d0,
                      uint64_t d1)
{
    char h5[128];
    snprintf(h5, sizeof h5, "%s", key);
    for (char *p = h5; *p; p++)
        if (*p == '.') *p = '/';
    add(t, n, key, h5, ndim, d0, d1);
}

int hf_tensor_table(const hf_config_t *c, hf_tensor_t **out, size_t *n)
{
    size_t cap = 4 + 20 * (size_t)c->n_layer;
    hf_tensor_t *t = calloc(cap, sizeof *t);
    if (!t) return weft_error("out of memory");
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size;
    char k[128], h[128];
    *n = 0;
    if (c->family == HF_GPT2) {
        static const struct {
            const char *name;
            int mul_in, mul_out; /* weight [mul_in C, mul_out C]; 0: a norm */
        } block[] = {{"ln_1", 0, 1}, {"attn.c_attn", 1, 3}, {"attn.c_proj", 1, 1},
                     {"ln_2", 0, 1}, {"mlp.c_fc", 1, 4},    {"mlp.c_proj", 4, 1}};
        add(t, n, "transformer.wte.weight", "wte", 2, V, C);
        add(t, n, "transformer.wpe.weight", "wpe", 2, (uint64_t)c->n_ctx, C);
        for (int64_t l = 0; l < c->n_layer; l++)
            for (int b = 0; b < 6; b++) {
                char mod[32];
                snprintf(mod, sizeof mod, "%s", block[b].name);
                for (char *p = mod; *p; p++)
                    if (*p == '.') *p = '/';
                for (int w = 0; w < 2; w++) {
                    const char *what = w ? "bias" : "weight";
                    snprintf(k, sizeof k, "transformer.h.%lld.%s.%s", (long long)l, block[b].name,
                             what);
                    snprintf(h, sizeof h, "h/%lld/%s/%s", (long long)l, mod, what);
                    if (!block[b].mul_in || w)
                        add(t, n, k, h, 1, block[b].mul_out * C, 1);
                    else
                        add(t, n, k, h, 2, block[b].mul_in * C, block[b].mul_out * C);
                }
            }
        add(t, n, "transformer.ln_f.weight", "ln_f/weight", 1, C, 1);
        add(t, n, "transformer.ln_f.bias", "ln_f/bias", 1, C, 1);
    } else {
        uint64_t Q = (uint64_t)(c->n_head * c->head_dim),
                 KV = (uint64_t)(c->n_kv_head * c->head_dim), I = (uint64_t)c->n_inner;
        add_llama(t, n, "model.embed_tokens.weight", 2, V, C);
        for (int64_t l = 0; l < c->n_layer; l++) {
            static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
            snprintf(k, sizeof k, "model.layers.%lld.input_layernorm.weight", (long long)l);
            add_llama(t, n, k, 1, C, 1);
            for (int p = 0; p < 4; p++) {
                uint64_t o = p == 0 ? Q : p == 3 ? C : KV, i = p == 3 ? Q : C;
                snprintf(k, sizeof k, "model.layers.%lld.self_attn.%s.weight", (long long)l,
                         proj[p]);
                add_llama(t, n, k, 2, o, i);
                if (p < 3 ? c->qkv_bias : c->o_bias) {
                    snprintf(k, sizeof k, "model.layers.%lld.self_attn.%s.bias", (long long)l,
                             proj[p]);
                    add_llama(t, n, k, 1, o, 1);
                }
            }
            snprintf(k, sizeof k, "model.layers.%lld.post_attention_layernorm.weight",
                     (long long)l);
            add_llama(t, n, k, 1, C, 1);
            static const char *mlp[3] = {"gate_proj", "up_proj", "down_proj"};
            for (int p = 0; p < 3; p++) {
                snprintf(k, sizeof k, "model.layers.%lld.mlp.%s.weight", (long long)l, mlp[p]);
                add_llama(t, n, k, 2, p == 2 ? C : I, p == 2 ? I : C);
                if (c->mlp_bias) {
                    snprintf(k, sizeof k, "model.layers.%lld.mlp.%s.bias", (long long)l, mlp[p]);
                    add_llama(t, n, k, 1, p == 2 ? C : I, 1);
                }
            }
        }
        add_llama(t, n, "model.norm.weight", 1, C, 1);
        if (!c->tie_word_embeddings) add_llama(t, n, "lm_head.weight", 2, V, C);
    }
    *out = t;
    return 0;
}
