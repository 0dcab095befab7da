/* chat_template.c: the chatml, llama3 and plain templates and the byte
 * tokenizer's side of chat_tok_t (see chat_template.h). */
#include "shards/chat_template.h"
#include "model/tokenizer.h"
#include "common/log.h"
#include "shards/shard_format.h"

#include <stdlib.h>
#include <string.h>

void chat_doc_free(chat_doc_t *d)
{
    free(d->tok);
    free(d->mask);
    memset(d, 0, sizeof *d);
}

int chat_doc_push(chat_doc_t *d, int32_t id, uint8_t m)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        int32_t *t = realloc(d->tok, cap * sizeof *t);
        if (t) d->tok = t;
        uint8_t *k = t ? realloc(d->mask, cap) : NULL;
        if (!k) return weft_error("out of memory for a document of %zu tokens", cap);
        d->mask = k;
        d->cap = cap;
    }
    d->tok[d->n] = id;
    d->mask[d->n++] = m;
    return 0;
}

static int byte_special(void *ctx, const char *token)
{
    (void)ctx;
    (void)token;
    return -1;
}

static int byte_encode(void *ctx, const char *text, size_t n, chat_doc_t *d, uint8_t m)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if (chat_doc_push(d, (unsigned char)text[i], m) < 0) return -1;
    return 0;
}

void chat_tok_byte(chat_tok_t *t)
{
    *t = (chat_tok_t){.name = "byte",
                      .vocab_size = SHARD_BYTE_VOCAB,
                      .eot = SHARD_BYTE_EOT,
                      .special = byte_special,
                      .encode = byte_encode};
}

static int bpe_special(void *ctx, const char *token)
{
    return tok_id(ctx, token);
}

static int bpe_encode(void *ctx, const char *text, size_t n, chat_doc_t *d, uint8_t m)
{
    tok_ids_t ids = {0};
    int rc = tok_encode_text(ctx, text, n, &ids);
    for (size_t i = 0; rc == 0 && i < ids.n; i++) rc = chat_doc_push(d, ids.v[i], m);
    tok_ids_free(&ids);
    return rc;
}

void chat_tok_bpe(chat_tok_t *t, tok_t *tok)
{
    *t = (chat_tok_t){.name = SHARD_TOKENIZER_BPE,
                      .sha256 = tok_sha256(tok),
                      .vocab_size = tok_vocab_size(tok),
                      .eot = tok_eot(tok),
                      .ctx = tok,
                      .special = bpe_special,
                      .encode = bpe_encode};
}

static const char *template_names[] = {"plain", "chatml", "llama3"};

int chat_template_parse(const char *name, chat_template_t *t)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, template_names[i])) {
            *t = (chat_template_t)i;
            return 0;
        }
    return weft_error("unknown chat template '%s': use chatml, llama3 or plain", name);
}

const char *chat_template_name(chat_template_t t)
{
    return (unsigned)t < 3 ? template_names[t] : "?";
}

/* The special tokens each template needs, NULL-terminated. */
static const char *const chatml_tokens[] = {"<|im_start|>", "<|im_end|>", NULL};
static const char *const llama3_tokens[] = {"<|begin_of_text|>", "<|start_header_id|>",
                                            "<|end_header_id|>", "<|eot_id|>", NULL};

static const char *const *needed(chat_template_t t)
{
    static const char *const none[] = {NULL};
    return t == CHAT_CHATML ? chatml_tokens : t == CHAT_LLAMA3 ? llama3_tokens : none;
}

int chat_template_check(chat_template_t t, const chat_tok_t *tok)
{
    for (const char *const *s = needed(t); *s; s++)
        if (tok->special(tok->ctx, *s) < 0)
            return weft_error("template %s needs the special token %s, which the %s tokenizer "
                              "lacks: use --template plain, or a model whose tokenizer has it",
                              chat_template_name(t), *s, tok->name);
    return 0;
}

int chat_end_of_turn(chat_template_t t, const chat_tok_t *tok)
{
    switch (t) {
    case CHAT_CHATML:
        return tok->special(tok->ctx, "<|im_end|>");
    case CHAT_LLAMA3:
        return tok->special(tok->ctx, "<|eot_id|>");
    default:
        return tok->eot;
    }
}

