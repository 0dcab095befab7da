/* docpack.c: rows of whole documents (see docpack.h), on the reader's
 * public functions: the train split's document offsets are held in memory
 * (8 bytes a document), tokens and masks read per document. */
#include "shards/docpack.h"
#include "common/log.h"
#include "shards/shard_format.h"

#include <stdlib.h>
#include <string.h>

struct docpack {
    shardset_t *s;
    int T, rank;
    int64_t *toff;  /* train doc_offsets, ndoc + 1 */
    int64_t ndoc;
    int64_t nsel;   /* rank's shards */
    int64_t *d0;    /* first document of each selected shard */
    int64_t *cum;   /* nsel + 1: documents before each selected shard */
    int64_t *vrow;  /* val rows + 1: first val document of each row */
    int64_t nvrow;
    int64_t skipped;
    int32_t *tok;   /* T + 1 */
    uint8_t *mask;  /* T + 1 */
};

/* First document starting at or after token p (toff is increasing). */
static int64_t doc_at(const int64_t *off, int64_t ndoc, int64_t p)
{
    int64_t lo = 0, hi = ndoc;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (off[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Positions a document of m tokens takes in a row of T. */
static int64_t slots(int64_t m, int T)
{
    return m - 1 < T ? m - 1 : T;
}

static int plan_val(docpack_t *self)
{
    int64_t n = shardset_docs(self->s, SHARDSET_VAL);
    int64_t *off = malloc((size_t)(n + 1) * sizeof *off);
    self->vrow = malloc((size_t)(n + 1) * sizeof *self->vrow);
    if (!off || !self->vrow) {
        free(off);
        return weft_error("out of memory for %lld validation documents", (long long)n);
    }
    if (shardset_doc_offsets(self->s, SHARDSET_VAL, 0, n + 1, off) < 0) {
        free(off);
        return -1;
    }
    int64_t used = 0;
    self->nvrow = 0;
    for (int64_t d = 0; d < n; d++) {
        int64_t k = slots(off[d + 1] - off[d], self->T);
        if (k < 1) continue; /* a lone end of text trains nothing */
        if (self->nvrow == 0 || used + k > self->T) {
            self->vrow[self->nvrow++] = d;
            used = 0;
        }
        used += k;
    }
    self->vrow[self->nvrow] = n;
    free(off);
    return 0;
}

docpack_t *docpack_new(shardset_t *s, int rank, int nranks, int T)
{
    docpack_t *self = calloc(1, sizeof *self);
    if (!self) return weft_error("out of memory"), NULL;
    self->s = s;
    self->T = T;
    self->rank = rank;
    self->ndoc = shardset_docs(s, SHARDSET_TRAIN);
    int64_t S = shardset_shards(s);
    int rc = 0;
    if (T < 1 || nranks < 1 || rank < 0 || rank >= nranks)
        rc = weft_error("%s: bad rows of %d tokens for rank %d of %d", shardset_path(s), T, rank,
                        nranks);
    else if (nranks > S)
        rc = weft_error("%s has %lld shards, fewer than the %d ranks; re-shard it with --shards "
                        "%d (or a multiple)",
                        shardset_path(s), (long long)S, nranks, nranks);
    self->nsel = rc == 0 ? (S - rank + nranks - 1) / nranks : 0;
    self->toff = malloc((size_t)(self->ndoc + 1) * sizeof *self->toff);
    self->d0 = malloc((size_t)(self->nsel + 1) * sizeof *self->d0);
    self->cum = malloc((size_t)(self->nsel + 1) * sizeof *self->cum);
    self->tok = malloc(((size_t)T + 1) * sizeof *self->tok);
    self->mask = malloc((size_t)T + 1);
    if (rc == 0 && (!self->toff || !self->d0 || !self->cum || !self->tok || !self->mask))
        rc = weft_error("out of memory for %lld document offsets", (long long)self->ndoc);
    if (rc == 0) rc = shardset_doc_offsets(s, SHARDSET_TRAIN, 0, self->ndoc + 1, self->toff);
    if (rc == 0) self->cum[0] = 0;
    for (int64_t k = 0; rc == 0 && k < self->nsel; k++) {
        int64_t a, b;
        if (shardset_shard_range(s, rank + k * nranks, &a, &b) < 0) {
            rc = -1;
            break;
        }
        self->d0[k] = doc_at(self->toff, self->ndoc, a);
        int64_t d1 = doc_at(self->toff, self->ndoc, b);
        if (self->toff[self->d0[k]] != a || (d1 < self->ndoc && self->toff[d1] != b))
            rc = weft_error("%s: shard %lld does not start and end on document boundaries; "
                            "shard chat data with weft shard --format chat|completion",
                            shardset_path(s), (long long)(rank + k * nranks));
        self->cum[k + 1] = self->cum[k] + (d1 - self->d0[k]);
    }
    if (rc == 0 && self->cum[self->nsel] == 0)
        rc = weft_error("%s: rank %d of %d gets no training document", shardset_path(s), rank,
                        nranks);
    if (rc == 0) rc = plan_val(self);
    if (rc < 0) docpack_destroy(&self);
    return self;
}

void docpack_destroy(docpack_t **self_p)
{
    docpack_t *self = *self_p;
    if (!self) return;
    free(self->toff);
    free(self->d0);
    free(self->cum);
    free(self->vrow);
    free(self->tok);
    free(self->mask);
    free(self);
    *self_p = NULL;
}

int64_t docpack_skipped(const docpack_t *self)
{
    return self->skipped;
}

int64_t docpack_val_rows(const docpack_t *self)
{
    return self->nvrow;
}

/* Document of draw n: a hash of (seed, rank, n) scaled onto rank's documents. */
static int64_t draw(const docpack_t *self, const shardset_cursor_t *c)
{
    uint64_t h = weft_mix64(
        weft_mix64(c->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(self->rank + 1))) +
        c->next * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL);
    int64_t u = (int64_t)shard_scale(h, (uint64_t)self->cum[self->nsel]);
    int64_t lo = 0, hi = self->nsel; /* last k with cum[k] <= u */
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (self->cum[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    return self->d0[lo] + (u - self->cum[lo]);
}

/* Puts the document at tokens [start, start+m) of split at row position
 * used: returns the positions taken, or 0 when none of them is trained. */
static int64_t put(docpack_t *self, shardset_split_t split, int64_t start, int64_t m, int used,
                   int *in, int *tg, int *pos)
{
    int64_t k = slots(m, self->T);
    if (k < 1) return 0;
    if (shardset_read(self->s, split, start, k + 1, self->tok) < 0 ||
        shardset_read_mask(self->s, split, start, k + 1, self->mask) < 0)
        return -1;
    int64_t trained = 0;
    for (int64_t i = 1; i <= k; i++) trained += self->mask[i];
    if (!trained) return 0;
    for (int64_t i = 0; i < k; i++) {
        in[used + i] = self->tok[i];
        tg[used + i] = self->mask[i + 1] ? self->tok[i + 1] : -1;
        pos[used + i] = (int)i;
    }
    return k;
}

static void pad(const docpack_t *self, int used, int *in, int *tg, int *pos)
{
    int eot = shardset_eot(self->s);
    for (int t = used; t < self->T; t++) {
        in[t] = eot;
        tg[t] = -1;
        pos[t] = t - used;
    }
}

int docpack_next_row(docpack_t *self, shardset_cursor_t *cursor, int *in, int *tg, int *pos)
{
    int used = 0;
    int64_t misses = 0, limit = 4 * self->cum[self->nsel] + 1000;
    while (used < self->T) {
        int64_t d = draw(self, cursor), s = self->toff[d], m = self->toff[d + 1] - s;
        if (used > 0 && slots(m, self->T) > self->T - used) break; /* starts the next row */
        int64_t k = put(self, SHARDSET_TRAIN, s, m, used, in, tg, pos);
        if (k < 0) return -1;
        cursor->next++;
        if (k == 0) {
            self->skipped++;
            if (++misses > limit)
                return weft_error("%s: no document of rank %d's shards has a trainable token "
                                  "within seq_len %d",
                                  shardset_path(self->s), self->rank, self->T);
            continue;
        }
        misses = 0;
        used += (int)k;
    }
    pad(self, used, in, tg, pos);
    return 0;
}

int docpack_val_row(docpack_t *self, int64_t i, int *in, int *tg, int *pos)
{
    if (i < 0 || i >= self->nvrow)
        return weft_error("%s: val row %lld does not exist (%lld rows of %d tokens)",
                          shardset_path(self->s), (long long)i, (long long)self->nvrow, self->T);
    int64_t n = self->vrow[i + 1] - self->vrow[i], off[2];
    int used = 0;
    for (int64_t d = self->vrow[i]; d < self->vrow[i] + n; d++) {
        if (shardset_doc_offsets(self->s, SHARDSET_VAL, d, 2, off) < 0) return -1;
        int64_t k = put(self, SHARDSET_VAL, off[0], off[1] - off[0], used, in, tg, pos);
        if (k < 0) return -1;
        used += (int)k;
    }
    pad(self, used, in, tg, pos);
    return 0;
}

/* in, tg from a window of T+1 tokens at start of split, masked. */
static int window(docpack_t *self, shardset_split_t split, int64_t start, int *in, int *tg,
                  int *pos)
{
    if (shardset_read(self->s, split, start, self->T + 1, self->tok) < 0 ||
        shardset_read_mask(self->s, split, start, self->T + 1, self->mask) < 0)
        return -1;
    for (int t = 0; t < self->T; t++) {
        in[t] = self->tok[t];
        tg[t] = self->mask[t + 1] ? self->tok[t + 1] : -1;
        pos[t] = t;
    }
    return 0;
}

int docpack_stream_row(docpack_t *self, shardset_cursor_t *cursor, int *in, int *tg, int *pos)
{
    int64_t start = shardset_peek_start(self->s, cursor);
    if (start < 0)
        return weft_error("%s: call shardset_select before drawing windows",
                          shardset_path(self->s));
    if (window(self, SHARDSET_TRAIN, start, in, tg, pos) < 0) return -1;
    cursor->next++;
    return 0;
}

int docpack_stream_val_row(docpack_t *self, int64_t i, int *in, int *tg, int *pos)
{
    if (i < 0 || i >= shardset_val_windows(self->s, self->T))
        return weft_error("%s: val window %lld does not exist", shardset_path(self->s),
                          (long long)i);
    return window(self, SHARDSET_VAL, i * self->T, in, tg, pos);
}
