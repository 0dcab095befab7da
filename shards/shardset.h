/* shardset.h: reads a weft-shards file (read-only; each MPI rank opens its
 * own handle): validation, sizes, rank r of R's shards, seeded training
 * windows from a restorable cursor, validation windows in order.
 *
 * Every read is a hyperslab read of the tokens it needs; chunk checksums
 * (Fletcher32) are verified by HDF5 on each read, and a mismatch is reported
 * as a corrupt file.
 *
 * Training windows. shardset_select(self, r, R, L) gives rank r the shards
 * r, r+R, r+2R, ... A window is L+1 consecutive tokens inside one of them;
 * its start is drawn uniformly (with replacement) over all start positions
 * of the rank's shards by a counter-based hash of (cursor.seed, r,
 * cursor.next). The cursor is a plain struct: store its two numbers in a
 * checkpoint, load them back, and the same file, r, R and L give exactly the
 * same next windows.
 *
 * Validation windows. Window i of the val split is tokens [i*L, i*L+L+1):
 * consecutive windows overlap by one token, so each token after the first is
 * a target once, up to a tail shorter than L that is left out. There are
 * (val_tokens - 1) / L of them.
 *
 * Functions returning int give 0, or -1 with weft_error() set to one line
 * naming the file. */
#ifndef WEFT_SHARDSET_H
#define WEFT_SHARDSET_H

#include <stdint.h>

typedef struct shardset_t shardset_t;

typedef enum { SHARDSET_TRAIN = 0, SHARDSET_VAL = 1 } shardset_split_t;

typedef struct {
    uint64_t seed; /* the stream's seed */
    uint64_t next; /* windows drawn so far */
} shardset_cursor_t;

/* Opens and validates path; NULL with weft_error() set when it cannot be
 * read, is not weft-shards, has another version, or is inconsistent. */
shardset_t *shardset_new(const char *path);
void shardset_destroy(shardset_t **self_p);

const char *shardset_path(shardset_t *self);
const char *shardset_tokenizer(shardset_t *self); /* "byte" or "bpe" */
/* "bpe": hex SHA-256 of the tokenizer's files (tok_sha256); else "". */
const char *shardset_tokenizer_sha256(shardset_t *self);
int shardset_vocab_size(shardset_t *self);        /* 257 for "byte" */
int shardset_eot(shardset_t *self);               /* end-of-document token (eot_id) */
int64_t shardset_seed(shardset_t *self);          /* the writer's --seed */
const char *shardset_source_sha256(shardset_t *self);
int64_t shardset_tokens(shardset_t *self, shardset_split_t split);
int64_t shardset_docs(shardset_t *self, shardset_split_t split);
int64_t shardset_shards(shardset_t *self);

/* Training shard s is tokens [*start, *end) of the train split. */
int shardset_shard_range(shardset_t *self, int64_t s, int64_t *start, int64_t *end);
/* Document i of a split is tokens [*start, *end); the last is the EOT. */
int shardset_doc_range(shardset_t *self, shardset_split_t split, int64_t i, int64_t *start,
                       int64_t *end);
/* Reads doc_offsets[first, first+n) of a split (documents + 1 entries). */
int shardset_doc_offsets(shardset_t *self, shardset_split_t split, int64_t first, int64_t n,
                         int64_t *out);
/* Reads tokens [start, start+n) of a split into out. */
int shardset_read(shardset_t *self, shardset_split_t split, int64_t start, int64_t n, int32_t *out);

/* Chooses rank's shards for windows of seq_len+1 tokens. Fails when
 * nranks > shards or when rank's shards hold no such window. */
int shardset_select(shardset_t *self, int rank, int nranks, int seq_len);
/* Distinct window starts in the selection (0 before shardset_select). */
int64_t shardset_positions(shardset_t *self);

void shardset_cursor_init(shardset_cursor_t *cursor, uint64_t seed);
/* Start (in the train split) of the window the cursor would draw next. */
int64_t shardset_peek_start(shardset_t *self, const shardset_cursor_t *cursor);
/* Reads the next window, seq_len+1 tokens, into tokens; advances cursor. */
int shardset_next_window(shardset_t *self, shardset_cursor_t *cursor, int32_t *tokens);

/* Instruction and chat data (weft shard --format chat|completion): a
 * loss_mask beside the tokens of both splits, 1 where the loss is taken.
 * has_mask is 0 for raw text, whose read_mask gives all ones. */
int shardset_has_mask(shardset_t *self);
int shardset_read_mask(shardset_t *self, shardset_split_t split, int64_t start, int64_t n,
                       uint8_t *out);
/* "text", "chat" or "completion"; the chat template ("" when none). */
const char *shardset_data_format(shardset_t *self);
const char *shardset_chat_template(shardset_t *self);

int64_t shardset_val_windows(shardset_t *self, int seq_len);
/* Reads val window i (seq_len+1 tokens) into tokens. */
int shardset_val_window(shardset_t *self, int seq_len, int64_t i, int32_t *tokens);

#endif
