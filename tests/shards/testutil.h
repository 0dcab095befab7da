/* testutil.h: what the shards tests share: a scratch folder per test, files
 * in it, running the real `weft` binary with its output captured, and
 * reading every document of a shard file back through the reader. */
#ifndef WEFT_TESTS_SHARDS_TESTUTIL_H
#define WEFT_TESTS_SHARDS_TESTUTIL_H

#include "shards/shard_writer.h"
#include "shards/shardset.h"

#include <stddef.h>
#include <stdint.h>

extern char tu_dir[256];

void tu_setup(void);
void tu_teardown(void);
/* tu_dir/name, in one of 16 rotating buffers. */
const char *tu_path(const char *name);
void tu_put(const char *name, const void *data, size_t n);
/* Bytes of a whole file (malloc'ed), NULL when missing. */
uint8_t *tu_get(const char *path, size_t *n);
/* Runs `weft ARGS...` (NULL-terminated); *out gets its stdout and stderr
 * (malloc'ed, NUL-terminated). Returns the exit code, or 128+signal. */
int tu_weft(char **out, ...);
/* Entries in tu_dir; and whether any has ".tmp." in its name. */
int tu_entries(void);
int tu_has_tmp(void);

/* Options for the writer with defaults: text, 1 shard, no val, seed 0. */
shard_opts_t tu_opts(const char *out, char **inputs, int ninputs);

typedef struct {
    int64_t n;
    uint8_t **data;
    size_t *len;
} tu_docs_t;

/* Appends a document to a list (copies the bytes). */
void tu_docs_add(tu_docs_t *d, const void *data, size_t len);
/* Reads every document of a split, checking each ends with the EOT token
 * and holds only byte tokens before it. */
void tu_docs_read(shardset_t *ss, shardset_split_t split, tu_docs_t *d);
/* Sorts both lists and asserts they hold the same documents. */
void tu_docs_assert_same(tu_docs_t *a, tu_docs_t *b);
void tu_docs_free(tu_docs_t *d);

#endif
