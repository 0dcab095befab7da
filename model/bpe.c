/* bpe.c: encoding with a byte-level BPE tokenizer: added tokens, NFC,
 * regex pre-tokenization (PCRE2 JIT), byte-level symbols merged lowest rank
 * first as Hugging Face's BPE model does (a heap of (rank, position)), and a
 * bounded cache of pieces; plus the streaming encoder of tokenizer.h. */
#include "model/tok_internal.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define CACHE_SLOTS    (1u << 16) /* pieces cached; the cache is cleared when half full */
#define CACHE_MAXPIECE 64         /* longer pieces are not cached */
#define STREAM_MIN     (64 << 10) /* the stream encodes once it holds this much */

int tok_compile(tok_t *t, const char **patterns, const int *literal, int n)
{
    for (int i = 0; i < n; i++) {
        int err;
        PCRE2_SIZE off;
        uint32_t opt = PCRE2_UTF | PCRE2_UCP | (literal[i] ? PCRE2_LITERAL : 0);
        t->re[i] =
            pcre2_compile((PCRE2_SPTR)patterns[i], PCRE2_ZERO_TERMINATED, opt, &err, &off, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return weft_error("%s: pre-tokenizer regex does not compile at offset %zu: %s", t->name,
                              (size_t)off, (char *)msg);
        }
        pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        t->nsplit = i + 1;
    }
    t->md = pcre2_match_data_create(2, NULL);
    t->cache_cap = CACHE_SLOTS;
    t->cache = calloc(t->cache_cap, sizeof *t->cache);
    if (!t->md || !t->cache) return weft_error("out of memory for the tokenizer");
    return 0;
}

void tok_encoder_free(tok_t *t)
{
    for (int i = 0; i < t->nsplit; i++) pcre2_code_free(t->re[i]);
    pcre2_match_data_free(t->md);
    free(t->cache);
    free(t->ckeys);
    free(t->cids);
    free(t->norm);
    free(t->sym);
    free(t->prev);
    free(t->next);
    free(t->heap);
}

/* ---- the merge loop ---- */

typedef struct {
    uint32_t rank, pos;
    int32_t id;
} merge_ent_t;

