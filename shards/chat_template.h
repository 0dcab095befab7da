/* chat_template.h: instruction and chat documents rendered to tokens with a
 * loss mask. A conversation (system, user and assistant messages) or a
 * completion (prompt, completion) becomes one document: the template's text
 * and special tokens around each message, every piece tokenized on its own,
 * and a mask that is 1 on the assistant's answers and the end-of-turn token
 * that closes each of them, 0 on everything else. Templates chatml, llama3
 * and plain are spelled out in docs/FORMATS-shards.md.
 *
 * The tokenizer is reached through chat_tok_t, a small interface (id of a
 * special token, encode text) that the byte tokenizer implements here and a
 * BPE tokenizer implements by filling in the two functions. */
#ifndef WEFT_CHAT_TEMPLATE_H
#define WEFT_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

/* One document: tokens and their loss mask. */
typedef struct {
    int32_t *tok;
    uint8_t *mask;
    size_t n, cap;
} chat_doc_t;

void chat_doc_free(chat_doc_t *d);
/* Appends token id with mask value m (a tokenizer's encode uses it). */
int chat_doc_push(chat_doc_t *d, int32_t id, uint8_t m);

typedef struct {
    const char *name;   /* "byte", or the tokenizer's */
    const char *sha256; /* a BPE tokenizer's SHA-256 (hex), NULL for bytes */
    int vocab_size;
    int eot; /* end of text: ends every document */
    void *ctx;
    /* id of a special (added) token spelled token, or -1 when absent */
    int (*special)(void *ctx, const char *token);
    /* appends the ids of text[0..n) to d with mask value m */
    int (*encode)(void *ctx, const char *text, size_t n, chat_doc_t *d, uint8_t m);
} chat_tok_t;

/* The byte tokenizer: bytes 0..255, 256 ends a document; no special tokens. */
void chat_tok_byte(chat_tok_t *t);
/* A byte-level BPE tokenizer (model/tokenizer.h): its added tokens are the
 * special tokens, message text is encoded with none of them matched. */
struct tok_t;
void chat_tok_bpe(chat_tok_t *t, struct tok_t *tok);

typedef enum { CHAT_PLAIN = 0, CHAT_CHATML = 1, CHAT_LLAMA3 = 2 } chat_template_t;

/* "plain", "chatml", "llama3"; -1 and one line naming the choices. */
int chat_template_parse(const char *name, chat_template_t *t);
const char *chat_template_name(chat_template_t t);
/* Refuses a template whose special tokens tok lacks: one line naming the
 * token, the tokenizer and what to do. */
int chat_template_check(chat_template_t t, const chat_tok_t *tok);
/* The end-of-turn token id (generation stops there). */
int chat_end_of_turn(chat_template_t t, const chat_tok_t *tok);

typedef enum { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } chat_role_t;

typedef struct {
    chat_role_t role;
    const char *content;
    size_t len;
} chat_msg_t;

/* "system", "user", "assistant"; -1 otherwise. */
int chat_role_parse(const char *s);

/* Renders messages into d (appended): a whole training document, ending
 * with tok->eot. */
int chat_render(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *msgs, int n,
                chat_doc_t *d);
/* Renders messages as a prompt that asks for the assistant's next turn
 * (the template's generation prompt at the end, no end of text). */
int chat_render_prompt(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *msgs, int n,
                       chat_doc_t *d);
/* A completion: prompt (mask 0), then completion and end of text (mask 1). */
int chat_render_completion(const chat_tok_t *tok, const char *prompt, size_t plen,
                           const char *completion, size_t clen, chat_doc_t *d);

#endif
