/* tokenizer.c: reads byte-level BPE tokenizers (tokenizer.json, GPT-2's
 * vocab.json + merges.txt, or a weft-model file carrying either), refuses
 * every other kind naming the component found, and decodes ids to text.
 * Encoding is in bpe.c. */
#include "model/tok_internal.h"
#include "common/log.h"
#include "common/sha256.h"
#include "model/tok_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* GPT-2's pre-tokenizer regex, the one ByteLevel(use_regex=true) applies. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Added tokens that end a text, in the order they are looked for. */
static const char *const eot_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};

int tok_ids_push(tok_ids_t *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 1024;
        int32_t *p = realloc(ids->v, cap * sizeof *p);
        if (!p) return weft_error("out of memory for %zu token ids", cap);
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void tok_ids_free(tok_ids_t *ids)
{
    free(ids->v);
    *ids = (tok_ids_t){0};
}

uint64_t tok_hash(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

uint32_t tok_byte_cp(int b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
        return (uint32_t)b;
    int n = 0; /* bytes below b that are not printable, in order, go to 256.. */
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))) n++;
    return 256u + (uint32_t)n;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when it is not one;
 * *sub gets the length of its maximal subpart (at least 1) when invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n, size_t *sub)
{
    uint8_t b = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf)
        need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        if (b == 0xe0) lo = 0xa0;
        if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        if (b == 0xf0) lo = 0x90;
        if (b == 0xf4) hi = 0x8f;
    } else {
        *sub = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *sub = i;
            return 0;
        }
        lo = 0x80, hi = 0xbf;
    }
    return need + 1;
}

size_t tok_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0, sub;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i, &sub);
        if (!k) return i;
        i += k;
    }
    return n;
}

int tok_utf8_ok(const char *s, size_t n)
{
    return tok_utf8_valid((const uint8_t *)s, n) == n;
}

size_t tok_utf8_repair(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0, sub;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &sub);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i += sub;
        }
    }
    return o;
}

/* ---- lookup tables ---- */

int32_t tok_vocab_find(const tok_t *t, const char *s, size_t n)
{
    size_t mask = t->vmap_cap - 1, i = (size_t)tok_hash(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = t->vmap[i];
        if (id < 0) return -1;
        if (t->model_len[id] == n && !memcmp(t->model_tok[id], s, n)) return id;
    }
}

static void vmap_insert(tok_t *t, int32_t id)
{
    size_t mask = t->vmap_cap - 1;
    size_t i = (size_t)tok_hash(t->model_tok[id], t->model_len[id]) & mask;
    while (t->vmap[i] >= 0) i = (i + 1) & mask;
    t->vmap[i] = id;
}

static size_t merge_slot(const tok_t *t, uint64_t key)
{
    size_t mask = t->merges_cap - 1, i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key) i = (i + 1) & mask;
    return i;
}

const tok_merge_t *tok_merge_find(const tok_t *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    const tok_merge_t *m = &t->merges[merge_slot(t, key)];
    return m->key == key ? m : NULL;
}

static size_t pow2_above(size_t n)
{
    size_t c = 16;
    while (c < 2 * n) c *= 2;
    return c;
}

/* ---- reading ---- */

static tok_t *tok_alloc(const char *name)
{
    tok_t *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        weft_error("out of memory reading tokenizer %s", name);
        return NULL;
    }
    t->eot = -1;
    return t;
}

/* Vocabulary: a JSON object token -> id. */
static int read_vocab(tok_t *t, json_t *vocab, const char *where)
{
    if (!json_is_object(vocab))
        return weft_error("%s: %s is not an object of token -> id", t->name, where);
    size_t n = json_object_size(vocab);
    int64_t maxid = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return weft_error("%s: %s: token \"%s\" has no valid id (a whole number >= 0)", t->name,
                              where, key);
        if (json_integer_value(v) > maxid) maxid = json_integer_value(v);
    }
    t->nvocab = t->nmodel = (int32_t)(maxid + 1);
    t->model_tok = calloc((size_t)t->nvocab + 1, sizeof *t->model_tok);
    t->model_len = calloc((size_t)t->nvocab + 1, sizeof *t->model_len);
    t->vmap_cap = pow2_above(n);
    t->vmap = malloc(t->vmap_cap * sizeof *t->vmap);
    if (!t->model_tok || !t->model_len || !t->vmap)
        return weft_error("out of memory for %zu tokens of %s", n, t->name);
    memset(t->vmap, 0xff, t->vmap_cap * sizeof *t->vmap);
    json_object_foreach(vocab, key, v)
    {
        int32_t id = (int32_t)json_integer_value(v);
        if (t->model_tok[id])
            return weft_error("%s: %s: id %d is given to both \"%s\" and \"%s\"", t->name, where,
                              id, t->model_tok[id], key);
        if (!(t->model_tok[id] = strdup(key))) return weft_error("out of memory");
        t->model_len[id] = (uint32_t)strlen(key);
        vmap_insert(t, id);
    }
    return 0;
}