static int ent_less(const merge_ent_t *a, const merge_ent_t *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(merge_ent_t *h, size_t *n, merge_ent_t e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static merge_ent_t heap_pop(merge_ent_t *h, size_t *n)
{
    merge_ent_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(&h[c + 1], &h[c])) c++;
        if (!ent_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static int scratch(tok_t *t, size_t n)
{
    if (n <= t->symcap) return 0;
    size_t cap = t->symcap ? t->symcap : 256;
    while (cap < n) cap *= 2;
    int32_t *s = realloc(t->sym, cap * sizeof *s);
    if (s) t->sym = s;
    int32_t *p = realloc(t->prev, cap * sizeof *p);
    if (p) t->prev = p;
    int32_t *x = realloc(t->next, cap * sizeof *x);
    if (x) t->next = x;
    void *h = realloc(t->heap, 2 * cap * sizeof(merge_ent_t));
    if (h) t->heap = h;
    if (!s || !p || !x || !h) return weft_error("out of memory for a %zu-byte piece", n);
    t->symcap = cap;
    return 0;
}

static void push_pair(tok_t *t, size_t *nh, int32_t pos)
{
    int32_t nx = t->next[pos];
    if (nx < 0) return;
    const tok_merge_t *m = tok_merge_find(t, t->sym[pos], t->sym[nx]);
    if (m)
        heap_push(t->heap, nh, (merge_ent_t){.rank = m->rank, .pos = (uint32_t)pos, .id = m->id});
}

/* Merges the byte symbols of p[0..n) as Hugging Face's Word::merge_all:
 * pop the lowest (rank, position); skip it when stale; merge; push the
 * pairs it forms with its neighbours. Appends the ids to out. */
static int merge_piece(tok_t *t, const uint8_t *p, size_t n, tok_ids_t *out)
{
    if (scratch(t, n) < 0) return -1;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        t->sym[i] = t->byte_id[p[i]];
        t->prev[i] = (int32_t)i - 1;
        t->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, &nh, (int32_t)i);
    while (nh > 0) {
        merge_ent_t e = heap_pop(t->heap, &nh);
        int32_t pos = (int32_t)e.pos, nx;
        if (t->sym[pos] < 0 || (nx = t->next[pos]) < 0) continue;
        const tok_merge_t *m = tok_merge_find(t, t->sym[pos], t->sym[nx]);
        if (!m || m->id != e.id) continue; /* stale entry */
        t->sym[pos] = e.id;
        t->sym[nx] = -1;
        t->next[pos] = t->next[nx];
        if (t->next[nx] >= 0) t->prev[t->next[nx]] = pos;
        if (t->prev[pos] >= 0) push_pair(t, &nh, t->prev[pos]);
        push_pair(t, &nh, pos);
    }
    for (int32_t i = 0; i >= 0; i = t->next[i])
        if (tok_ids_push(out, t->sym[i]) < 0) return -1;
    return 0;
}

/* ---- the cache of pieces ---- */

static void cache_clear(tok_t *t)
{
    memset(t->cache, 0, t->cache_cap * sizeof *t->cache);
    t->cache_n = t->nckeys = t->ncids = 0;
}

static int cache_put(tok_t *t, size_t slot, uint64_t h, const uint8_t *p, size_t n,
                     const int32_t *ids, size_t nid)
{
    if (t->nckeys + n > t->capckeys) {
        size_t cap = t->capckeys ? 2 * t->capckeys : 1 << 20;
        uint8_t *k = realloc(t->ckeys, cap);
        if (!k) return 0; /* the cache is only a cache */
        t->ckeys = k, t->capckeys = cap;
    }
    if (t->ncids + nid > t->capcids) {
        size_t cap = t->capcids ? 2 * t->capcids : 1 << 18;
        int32_t *c = realloc(t->cids, cap * sizeof *c);
        if (!c) return 0;
        t->cids = c, t->capcids = cap;
    }
    memcpy(t->ckeys + t->nckeys, p, n);
    memcpy(t->cids + t->ncids, ids, nid * sizeof *ids);
    t->cache[slot] = (tok_cache_slot_t){.hash = h,
                                        .koff = (uint32_t)t->nckeys,
                                        .klen = (uint32_t)n,
                                        .ioff = (uint32_t)t->ncids,
                                        .nid = (uint32_t)nid};
    t->nckeys += n, t->ncids += nid, t->cache_n++;
    return 0;
}

/* One pre-token: cached, whole (ignore_merges), or merged. */
static int encode_piece(tok_t *t, const uint8_t *p, size_t n, tok_ids_t *out)
{
    if (n == 1) return tok_ids_push(out, t->byte_id[p[0]]);
    uint64_t h = 0;
    size_t slot = 0, mask = t->cache_cap - 1;
    if (n <= CACHE_MAXPIECE) {
        h = tok_hash(p, n);
        for (slot = (size_t)h & mask; t->cache[slot].klen; slot = (slot + 1) & mask) {
            tok_cache_slot_t *c = &t->cache[slot];
            if (c->hash == h && c->klen == n && !memcmp(t->ckeys + c->koff, p, n)) {
                for (uint32_t k = 0; k < c->nid; k++)
                    if (tok_ids_push(out, t->cids[c->ioff + k]) < 0) return -1;
                return 0;
            }
        }
    }
    size_t first = out->n;
    int32_t whole = -1;
    if (t->ignore_merges) {
        char s[2 * 256];
        if (n <= 256) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t cp = tok_byte_cp(p[i]);
                if (cp < 0x80)
                    s[m++] = (char)cp;
                else
                    s[m++] = (char)(0xc0 | cp >> 6), s[m++] = (char)(0x80 | (cp & 0x3f));
            }
            whole = tok_vocab_find(t, s, m);
        }
    }
    if (whole >= 0 ? tok_ids_push(out, whole) < 0 : merge_piece(t, p, n, out) < 0) return -1;
    if (n <= CACHE_MAXPIECE) {
        if (t->cache_n >= t->cache_cap / 2) {
            cache_clear(t);
            for (slot = (size_t)h & mask; t->cache[slot].klen; slot = (slot + 1) & mask) continue;
        }
        return cache_put(t, slot, h, p, n, out->v + first, out->n - first);
    }
    return 0;
}

