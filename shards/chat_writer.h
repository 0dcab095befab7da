/* chat_writer.h: `weft shard --format chat|completion`: JSONL conversations
 * or prompt/completion pairs rendered with a chat template (chat_template.h)
 * into one weft-shards file whose splits carry a loss_mask beside their
 * tokens. Documents are held in memory (tokens and mask, 5 bytes a token),
 * shuffled and split as `weft shard` does, and the training split is cut
 * into S shards at document boundaries. */
#ifndef WEFT_CHAT_WRITER_H
#define WEFT_CHAT_WRITER_H

#include "shards/chat_template.h"
#include "shards/shard_writer.h"

typedef struct {
    const shard_opts_t *base; /* shards, val_fraction, seed, force, output, inputs */
    int completion;           /* 0: chat ({"messages": [...]}), 1: {"prompt", "completion"} */
    chat_template_t tmpl;     /* chat only */
    int skip_bad;             /* count and skip bad lines instead of failing */
    const chat_tok_t *tok;
} chat_shard_opts_t;

typedef struct {
    shard_stats_t base;
    int64_t bad;          /* lines skipped with --skip-bad */
    int64_t trainable[2]; /* tokens with mask 1, train and val */
} chat_shard_stats_t;

/* Writes o->base->output through a temporary file renamed into place.
 * A bad line fails with one line naming file, line number and field
 * (unless skip_bad). 0, or -1 with weft_error() set. */
int chat_shard_write(const chat_shard_opts_t *o, chat_shard_stats_t *st);

#endif