int chat_role_parse(const char *s)
{
    static const char *roles[] = {"system", "user", "assistant"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, roles[i])) return i;
    return -1;
}

static const char *role_name(chat_role_t r)
{
    return r == CHAT_SYSTEM ? "system" : r == CHAT_USER ? "user" : "assistant";
}

static int text(const chat_tok_t *tok, chat_doc_t *d, const char *s, size_t n, uint8_t m)
{
    return n ? tok->encode(tok->ctx, s, n, d, m) : 0;
}

static int lit(const chat_tok_t *tok, chat_doc_t *d, const char *s)
{
    return text(tok, d, s, strlen(s), 0);
}

static int special(const chat_tok_t *tok, chat_doc_t *d, const char *s, uint8_t m)
{
    int id = tok->special(tok->ctx, s);
    if (id < 0)
        return weft_error("the %s tokenizer has no special token %s", tok->name, s);
    return chat_doc_push(d, id, m);
}

/* One message; train: 1 when its answer is trained on. */
static int message(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *m, chat_doc_t *d)
{
    uint8_t train = m->role == CHAT_ASSISTANT;
    switch (t) {
    case CHAT_CHATML:
        if (special(tok, d, "<|im_start|>", 0) < 0 || lit(tok, d, role_name(m->role)) < 0 ||
            lit(tok, d, "\n") < 0 || text(tok, d, m->content, m->len, train) < 0 ||
            special(tok, d, "<|im_end|>", train) < 0 || lit(tok, d, "\n") < 0)
            return -1;
        return 0;
    case CHAT_LLAMA3:
        if (special(tok, d, "<|start_header_id|>", 0) < 0 ||
            lit(tok, d, role_name(m->role)) < 0 || special(tok, d, "<|end_header_id|>", 0) < 0 ||
            lit(tok, d, "\n\n") < 0 || text(tok, d, m->content, m->len, train) < 0 ||
            special(tok, d, "<|eot_id|>", train) < 0)
            return -1;
        return 0;
    default:
        if (m->role == CHAT_SYSTEM)
            return text(tok, d, m->content, m->len, 0) | lit(tok, d, "\n\n");
        if (m->role == CHAT_USER)
            return lit(tok, d, "User: ") | text(tok, d, m->content, m->len, 0) | lit(tok, d, "\n");
        return lit(tok, d, "Assistant: ") | text(tok, d, m->content, m->len, 1) |
               chat_doc_push(d, tok->eot, 1);
    }
}

static int render(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *msgs, int n,
                  chat_doc_t *d)
{
    if (chat_template_check(t, tok) < 0) return -1;
    if (t == CHAT_LLAMA3 && special(tok, d, "<|begin_of_text|>", 0) < 0) return -1;
    for (int i = 0; i < n; i++)
        if (message(t, tok, &msgs[i], d) < 0) return -1;
    return 0;
}

int chat_render(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *msgs, int n,
                chat_doc_t *d)
{
    if (render(t, tok, msgs, n, d) < 0) return -1;
    if (d->n && d->tok[d->n - 1] == tok->eot) return 0;
    return chat_doc_push(d, tok->eot, 0);
}

int chat_render_prompt(chat_template_t t, const chat_tok_t *tok, const chat_msg_t *msgs, int n,
                       chat_doc_t *d)
{
    if (render(t, tok, msgs, n, d) < 0) return -1;
    switch (t) {
    case CHAT_CHATML:
        return special(tok, d, "<|im_start|>", 0) | lit(tok, d, "assistant\n");
    case CHAT_LLAMA3:
        return special(tok, d, "<|start_header_id|>", 0) | lit(tok, d, "assistant") |
               special(tok, d, "<|end_header_id|>", 0) | lit(tok, d, "\n\n");
    default:
        return lit(tok, d, "Assistant: ");
    }
}

int chat_render_completion(const chat_tok_t *tok, const char *prompt, size_t plen,
                           const char *completion, size_t clen, chat_doc_t *d)
{
    if (text(tok, d, prompt, plen, 0) < 0 || text(tok, d, completion, clen, 1) < 0) return -1;
    return chat_doc_push(d, tok->eot, 1);
}
