/* shard_writer.h: turns text or JSONL files into one weft-shards HDF5 file:
 * byte or BPE tokens, a seeded train/val split and shuffle of documents, S training
 * shards. Streams in two passes with memory bounded by the document count. */
#ifndef WEFT_SHARD_WRITER_H
#define WEFT_SHARD_WRITER_H

#include <stdint.h>

typedef enum { SHARD_INPUT_TEXT, SHARD_INPUT_JSONL } shard_input_t;

typedef struct {
    shard_input_t format; /* text: a file is a document, or "---" lines split it */
    const char *field;    /* jsonl: the string member holding the document */
    int64_t shards;       /* S >= 1 training shards */
    double val_fraction;  /* F in [0,1): share of documents held out */
    uint64_t seed;        /* split and shuffle seed, < 2^63 */
    int force;            /* replace an existing output */
    int progress;         /* print a progress line on stderr */
    const char *tokenizer; /* NULL: bytes; else a tokenizer.json, folder or weft-model file */
    const char *eos;       /* the end-of-text token's text (NULL: the tokenizer's own) */
    const char *output;
    int ninputs;
    char **inputs;
} shard_opts_t;

typedef struct {
    int64_t docs[2];   /* [0] train, [1] val */
    int64_t tokens[2]; /* [0] train, [1] val */
    int64_t shards;
    int64_t vocab;       /* vocabulary size */
    int64_t eot;         /* end-of-document id */
    int64_t input_bytes; /* bytes of all inputs */
    double seconds;
    char source_sha256[65];
} shard_stats_t;

/* Writes opts->output (through a temporary file renamed into place and
 * fsynced). Returns 0, or -1 with weft_error() set and no output left
 * behind. stats may be NULL. While it runs, SIGINT, SIGTERM and SIGHUP
 * remove the temporary file before taking their default action; one call
 * at a time per process. */
int shard_write(const shard_opts_t *opts, shard_stats_t *stats);

#endif