static int split_merge(tok_t *t, const char *s, size_t n, const char **a, size_t *na,
                       const char **b, size_t *nb, const char *where)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
        return weft_error("%s: %s \"%.*s\" is not two tokens separated by one space", t->name,
                          where, (int)(n > 60 ? 60 : n), s);
    *a = s, *na = (size_t)(sp - s), *b = sp + 1, *nb = n - *na - 1;
    return 0;
}

static int add_merge(tok_t *t, const char *a, size_t na, const char *b, size_t nb, uint32_t rank,
                     const char *where)
{
    char buf[1024];
    int32_t ia = tok_vocab_find(t, a, na), ib = tok_vocab_find(t, b, nb);
    if (ia < 0 || ib < 0)
        return weft_error("%s: merge %u (%s) names token \"%.*s\", which is not in the "
                          "vocabulary; the file is damaged or its vocab does not match its merges",
                          t->name, rank + 1, where, (int)(ia < 0 ? na : nb), ia < 0 ? a : b);
    if (na + nb >= sizeof buf)
        return weft_error("%s: merge %u (%s) is too long", t->name, rank + 1, where);
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    int32_t id = tok_vocab_find(t, buf, na + nb);
    if (id < 0)
        return weft_error("%s: merge %u (%s) makes \"%.*s\", which is not in the vocabulary; the "
                          "file is damaged or its vocab does not match its merges",
                          t->name, rank + 1, where, (int)(na + nb), buf);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    tok_merge_t *m = &t->merges[merge_slot(t, key)];
    *m = (tok_merge_t){.key = key, .rank = rank, .id = id};
    return 0;
}

static int alloc_merges(tok_t *t, size_t n)
{
    t->merges_cap = pow2_above(n);
    t->merges = malloc(t->merges_cap * sizeof *t->merges);
    if (!t->merges) return weft_error("out of memory for %zu merges of %s", n, t->name);
    for (size_t i = 0; i < t->merges_cap; i++) t->merges[i].key = UINT64_MAX;
    return 0;
}

static int read_merges_json(tok_t *t, json_t *merges)
{
    if (!json_is_array(merges)) return weft_error("%s: model.merges is not an array", t->name);
    if (alloc_merges(t, json_array_size(merges)) < 0) return -1;
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m)
    {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (json_is_string(m)) {
            if (split_merge(t, json_string_value(m), json_string_length(m), &a, &na, &b, &nb,
                            "model.merges entry") < 0)
                return -1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            na = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            nb = json_string_length(json_array_get(m, 1));
        } else {
            return weft_error("%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]",
                              t->name, i);
        }
        if (add_merge(t, a, na, b, nb, (uint32_t)i, "model.merges") < 0) return -1;
    }
    return 0;
}

static int read_merges_txt(tok_t *t, const char *s, size_t n)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    if (alloc_merges(t, lines) < 0) return -1;
    uint32_t rank = 0;
    for (size_t i = 0, lineno = 1; i < n; lineno++) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n, len = end - i;
        if (len > 0 && s[i + len - 1] == '\r') len--;
        if (len > 0 && !(lineno == 1 && len >= 8 && !memcmp(s + i, "#version", 8))) {
            const char *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            char where[64];
            snprintf(where, sizeof where, "merges.txt line %zu", lineno);
            if (split_merge(t, s + i, len, &a, &na, &b, &nb, where) < 0 ||
                add_merge(t, a, na, b, nb, rank++, where) < 0)
                return -1;
        }
        i = end + 1;
    }
    return 0;
}

static int add_added(tok_t *t, const char *content, size_t len, int32_t id, int special)
{
    tok_added_t *p = realloc(t->added, (size_t)(t->nadded + 1) * sizeof *p);
    if (!p) return weft_error("out of memory");
    t->added = p;
    char *c = malloc(len + 1);
    if (!c) return weft_error("out of memory");
    memcpy(c, content, len);
    c[len] = 0;
    t->added[t->nadded++] = (tok_added_t){.content = c, .len = len, .id = id, .special = special};
    if (id >= t->nvocab) t->nvocab = id + 1;
    return 0;
}

