/* tok_h5.h: a tokenizer inside a weft-model HDF5 file (docs/FORMATS-model.md):
 * datasets /tokenizer/tokenizer.json, or /tokenizer/vocab.json and
 * /tokenizer/merges.txt (1-D uint8, the files' bytes), root attributes
 * tokenizer = "bpe" and tokenizer_sha256. */
#ifndef WEFT_TOK_H5_H
#define WEFT_TOK_H5_H

#include "model/tokenizer.h"

#include <hdf5.h>

#define TOK_KIND_BPE  "bpe"
#define TOK_KIND_BYTE "byte"

/* The model file's tokenizer kind ("byte", "gpt2" or "bpe") and, for "bpe",
 * its SHA-256 (sha256 gets "" otherwise). */
int tok_h5_info(const char *path, char kind[16], char sha256[65]);
/* Loads the BPE tokenizer a model file carries, checking its SHA-256
 * against the root attribute; NULL with a one-line error otherwise. */
tok_t *tok_h5_load(const char *path);
tok_t *tok_h5_read(hid_t file, const char *name);
/* Writes the datasets and both root attributes into an open file. */
int tok_h5_write(hid_t file, const tok_t *tok);

#endif
