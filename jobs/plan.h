/* plan.h: what a spec will cost: the backbone's shape (the engine's config,
 * read from the weft-model file's root attributes as the worker reads it),
 * parameter counts, and an estimate of memory per rank for a run; checks of
 * the files a spec names. Used by `weft validate` and weftd. */
#ifndef WEFT_PLAN_H
#define WEFT_PLAN_H

#include "engine/gpt2.h"
#include "jobs/spec.h"

#include <stdint.h>

typedef struct {
    gpt2_config_t cfg;  /* arch, sizes, Llama's settings and biases */
    char tokenizer[16]; /* the `tokenizer` attribute: byte, gpt2, bpe or none */
} plan_model_t;

/* Reads a weft-model file's config (model_file_read_config: the root
 * attributes through model_attrs_read, the biases present); -1 with
 * weft_error naming the file and what is wrong (missing, not HDF5, not
 * weft-model, bad sizes). */
int plan_model_read(const char *path, plan_model_t *m);

/* The backbone's parameters: the engine's parameter table (gpt2_nparams). */
int64_t plan_model_params(const plan_model_t *m);
/* LoRA parameters of one adapter: sum over the targeted modules the backbone
 * has (all-linear: all of them) of r*(in+out), widths as the engine has
 * them (gpt2_module_dims), times L. */
int64_t plan_adapter_params(const plan_model_t *m, const spec_lora_t *l);

/* Bytes per rank, for one run of a spec (every tenant of a lora spec packed
 * together; see docs/JOBSPEC.md for the activation model). */
typedef struct {
    double weights;     /* float32 parameters (the frozen backbone in lora mode) */
    double grads;       /* gradients of what trains */
    double optimizer;   /* AdamW m and v */
    double adapters;    /* lora: adapter weights of every tenant */
    double activations; /* forward activations plus their gradients */
    double total;
    int64_t rows; /* sequences per micro-step on one rank, all tenants */
} plan_memory_t;
void plan_memory(const spec_t *s, const plan_model_t *m, plan_memory_t *out);

/* Checks a data file: it must exist; a weft-shards file must say so and its
 * vocabulary must fit the model's (m may be NULL). Returns the number of
 * training tokens of a shards file in *train_tokens (0 for raw data). */
int plan_check_data(const char *path, spec_data_kind_t kind, const plan_model_t *m,
                    int64_t *train_tokens);
/* Checks a unit's data against the run it will train in, before it is
 * packed with anyone: raw data must be a regular file; a weft-shards file
 * must open as one of this version, use the model's tokenizer (m may be
 * NULL), fit its vocabulary, hold at least one shard per rank with a
 * window of seq_len+1 tokens for every rank, and a /val split of at least
 * one such window. With scan, every token is read and checked to lie
 * inside the vocabulary (reads the whole file). -1 with weft_error naming
 * the file and what to do. */
int plan_check_unit_data(const spec_t *unit, const plan_model_t *m, int scan);
/* Checks an adapter file to continue from: it exists, is a weft-adapter
 * file, and its r, alpha, use_rslora and targets attributes agree with the
 * LoRA settings that will train it (all-linear agrees with the list of
 * every module of the backbone m's architecture; m NULL: of either). */
int plan_check_adapter(const char *path, const spec_lora_t *l, const plan_model_t *m);

/* Optimizer steps of a train group, with epochs turned into steps when the
 * training split's size is known (0 when it is not). */
int64_t plan_steps(const spec_train_t *t, int64_t train_tokens);

#endif