/* ---- pre-tokenization ---- */

static int split(tok_t *t, int level, const uint8_t *s, size_t n, tok_ids_t *out)
{
    if (n == 0) return 0;
    if (level == t->nsplit)
        return t->piece_fn ? (t->piece_fn(t->piece_arg, (const char *)s, n, -1) ? -1 : 0)
                           : encode_piece(t, s, n, out);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    size_t gap = 0, pos = 0;
    while (pos < n) {
        int rc = pcre2_jit_match(t->re[level], s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc == PCRE2_ERROR_JIT_BADOPTION)
            rc = pcre2_match(t->re[level], s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return weft_error("%s: the pre-tokenizer regex failed: %s", t->name, (char *)msg);
        }
        size_t a = ov[0], b = ov[1];
        if (b == a) { /* an empty match splits nothing: step over one character */
            pos = a + 1;
            while (pos < n && (s[pos] & 0xc0) == 0x80) pos++;
            continue;
        }
        if (split(t, level + 1, s + gap, a - gap, out) < 0 ||
            split(t, level + 1, s + a, b - a, out) < 0)
            return -1;
        gap = pos = b;
    }
    return split(t, level + 1, s + gap, n - gap, out);
}

static int has_high(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] & 0x80) return 1;
    return 0;
}

/* Text between added tokens (valid UTF-8): prefix space, NFC, split. */
static int encode_segment(tok_t *t, const uint8_t *s, size_t n, tok_ids_t *out)
{
    if (n == 0) return 0;
    uint8_t *tmp = NULL;
    if (t->add_prefix_space && s[0] != ' ') {
        if (!(tmp = malloc(n + 1))) return weft_error("out of memory");
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp, n++;
    }
    uint8_t *nfc = NULL;
    if (t->nfc && has_high(s, n)) {
        utf8proc_ssize_t m =
            utf8proc_map(s, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) {
            free(tmp);
            return weft_error("%s: NFC failed: %s", t->name, utf8proc_errmsg(m));
        }
        s = nfc, n = (size_t)m;
    }
    int rc = split(t, 0, s, n, out);
    free(nfc);
    free(tmp);
    return rc;
}

/* The added token starting at s[0..n), longest first, or NULL. */
static const tok_added_t *added_at(const tok_t *t, const uint8_t *s, size_t n)
{
    const tok_added_t *best = NULL;
    for (int k = 0; k < t->nadded; k++) {
        const tok_added_t *a = &t->added[k];
        if (!a->as_text && a->len <= n && (!best || a->len > best->len) &&
            !memcmp(s, a->content, a->len))
            best = a;
    }
    return best;
}

int tok_encode(tok_t *t, const char *text, size_t n, tok_ids_t *out)
{
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *fixed = NULL;
    if (tok_utf8_valid(s, n) != n) {
        if (!(fixed = malloc(3 * n))) return weft_error("out of memory");
        n = tok_utf8_repair(s, n, fixed);
        s = fixed;
    }
    size_t seg = 0;
    int rc = 0;
    if (t->nadded > 0) {
        for (size_t i = 0; rc == 0 && i < n;) {
            const tok_added_t *a = t->added_first[s[i]] ? added_at(t, s + i, n - i) : NULL;
            if (!a) {
                i++;
                continue;
            }
            rc = encode_segment(t, s + seg, i - seg, out);
            if (rc == 0)
                rc = t->piece_fn ? (t->piece_fn(t->piece_arg, a->content, a->len, a->id) ? -1 : 0)
                                 : tok_ids_push(out, a->id);
            i += a->len;
            seg = i;
        }
    }
    if (rc == 0) rc = encode_segment(t, s + seg, n - seg, out);
    free(fixed);
    return rc;
}

