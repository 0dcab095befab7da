/* peft.h: LoRA adapters at the file level (docs/FORMATS-hf.md): one
 * adapter in memory (rank, scaling, targeted modules, every block's A and B)
 * read from a weft-adapter file or a PEFT folder, and written as a PEFT
 * folder (adapter_config.json + adapter_model.safetensors). */
#ifndef WEFT_PEFT_H
#define WEFT_PEFT_H

#include "model/hf.h"

#include <stddef.h>
#include <stdint.h>

#define PEFT_MAXMOD 7

/* The modules a block of family f has; module m of them as the module
 * table numbers it (model/modules.h, LORA_*), and its name relative to the
 * block ("attn.c_attn", "self_attn.q_proj"). */
int peft_nmodules(hf_family_t f);
int peft_module(hf_family_t f, int m);
const char *peft_module_name(hf_family_t f, int m);

typedef struct {
    hf_family_t family; /* HF_GPT2 or HF_LLAMA (Qwen2's and Mistral's adapters are Llama's);
                           module m is the family's m-th (peft_module_name) */
    int r;
    double alpha;
    int use_rslora;
    int n_layer;
    unsigned targets; /* bit m: module m carries LoRA in every block */
    uint64_t in[PEFT_MAXMOD], out[PEFT_MAXMOD];
    float *w; /* for each block l, each targeted m: A [r,in] then B [out,r] */
    size_t size;
    char base_sha256[65]; /* "" when unknown (a PEFT folder) */
    char tenant[256];
} peft_lora_t;

/* Offsets of A and B of (block l, module m) in w; -1 when not targeted. */
int peft_offsets(const peft_lora_t *a, int l, int m, size_t *a_off, size_t *b_off);
float peft_scaling(const peft_lora_t *a);
void peft_free(peft_lora_t *a);

/* 1 when path is a folder holding adapter_config.json. */
int peft_is_dir(const char *path);
/* Reads a PEFT folder; a setting weft cannot represent (DoRA, bias, modules
 * to save, differing rank or alpha patterns, layers_to_transform, a target
 * the architecture lacks) is refused by name. */
int peft_read_dir(const char *dir, peft_lora_t *a);
/* Reads a weft-adapter HDF5 file (GPT-2's or the Llama family's targets). */
int peft_read_h5(const char *path, peft_lora_t *a);
/* Either of the two, by what path is. */
int peft_read_any(const char *path, peft_lora_t *a);
/* Writes a PEFT folder (created if missing); base_model may be NULL. */
int peft_write_dir(const peft_lora_t *a, const char *dir, int bf16, const char *base_model);

/* Adapter file (or PEFT folder) -> PEFT folder: `weft export-adapter`. */
int peft_export(const char *adapter, const char *dir, int bf16, const char *base_model);

/* `weft merge`: model + adapter -> a model file with scaling·B·A folded into
 * each targeted weight (transposed for GPT-2's Conv1D). */
int peft_merge(const char *model, const char *adapter, const char *out);

int cmd_export_adapter(int argc, char **argv);
int cmd_merge(int argc, char **argv);

#endif