static int read_added(tok_t *t, json_t *list)
{
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return weft_error("%s: added_tokens is not an array", t->name);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        json_t *c = json_object_get(a, "content"), *id = json_object_get(a, "id");
        if (!json_is_string(c) || json_string_length(c) == 0 || !json_is_integer(id) ||
            json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX)
            return weft_error("%s: added_tokens[%zu] needs a non-empty \"content\" and an \"id\" "
                              ">= 0",
                              t->name, i);
        static const char *flags[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; k < 3; k++)
            if (json_is_true(json_object_get(a, flags[k])))
                return weft_error("%s: added token \"%s\" sets %s, which weft does not support",
                                  t->name, json_string_value(c), flags[k]);
        if (add_added(t, json_string_value(c), json_string_length(c),
                      (int32_t)json_integer_value(id),
                      json_is_true(json_object_get(a, "special"))) < 0)
            return -1;
    }
    return 0;
}

static const char *type_of(json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "type"));
    return s ? s : "(no type)";
}

static int read_normalizer(tok_t *t, json_t *n)
{
    if (!n || json_is_null(n)) return 0;
    if (!strcmp(type_of(n), "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (!strcmp(type_of(n), "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *e;
        size_t i;
        json_array_foreach(list, i, e)
        {
            if (read_normalizer(t, e) < 0) return -1;
        }
        return 0;
    }
    return weft_error("%s: normalizer %s is not supported (weft reads none, NFC, or a Sequence "
                      "of NFC)",
                      t->name, type_of(n));
}

typedef struct {
    const char *pattern[TOK_MAX_SPLITS];
    int literal[TOK_MAX_SPLITS];
    int n, bytelevel;
} pre_t;

static int read_pre_one(tok_t *t, json_t *p, pre_t *pre, int last)
{
    const char *type = type_of(p);
    if (!strcmp(type, "ByteLevel")) {
        if (!last)
            return weft_error("%s: pre_tokenizer ByteLevel must come last in its Sequence",
                              t->name);
        pre->bytelevel = 1;
        t->add_prefix_space = json_is_true(json_object_get(p, "add_prefix_space"));
        json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur)) {
            if (pre->n == TOK_MAX_SPLITS)
                return weft_error("%s: pre_tokenizer has too many splits", t->name);
            pre->pattern[pre->n] = gpt2_pattern;
            pre->literal[pre->n++] = 0;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
        if (!json_is_string(re) && !json_is_string(str))
            return weft_error("%s: pre_tokenizer Split has no pattern {\"Regex\": ...} or "
                              "{\"String\": ...}",
                              t->name);
        if (!beh || strcmp(beh, "Isolated"))
            return weft_error("%s: pre_tokenizer Split behavior %s is not supported (weft reads "
                              "Isolated)",
                              t->name, beh ? beh : "(none)");
        if (json_is_true(json_object_get(p, "invert")))
            return weft_error("%s: pre_tokenizer Split with invert=true is not supported", t->name);
        if (pre->n == TOK_MAX_SPLITS)
            return weft_error("%s: pre_tokenizer has too many splits", t->name);
        pre->literal[pre->n] = !json_is_string(re);
        pre->pattern[pre->n++] = json_string_value(json_is_string(re) ? re : str);
        return 0;
    }
    if (!strcmp(type, "Digits")) { /* char::is_numeric runs, or each one, isolated */
        if (pre->n == TOK_MAX_SPLITS)
            return weft_error("%s: pre_tokenizer has too many splits", t->name);
        pre->literal[pre->n] = 0;
        pre->pattern[pre->n++] =
            json_is_true(json_object_get(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
        return 0;
    }
    return weft_error("%s: pre_tokenizer %s is not supported (weft reads ByteLevel, or a Sequence "
                      "of Split, Digits and ByteLevel)",
                      t->name, type);
}

static int read_pre(tok_t *t, json_t *p)
{
    pre_t pre = {0};
    if (!p || json_is_null(p))
        return weft_error("%s: no pre_tokenizer; weft reads byte-level BPE (pre_tokenizer "
                          "ByteLevel)",
                          t->name);
    if (!strcmp(type_of(p), "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers"), *e;
        size_t i, n = json_array_size(list);
        json_array_foreach(list, i, e)
        {
            if (read_pre_one(t, e, &pre, i + 1 == n) < 0) return -1;
        }
    } else if (read_pre_one(t, p, &pre, 1) < 0) {
        return -1;
    }
    if (!pre.bytelevel)
        return weft_error("%s: the pre_tokenizer has no ByteLevel step; weft reads byte-level "
                          "BPE only",
                          t->name);
    return tok_compile(t, pre.pattern, pre.literal, pre.n);
}

static int read_model(tok_t *t, json_t *m)
{
    if (!json_is_object(m)) return weft_error("%s: no \"model\" object", t->name);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type ? strcmp(type, "BPE") : !json_object_get(m, "merges"))
        return weft_error("%s: model type %s is not supported (weft reads byte-level BPE only)",
                          t->name, type ? type : "(no type, no merges)");
    json_t *d = json_object_get(m, "dropout");
    if (json_is_number(d) && json_number_value(d) > 0)
        return weft_error("%s: model.dropout %g is not supported (encoding would not be "
                          "deterministic); set it to null",
                          t->name, json_number_value(d));
    static const char *unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s = json_string_value(json_object_get(m, unsupported[k]));
        if (s && *s)
            return weft_error("%s: model.%s \"%s\" is not supported by byte-level BPE", t->name,
                              unsupported[k], s);
    }
    if (json_is_true(json_object_get(m, "byte_fallback")))
        return weft_error("%s: model.byte_fallback is not supported (that is SentencePiece-style "
                          "BPE, not byte-level)",
                          t->name);
    t->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));
    if (read_vocab(t, json_object_get(m, "vocab"), "model.vocab") < 0) return -1;
    return read_merges_json(t, json_object_get(m, "merges"));
}

