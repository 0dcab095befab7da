/* hf.h: Hugging Face model folders <-> weft-model files (docs/FORMATS-hf.md):
 * config.json mapped to the model file's root attributes for GPT-2 (version
 * 1) and the Llama family (version 2), the tensor table both sides share,
 * and `weft import` / `weft export` at the file level (no engine needed). */
#ifndef WEFT_HF_H
#define WEFT_HF_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { HF_GPT2, HF_LLAMA, HF_QWEN2, HF_MISTRAL } hf_family_t;

/* "GPT2LMHeadModel", "LlamaForCausalLM", ... */
const char *hf_family_architecture(hf_family_t f);

typedef struct {
    hf_family_t family;
    int64_t n_layer, n_head, n_embd, vocab_size, n_ctx;
    /* Llama family (version 2) */
    int64_t n_kv_head, head_dim, n_inner;
    double rms_norm_eps, rope_theta;
    char rope_scaling_type[16]; /* "" (none), "linear" or "llama3" */
    double rope_scaling_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_position;
    int tie_word_embeddings;
    int qkv_bias, o_bias;   /* biases on q,k,v_proj and on o_proj */
    int mlp_bias;           /* biases on gate,up,down_proj (Llama's mlp_bias) */
    unsigned biases;        /* from a model file: bit j for q,k,v,o,gate,up,down */
    int64_t sliding_window; /* Mistral; 0: none */
    char tokenizer[16];     /* the model file's `tokenizer` attribute */
} hf_config_t;

/* Reads dir's config.json. Architectures other than the four supported, and
 * settings weft's engine does not implement, are refused by name. */
int hf_config_read(const char *dir, hf_config_t *c);
/* Reads the root attributes of a weft-model file (version 1 or 2); the
 * family is hf_architecture's, or for a model weft made, the one whose
 * biases it has. */
int hf_config_from_model(hid_t f, hf_config_t *c);
/* 0 when a Hugging Face class holds c's biases; else -1 naming them. */
int hf_config_exportable(const hf_config_t *c);
/* Writes c as a model file's root attributes (model/model_attrs.h), all
 * but `tokenizer`. */
int hf_config_write_attrs(hid_t f, const hf_config_t *c);

/* One tensor of the model: its Hugging Face state-dict key, its model-file
 * dataset (without the leading '/'), and its shape (the same on both sides). */
typedef struct {
    char hf[128];
    char h5[128];
    int ndim;
    uint64_t shape[2];
} hf_tensor_t;

/* The model's tensors in model-file order (malloc'ed into *out). */
int hf_tensor_table(const hf_config_t *c, hf_tensor_t **out, size_t *n);

/* Reads HF_DIR (config.json, model.safetensors or its sharded index,
 * tokenizer files) and writes a weft-model file at out (atomically).
 * in_bytes, when not NULL, gets the tensor bytes read. */
int hf_import(const char *dir, const char *out, uint64_t *in_bytes);
/* Writes model's config.json, model.safetensors (F32 or BF16) and its
 * carried tokenizer files into dir (created if missing). */
int hf_export(const char *model, const char *dir, int bf16);

int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
