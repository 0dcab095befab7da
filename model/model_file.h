/* model_file.h: the weft-model HDF5 file (docs/FORMATS-model.md): read its
 * config, load it into a gpt2_t with every shape and value checked, save one
 * atomically, and write any flat buffer in the model's layout (gradients). */
#ifndef WEFT_MODEL_FILE_H
#define WEFT_MODEL_FILE_H

#include "engine/gpt2.h"
#include "model/tokenizer.h"

#include <hdf5.h>

#define MODEL_FORMAT  "weft-model"
/* The newest version written: GPT-2 files are still written as version 1
 * (their layout did not change), Llama files as version 2. */
#define MODEL_VERSION 2

/* Reads and checks the root attributes (format, version, arch, sizes,
 * tokenizer: "byte", "gpt2" or "bpe"); tokenizer (at least 16 bytes) may be NULL. */
int model_file_config(const char *path, gpt2_config_t *cfg, char *tokenizer, size_t toksize);
/* The same from an open file (model_attrs_read, then the biases present);
 * errors do not name the file. */
int model_file_read_config(hid_t f, gpt2_config_t *cfg, char *tokenizer, size_t toksize);

/* Loads a model; NULL with a one-line error naming the file and, where it
 * applies, the dataset (missing, wrong shape, NaN or infinite value). */
gpt2_t *model_file_load(const char *path, char *tokenizer, size_t toksize);

/* Writes the model to path (through path.tmp, fsync, rename). */
int model_file_save(const gpt2_t *model, const char *tokenizer, const char *path);
/* The same, carrying tok (tokenizer "bpe", docs/FORMATS-model.md) when not
 * NULL; tokenizer "bpe" needs one. */
int model_file_save_tok(const gpt2_t *model, const char *tokenizer, const tok_t *tok,
                        const char *path);

/* Writes buf (nparams floats, the model's layout) as one dataset per tensor
 * under the model-file names, e.g. /h/0/attn/c_attn/weight. */
int model_file_write_tensors(hid_t file, const gpt2_t *model, const float *buf);

/* Reads one dataset per tensor into buf, checking shapes and finiteness. */
int model_file_read_tensors(hid_t file, const gpt2_t *model, float *buf);

#endif