/* ByteLevel decoder: each character of the token back to its byte; a token
 * holding a character outside the table keeps its own UTF-8 bytes. */
static int set_dec(tok_t *t, int32_t id, const char *tokstr, size_t len)
{
    static int inv[324];
    if (!inv[0]) { /* byte 0 is character 256: inv[0] is never a byte's */
        for (int c = 0; c < 324; c++) inv[c] = -1;
        for (int b = 0; b < 256; b++) inv[tok_byte_cp(b)] = b;
    }
    uint8_t *out = malloc(len + 1);
    if (!out) return weft_error("out of memory");
    size_t o = 0, i = 0;
    int mapped = 1;
    while (i < len && mapped) {
        const uint8_t *u = (const uint8_t *)tokstr + i;
        uint32_t cp = 324;
        if (u[0] < 0x80)
            cp = u[0], i += 1;
        else if ((u[0] & 0xe0) == 0xc0 && i + 1 < len)
            cp = (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f), i += 2;
        if (cp >= 324 || inv[cp] < 0)
            mapped = 0;
        else
            out[o++] = (uint8_t)inv[cp];
    }
    if (!mapped) memcpy(out, tokstr, o = len);
    free(t->dec[id]);
    t->dec[id] = out;
    t->dec_len[id] = (uint32_t)o;
    return 0;
}

/* Byte ids, decoding table, end-of-text, added-token index: after reading. */
static int finish(tok_t *t)
{
    char s[4];
    for (int b = 0; b < 256; b++) {
        size_t n = utf8_put(tok_byte_cp(b), s);
        t->byte_id[b] = tok_vocab_find(t, s, n);
        if (t->byte_id[b] < 0)
            return weft_error("%s: the vocabulary has no token for byte 0x%02x (\"%.*s\"); it is "
                              "not a byte-level BPE vocabulary",
                              t->name, b, (int)n, s);
    }
    t->dec = calloc((size_t)t->nvocab, sizeof *t->dec);
    t->dec_len = calloc((size_t)t->nvocab, sizeof *t->dec_len);
    if (!t->dec || !t->dec_len) return weft_error("out of memory");
    for (int32_t id = 0; id < t->nmodel; id++)
        if (t->model_tok[id] && set_dec(t, id, t->model_tok[id], t->model_len[id]) < 0) return -1;
    for (int k = 0; k < t->nadded; k++) /* an added token's content wins, as in HF */
        if (set_dec(t, t->added[k].id, t->added[k].content, t->added[k].len) < 0) return -1;
    for (size_t e = 0; e < sizeof eot_names / sizeof *eot_names && t->eot < 0; e++)
        for (int k = 0; k < t->nadded; k++)
            if (!strcmp(t->added[k].content, eot_names[e])) {
                t->eot = t->added[k].id;
                break;
            }
    for (int k = 0; k < t->nadded; k++) {
        t->added_first[(uint8_t)t->added[k].content[0]] = 1;
        if (t->added[k].len > t->added_maxlen) t->added_maxlen = t->added[k].len;
    }
    return 0;
}