int tok_pieces(tok_t *t, const char *text, size_t n,
               int (*fn)(void *arg, const char *piece, size_t len, int32_t added_id), void *arg)
{
    tok_ids_t unused = {0};
    t->piece_fn = fn, t->piece_arg = arg;
    int rc = tok_encode(t, text, n, &unused);
    t->piece_fn = NULL, t->piece_arg = NULL;
    tok_ids_free(&unused);
    return rc;
}

/* ---- streaming ---- */

struct tok_stream_t {
    tok_t *tok;
    char *buf;
    size_t n, cap;
};

tok_stream_t *tok_stream_new(tok_t *tok)
{
    tok_stream_t *s = calloc(1, sizeof *s);
    if (!s) weft_error("out of memory");
    if (s) s->tok = tok;
    return s;
}

void tok_stream_destroy(tok_stream_t **self_p)
{
    if (!*self_p) return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

static int is_space_byte(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Whether the character ending at b[i-1] is neither whitespace nor a
 * control (nor broken UTF-8). */
static int ends_solid(const uint8_t *b, size_t i)
{
    if (b[i - 1] < 0x80) return !is_space_byte(b[i - 1]) && b[i - 1] >= 0x20;
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && (b[j] & 0xc0) == 0x80) j--;
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(b + j, (utf8proc_ssize_t)(i - j), &cp);
    if (k != (utf8proc_ssize_t)(i - j) || cp < 0) return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return c != UTF8PROC_CATEGORY_ZS && c != UTF8PROC_CATEGORY_ZL && c != UTF8PROC_CATEGORY_ZP &&
           c != UTF8PROC_CATEGORY_CC;
}

/* Whether an added token (or the start of one) spans position i. */
static int added_spans(const tok_t *t, const uint8_t *b, size_t n, size_t i)
{
    if (t->nadded == 0) return 0;
    size_t j0 = i >= t->added_maxlen ? i - t->added_maxlen + 1 : 0;
    for (size_t j = j0; j < i; j++) {
        if (!t->added_first[b[j]]) continue;
        for (int k = 0; k < t->nadded; k++) {
            const tok_added_t *a = &t->added[k];
            size_t m = a->len < n - j ? a->len : n - j;
            if (!a->as_text && j + a->len > i && !memcmp(b + j, a->content, m)) return 1;
        }
    }
    return 0;
}

/* The last position where the buffer may be cut: before a space that
 * follows a solid character, with no added token across it; 0 if none. */
static size_t safe_cut(const tok_t *t, const uint8_t *b, size_t n)
{
    for (size_t i = n - 1; i > 0; i--)
        if (b[i] == ' ' && ends_solid(b, i) && !added_spans(t, b, n, i)) return i;
    return 0;
}

int tok_stream_feed(tok_stream_t *s, const char *buf, size_t n, tok_ids_t *out)
{
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 2 * STREAM_MIN;
        while (cap < s->n + n) cap *= 2;
        char *p = realloc(s->buf, cap);
        if (!p) return weft_error("out of memory: a document with no cut point in %zu bytes", cap);
        s->buf = p, s->cap = cap;
    }
    memcpy(s->buf + s->n, buf, n);
    s->n += n;
    if (s->n < STREAM_MIN) return 0;
    size_t cut = safe_cut(s->tok, (const uint8_t *)s->buf, s->n);
    if (cut == 0) return 0;
    if (tok_encode(s->tok, s->buf, cut, out) < 0) return -1;
    memmove(s->buf, s->buf + cut, s->n - cut);
    s->n -= cut;
    return 0;
}

int tok_stream_end(tok_stream_t *s, tok_ids_t *out)
{
    int rc = s->n ? tok_encode(s->tok, s->buf, s->n, out) : 0;
    s->n = 0;
    return rc;
}
