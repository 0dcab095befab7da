/* tokenizer.h: Hugging Face byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2
 * styles) read from tokenizer.json, from GPT-2's vocab.json + merges.txt, or
 * from a weft-model file that carries one; encode and decode as `tokenizers`
 * does with encode(text, add_special_tokens=False) and decode(ids).
 *
 * Encoding: added tokens are matched first (leftmost-longest), the rest is
 * NFC-normalised when the normalizer asks, split by the pre-tokenizer's regex
 * (PCRE2, UTF + UCP + JIT), mapped to byte-level symbols and merged pair by
 * pair, lowest rank first (the leftmost on a tie), with a bounded cache of
 * pieces seen. Invalid UTF-8 in the input is replaced by U+FFFD first, as
 * decoding the bytes with errors="replace" would.
 *
 * Decoding maps each token back to its bytes; invalid UTF-8 in the result is
 * replaced by U+FFFD per maximal subpart, as Rust's from_utf8_lossy does.
 *
 * Functions returning int give 0, or -1 with weft_error() set to one line. */
#ifndef WEFT_TOKENIZER_H
#define WEFT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_t tok_t;

/* A growing array of token ids. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ids_t;

int tok_ids_push(tok_ids_t *ids, int32_t id);
void tok_ids_free(tok_ids_t *ids);

/* path: a tokenizer.json file, a folder holding tokenizer.json (or
 * vocab.json + merges.txt), or a weft-model file carrying a BPE tokenizer.
 * NULL with weft_error() naming the file and the part refused. */
tok_t *tok_load(const char *path);
/* From bytes in memory; name is used in messages. */
tok_t *tok_from_json(const void *json, size_t n, const char *name);
tok_t *tok_from_gpt2(const void *vocab, size_t nvocab, const void *merges, size_t nmerges,
                     const char *name);
void tok_destroy(tok_t **self_p);

/* Highest id + 1 (model vocabulary and added tokens). */
int tok_vocab_size(const tok_t *self);
/* The end-of-text id found among the added tokens (<|endoftext|>,
 * <|end_of_text|>, </s>, ...), or -1 when none is there. */
int tok_eot(const tok_t *self);
/* Id of a token (added tokens first), or -1. */
int tok_id(const tok_t *self, const char *token);
/* The token's string as stored (byte-level characters), or NULL. */
const char *tok_token(const tok_t *self, int id);
/* Hex SHA-256 of tokenizer.json's bytes, or of vocab.json's then merges.txt's. */
const char *tok_sha256(const tok_t *self);
/* The source bytes: tokenizer.json (*merges NULL), or the GPT-2 pair. */
void tok_source(const tok_t *self, const void **json_or_vocab, size_t *n1, const void **merges,
                size_t *n2);

/* From now on the added token id, found in a text, is encoded as ordinary
 * text (weft shard: a document holds its end-of-text id once, at its end). */
void tok_added_as_text(tok_t *self, int id);

/* 1 when s[0..n) is valid UTF-8. */
int tok_utf8_ok(const char *s, size_t n);

/* Encodes text (any bytes) and appends its ids to out. */
int tok_encode(tok_t *self, const char *text, size_t n, tok_ids_t *out);
/* The same with no added token matched: a special token's spelling in the
 * text is encoded as ordinary text (a chat message's content, so that a
 * user cannot type a template's control tokens). */
int tok_encode_text(tok_t *self, const char *text, size_t n, tok_ids_t *out);
/* Calls fn for each pre-token of text in order, as the BPE model would see
 * it (after NFC and the prefix space; added_id -1), and for each added token
 * matched (its content and id). A non-zero return from fn stops with -1. */
int tok_pieces(tok_t *self, const char *text, size_t n,
               int (*fn)(void *arg, const char *piece, size_t len, int32_t added_id), void *arg);
/* Decodes ids to text (malloc'd, NUL-terminated, *len without the NUL). An
 * id outside the vocabulary is refused naming it. */
int tok_decode(const tok_t *self, const int32_t *ids, size_t n, char **text, size_t *len);

/* Streaming: a document of any size fed in pieces, cut only where the
 * pre-tokenizer and normaliser cannot see across (before a space that follows
 * a non-space, with no added token spanning it), so the ids equal those of
 * tok_encode on the whole document. */
typedef struct tok_stream_t tok_stream_t;
tok_stream_t *tok_stream_new(tok_t *tok);
void tok_stream_destroy(tok_stream_t **self_p);
/* Appends to out the ids of a settled prefix of what was fed so far. */
int tok_stream_feed(tok_stream_t *self, const char *buf, size_t n, tok_ids_t *out);
/* Appends the ids of the rest and starts a new document. */
int tok_stream_end(tok_stream_t *self, tok_ids_t *out);

#endif