static int take_source(tok_t *t, const void *a, size_t na, const void *b, size_t nb)
{
    weft_sha256_t h;
    uint8_t d[32];
    t->src1 = malloc(na ? na : 1);
    t->src2 = b ? malloc(nb ? nb : 1) : NULL;
    if (!t->src1 || (b && !t->src2)) return weft_error("out of memory");
    memcpy(t->src1, a, na);
    if (b) memcpy(t->src2, b, nb);
    t->nsrc1 = na, t->nsrc2 = nb;
    weft_sha256_init(&h);
    weft_sha256_update(&h, a, na);
    if (b) weft_sha256_update(&h, b, nb);
    weft_sha256_final(&h, d);
    weft_sha256_hex(d, t->sha256);
    return 0;
}

tok_t *tok_from_json(const void *bytes, size_t n, const char *name)
{
    tok_t *t = tok_alloc(name);
    if (!t) return NULL;
    json_error_t err;
    json_t *root = json_loadb(bytes, n, 0, &err);
    int rc;
    if (!root)
        rc = weft_error("%s: not JSON (%s, line %d, column %d); give a tokenizer.json", name,
                        err.text, err.line, err.column);
    else if (!json_is_object(root))
        rc = weft_error("%s: not a tokenizer.json (the top level is not an object)", name);
    else {
        json_t *dec = json_object_get(root, "decoder");
        rc = take_source(t, bytes, n, NULL, 0);
        if (rc == 0) rc = read_model(t, json_object_get(root, "model"));
        if (rc == 0) rc = read_added(t, json_object_get(root, "added_tokens"));
        if (rc == 0) rc = read_normalizer(t, json_object_get(root, "normalizer"));
        if (rc == 0) rc = read_pre(t, json_object_get(root, "pre_tokenizer"));
        if (rc == 0 && (!dec || strcmp(type_of(dec), "ByteLevel")))
            rc = weft_error("%s: decoder %s is not supported (weft reads ByteLevel)", name,
                            dec && !json_is_null(dec) ? type_of(dec) : "null");
        if (rc == 0) rc = finish(t);
    }
    json_decref(root);
    if (rc < 0) tok_destroy(&t);
    return t;
}

tok_t *tok_from_gpt2(const void *vocab, size_t nvocab, const void *merges, size_t nmerges,
                     const char *name)
{
    tok_t *t = tok_alloc(name);
    if (!t) return NULL;
    json_error_t err;
    json_t *v = json_loadb(vocab, nvocab, 0, &err);
    int rc;
    const char *pat[1] = {gpt2_pattern};
    int lit[1] = {0};
    if (!v)
        rc = weft_error("%s: vocab.json is not JSON (%s, line %d, column %d)", name, err.text,
                        err.line, err.column);
    else {
        rc = take_source(t, vocab, nvocab, merges, nmerges);
        if (rc == 0) rc = read_vocab(t, v, "vocab.json");
        if (rc == 0) rc = read_merges_txt(t, merges, nmerges);
        if (rc == 0) rc = tok_compile(t, pat, lit, 1);
        /* Hugging Face's GPT-2 tokenizer treats <|endoftext|> as a special token */
        int32_t eot = rc == 0 ? tok_vocab_find(t, "<|endoftext|>", 13) : -1;
        if (eot >= 0) rc = add_added(t, "<|endoftext|>", 13, eot, 1);
        if (rc == 0) rc = finish(t);
    }
    json_decref(v);
    if (rc < 0) tok_destroy(&t);
    return t;
}

static int slurp(const char *path, uint8_t **buf, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return weft_error("cannot open tokenizer %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return weft_error("tokenizer %s is not a regular file", path);
    }
    *n = (size_t)st.st_size;
    *buf = malloc(*n ? *n : 1);
    size_t got = 0;
    while (*buf && got < *n) {
        ssize_t r = read(fd, *buf + got, *n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!*buf || got != *n) {
        free(*buf);
        *buf = NULL;
        return weft_error("cannot read tokenizer %s", path);
    }
    return 0;
}

static int is_hdf5(const uint8_t *b, size_t n)
{
    return n >= 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8);
}

