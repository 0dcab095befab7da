/* docpack.h: rows of whole documents for training with document
 * boundaries. A row of seq_len T input positions is filled with documents
 * one after another: a document of m tokens takes m-1 positions (its token i
 * is the input, token i+1 the target, kept only where the loss mask is 1);
 * a document longer than T+1 tokens keeps its first T+1 and fills a row
 * alone; a document that does not fit in what is left of a row starts the
 * next row; the rest of a row is padding (end-of-text inputs, no targets).
 * pos (T) is each position's place inside its document (0 starts one), what
 * the engine's packed attention reads (docattn.h).
 *
 * Training rows draw documents of rank r's shards (r, r+R, ...) uniformly
 * with replacement from a counter-based hash of (cursor.seed, r,
 * cursor.next): the cursor counts documents drawn, so a checkpointed cursor
 * gives the same rows again. A document with no trainable token within the
 * row is counted (docpack_skipped) and skipped. Validation rows pack the val
 * split's documents in order.
 *
 * Without boundaries (raw-text style) docpack_stream_row gives the reader's
 * plain windows (shardset.h) with the loss mask applied. */
#ifndef WEFT_DOCPACK_H
#define WEFT_DOCPACK_H

#include "shards/shardset.h"

#include <stdint.h>

typedef struct docpack docpack_t;

/* Rows of T positions over s (which stays owned by the caller) for rank of
 * nranks. NULL with one line when the shards cannot be split so. */
docpack_t *docpack_new(shardset_t *s, int rank, int nranks, int T);
void docpack_destroy(docpack_t **self_p);

/* Fills in, tg, pos (T each) with the next training row; advances cursor. */
int docpack_next_row(docpack_t *self, shardset_cursor_t *cursor, int *in, int *tg, int *pos);
/* Documents skipped so far for lack of a trainable token. */
int64_t docpack_skipped(const docpack_t *self);

/* Validation rows: how many, and row i. */
int64_t docpack_val_rows(const docpack_t *self);
int docpack_val_row(docpack_t *self, int64_t i, int *in, int *tg, int *pos);

/* The reader's next plain window (shardset_next_window, after
 * shardset_select) as in, tg, pos = 0..T-1, targets masked by the loss mask. */
int docpack_stream_row(docpack_t *self, shardset_cursor_t *cursor, int *in, int *tg, int *pos);
/* Val window i of the reader, likewise. */
int docpack_stream_val_row(docpack_t *self, int64_t i, int *in, int *tg, int *pos);

#endif
