/* modules.h: the one table of the linear modules a LoRA adapter can target
 * (docs/FORMATS-adapter.md, "Modules"): each module's name (the job spec's
 * and the adapter file's `targets` spelling), its HDF5 group, its PEFT
 * `target_modules` spelling, the modules of each architecture, "all-linear",
 * and target lists read and written. Modules are numbered as the engine
 * numbers them (engine/lora.h, LORA_*); a targets mask has bit m for module
 * m, and MODULES_ALL_LINEAR for "every module of the backbone". */
#ifndef WEFT_MODULES_H
#define WEFT_MODULES_H

#include "engine/gpt2.h"
#include "engine/lora.h"

#include <stddef.h>

#define MODULE_BIT(m)      (1u << (m))
#define MODULES_ALL_LINEAR LORA_ALL_LINEAR
/* The modules of each architecture: GPT-2's four, Llama's seven. */
#define MODULES_GPT2                                                                               \
    (MODULE_BIT(LORA_ATTN_C_ATTN) | MODULE_BIT(LORA_ATTN_C_PROJ) | MODULE_BIT(LORA_MLP_C_FC) |     \
     MODULE_BIT(LORA_MLP_C_PROJ))
#define MODULES_LLAMA                                                                              \
    (MODULE_BIT(LORA_Q_PROJ) | MODULE_BIT(LORA_K_PROJ) | MODULE_BIT(LORA_V_PROJ) |                 \
     MODULE_BIT(LORA_O_PROJ) | MODULE_BIT(LORA_GATE_PROJ) | MODULE_BIT(LORA_UP_PROJ) |             \
     MODULE_BIT(LORA_DOWN_PROJ))

/* Module m (0 <= m < LORA_NMODULES; "?" otherwise):
 * "attn.c_attn", "self_attn.q_proj" (job spec, adapter `targets`); */
const char *module_name(int m);
/* "attn/c_attn", "self_attn/q_proj" (the HDF5 group under a block); */
const char *module_path(int m);
/* "h" (gpt2) or "model/layers" (llama): the group holding the blocks; */
const char *module_blocks(int m);
/* "c_attn", "q_proj": PEFT's target_modules spelling (a suffix of the
 * name that no other module of the architecture ends with). */
const char *module_peft_name(int m);

/* The modules an architecture has (MODULES_GPT2 or MODULES_LLAMA). */
unsigned modules_of(model_arch_t arch);
/* A targets mask on a backbone of arch: all-linear becomes every module of
 * arch; a module it lacks is an error naming it ("LoRA target 'attn.c_attn'
 * is not a module of a llama model (choose from ..., or all-linear)"). */
int modules_resolve(unsigned targets, model_arch_t arch, unsigned *out);

/* Adds the module called name ("all-linear" included) to *mask. An unknown
 * name is an error with the closest known one ("did you mean"), a name
 * already in *mask an error too; NULL stands for a value that is not a
 * string. -1 with weft_error. */
int modules_add(unsigned *mask, const char *name);
/* "attn.c_attn, mlp.c_fc" (spaces around names allowed) -> a mask, each name
 * as modules_add takes it; an empty list or one ending in a comma is an
 * error. */
int modules_parse(const char *list, unsigned *mask);
/* The inverse: "attn.c_attn,mlp.c_fc" in module order, "all-linear" last;
 * -1 with weft_error when it does not fit in size bytes. */
int modules_format(unsigned mask, char *buf, size_t size);
/* The names in mask in module order, "all-linear" last; returns how many
 * (at most LORA_NMODULES + 1). */
int modules_names(unsigned mask, const char **names);

#endif