tok_t *tok_load(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        weft_error("cannot open tokenizer %s: %s", path, strerror(errno));
        return NULL;
    }
    char a[PATH_MAX], b[PATH_MAX];
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    tok_t *t = NULL;
    if (S_ISDIR(st.st_mode)) {
        snprintf(a, sizeof a, "%s/tokenizer.json", path);
        if (access(a, R_OK) == 0) return tok_load(a);
        snprintf(a, sizeof a, "%s/vocab.json", path);
        snprintf(b, sizeof b, "%s/merges.txt", path);
        if (access(a, R_OK) < 0 || access(b, R_OK) < 0) {
            weft_error("folder %s holds no tokenizer.json and no vocab.json + merges.txt", path);
            return NULL;
        }
        if (slurp(a, &x, &nx) == 0 && slurp(b, &y, &ny) == 0) t = tok_from_gpt2(x, nx, y, ny, path);
    } else if (slurp(path, &x, &nx) == 0) {
        if (is_hdf5(x, nx))
            t = tok_h5_load(path);
        else
            t = tok_from_json(x, nx, path);
    }
    free(x);
    free(y);
    return t;
}

void tok_destroy(tok_t **self_p)
{
    tok_t *t = *self_p;
    if (!t) return;
    for (int32_t i = 0; t->model_tok && i < t->nmodel; i++) free(t->model_tok[i]);
    for (int32_t i = 0; t->dec && i < t->nvocab; i++) free(t->dec[i]);
    for (int k = 0; k < t->nadded; k++) free(t->added[k].content);
    tok_encoder_free(t);
    free(t->model_tok);
    free(t->model_len);
    free(t->vmap);
    free(t->dec);
    free(t->dec_len);
    free(t->merges);
    free(t->added);
    free(t->src1);
    free(t->src2);
    free(t->name);
    free(t);
    *self_p = NULL;
}

int tok_vocab_size(const tok_t *self)
{
    return self->nvocab;
}

int tok_eot(const tok_t *self)
{
    return self->eot;
}

int tok_id(const tok_t *self, const char *token)
{
    for (int k = 0; k < self->nadded; k++)
        if (!strcmp(self->added[k].content, token)) return self->added[k].id;
    return tok_vocab_find(self, token, strlen(token));
}

int tok_encode_text(tok_t *self, const char *text, size_t n, tok_ids_t *out)
{
    unsigned char saved[self->nadded ? self->nadded : 1];
    for (int k = 0; k < self->nadded; k++) {
        saved[k] = (unsigned char)self->added[k].as_text;
        self->added[k].as_text = 1;
    }
    int rc = tok_encode(self, text, n, out);
    for (int k = 0; k < self->nadded; k++) self->added[k].as_text = saved[k];
    return rc;
}

void tok_added_as_text(tok_t *self, int id)
{
    for (int k = 0; k < self->nadded; k++)
        if (self->added[k].id == id) self->added[k].as_text = 1;
}

const char *tok_token(const tok_t *self, int id)
{
    if (id < 0 || id >= self->nvocab) return NULL;
    for (int k = 0; k < self->nadded; k++)
        if (self->added[k].id == id) return self->added[k].content;
    return id < self->nmodel ? self->model_tok[id] : NULL;
}

const char *tok_sha256(const tok_t *self)
{
    return self->sha256;
}

void tok_source(const tok_t *self, const void **a, size_t *na, const void **b, size_t *nb)
{
    *a = self->src1, *na = self->nsrc1;
    *b = self->src2, *nb = self->nsrc2;
}

int tok_decode(const tok_t *self, const int32_t *ids, size_t n, char **text, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= self->nvocab || !self->dec[ids[i]])
            return weft_error("token id %d (at position %zu) is not in the vocabulary of %s (ids "
                              "0..%d)",
                              ids[i], i, self->name, self->nvocab - 1);
        total += self->dec_len[ids[i]];
    }
    uint8_t *raw = malloc(total ? total : 1), *out = malloc(3 * total + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return weft_error("out of memory decoding %zu tokens", n);
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(raw + o, self->dec[ids[i]], self->dec_len[ids[i]]);
        o += self->dec_len[ids[i]];
    }
    size_t m = tok_utf8_repair(raw, o, out);
    free(raw);
    out[m] = 0;
    *text = (char *)out;
    *len = m;
    return 0;
}
