/* shardset.c: the weft-shards reader (see shardset.h): opens and validates
 * a shard file, maps rank r of R onto its shards, and reads training and
 * validation windows with hyperslab reads. */
#include "shards/shardset.h"
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shard_format.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct shardset_t {
    char *path;
    hid_t file;
    hid_t tokens[2], offsets[2]; /* indexed by shardset_split_t */
    hid_t mask[2];               /* loss_mask, or -1 when the file has none */
    char data_format[16], chat_template[16];
    int64_t ntok[2], ndoc[2];
    int64_t nshards;
    int64_t *bounds; /* nshards+1 token offsets into the train split */
    char tokenizer[32];
    int vocab, eot;
    char tok_sha[80]; /* "bpe": the tokenizer's SHA-256; else "" */
    int64_t seed;
    char sha[80];
    /* the selection: rank's shards, as starts and cumulative start counts */
    int rank, nranks, seq_len;
    int64_t nsel;
    int64_t *sel_start; /* nsel */
    int64_t *sel_cum;   /* nsel+1: window starts before each selected shard */
};

static const char *split_name[2] = {"train", "val"};

/* What HDF5's error stack says about the call that just failed: its deepest
 * description, and whether a checksum or a truncated file is to blame. */
typedef struct {
    char desc[200];
    int checksum, truncated;
} h5why_t;

static herr_t why_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5why_t *w = data;
    (void)n;
    if (!e->desc) return 0;
    if (strstr(e->desc, "Fletcher32") || strstr(e->desc, "checksum")) w->checksum = 1;
    if (strstr(e->desc, "truncated")) w->truncated = 1;
    snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    return 0;
}

static h5why_t h5_why(void)
{
    h5why_t w = {.desc = ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, why_cb, &w);
    return w;
}

/* Reads elements [start, start+n) of a 1-D dataset as memtype. */
static int read_range(shardset_t *self, hid_t d, const char *name, int64_t start, int64_t n,
                      hid_t memtype, void *out)
{
    if (n == 0) return 0;
    hsize_t off = (hsize_t)start, cnt = (hsize_t)n;
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
    if (st >= 0) st = H5Dread(d, memtype, ms, fs, H5P_DEFAULT, out);
    h5why_t w = st < 0 ? h5_why() : (h5why_t){.desc = ""};
    H5Sclose(ms);
    H5Sclose(fs);
    if (st >= 0) return 0;
    if (w.checksum)
        return weft_error("%s: checksum mismatch reading %s[%lld..%lld): the file is corrupt; "
                          "re-create or re-copy it",
                          self->path, name, (long long)start, (long long)(start + n));
    return weft_error("%s: cannot read %s[%lld..%lld) (%s): the file is damaged or truncated",
                      self->path, name, (long long)start, (long long)(start + n),
                      w.desc[0] ? w.desc : "HDF5 read error");
}

/* Opens a 1-D integer dataset of at most 8 bytes per element. */
static hid_t open_1d(shardset_t *self, const char *name, int64_t *len)
{
    if (!h5_path_exists(self->file, name)) {
        weft_error("%s: missing dataset %s: not a complete weft-shards file", self->path, name);
        return -1;
    }
    hid_t d = H5Dopen2(self->file, name, H5P_DEFAULT);
    if (d < 0) {
        weft_error("%s: cannot open dataset %s (damaged file?)", self->path, name);
        return -1;
    }
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    hsize_t dims = 0;
    int ok = H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) <= 8 &&
             H5Sget_simple_extent_ndims(s) == 1 && H5Sget_simple_extent_dims(s, &dims, NULL) == 1;
    H5Tclose(t);
    H5Sclose(s);
    if (!ok) {
        H5Dclose(d);
        weft_error("%s: dataset %s is not a 1-D integer array", self->path, name);
        return -1;
    }
    *len = (int64_t)dims;
    return d;
}

static int open_split(shardset_t *self, int split)
{
    char name[64];
    int64_t n, first = -1, last = -1;
    snprintf(name, sizeof name, "/%s/tokens", split_name[split]);
    if ((self->tokens[split] = open_1d(self, name, &self->ntok[split])) < 0) return -1;
    hid_t t = H5Dget_type(self->tokens[split]);
    size_t size = H5Tget_size(t);
    H5Tclose(t);
    if (size > 4)
        return weft_error("%s: %s has %zu-byte tokens; expected 2 or 4", self->path, name, size);
    snprintf(name, sizeof name, "/%s/loss_mask", split_name[split]);
    if (h5_path_exists(self->file, name)) {
        int64_t nmask;
        if ((self->mask[split] = open_1d(self, name, &nmask)) < 0) return -1;
        if (nmask != self->ntok[split])
            return weft_error("%s: %s holds %lld values for %lld tokens (corrupt file)",
                              self->path, name, (long long)nmask, (long long)self->ntok[split]);
    }
    snprintf(name, sizeof name, "/%s/doc_offsets", split_name[split]);
    if ((self->offsets[split] = open_1d(self, name, &n)) < 0) return -1;
    if (n < 1)
        return weft_error("%s: %s is empty; expected documents + 1 entries", self->path, name);
    self->ndoc[split] = n - 1;
    if (read_range(self, self->offsets[split], name, 0, 1, H5T_NATIVE_INT64, &first) < 0 ||
        read_range(self, self->offsets[split], name, n - 1, 1, H5T_NATIVE_INT64, &last) < 0)
        return -1;
    if (first != 0 || last != self->ntok[split])
        return weft_error("%s: %s runs from %lld to %lld but the split holds %lld tokens "
                          "(corrupt file)",
                          self->path, name, (long long)first, (long long)last,
                          (long long)self->ntok[split]);
    return 0;
}

static int open_shards(shardset_t *self)
{
    const char *name = "/train/shard_offsets";
    int64_t n;
    hid_t d = open_1d(self, name, &n);
    if (d < 0) return -1;
    int rc = 0;
    if (n < 2)
        rc = weft_error("%s: %s has %lld entries; expected shards + 1 >= 2", self->path, name,
                        (long long)n);
    if (rc == 0 && !(self->bounds = malloc((size_t)n * sizeof *self->bounds)))
        rc = weft_error("out of memory for %lld shard offsets", (long long)n);
    if (rc == 0) rc = read_range(self, d, name, 0, n, H5T_NATIVE_INT64, self->bounds);
    H5Dclose(d);
    if (rc < 0) return -1;
    self->nshards = n - 1;
    int ok = self->bounds[0] == 0 && self->bounds[n - 1] == self->ntok[SHARDSET_TRAIN];
    for (int64_t i = 1; ok && i < n; i++) ok = self->bounds[i] > self->bounds[i - 1];
    if (!ok)
        return weft_error("%s: %s is not increasing from 0 to the %lld training tokens (corrupt "
                          "file)",
                          self->path, name, (long long)self->ntok[SHARDSET_TRAIN]);
    return 0;
}

static int open_attrs(shardset_t *self)
{
    char format[64];
    hid_t r = self->file;
    if (!h5_attr_exists(r, "format"))
        return weft_error("%s is not a weft-shards file (no 'format' attribute); make one with "
                          "'weft shard'",
                          self->path);
    if (h5_attr_read_str(r, "format", format, sizeof format) < 0 || strcmp(format, SHARD_FORMAT))
        return weft_error("%s is not a weft-shards file (format is '%s'); make one with 'weft "
                          "shard'",
                          self->path, format);
    int64_t version, vocab;
    if (h5_attr_read_i64(r, "version", &version) < 0) return weft_error_prefix("%s", self->path);
    if (version != SHARD_VERSION)
        return weft_error("%s has weft-shards version %lld; this weft reads version %d: re-shard "
                          "it with this weft's 'weft shard'",
                          self->path, (long long)version, SHARD_VERSION);
    if (h5_attr_read_str(r, "tokenizer", self->tokenizer, sizeof self->tokenizer) < 0 ||
        h5_attr_read_i64(r, "vocab_size", &vocab) < 0 ||
        h5_attr_read_i64(r, "seed", &self->seed) < 0 ||
        h5_attr_read_str(r, "source_sha256", self->sha, sizeof self->sha) < 0)
        return weft_error_prefix("%s", self->path);
    if (!strcmp(self->tokenizer, SHARD_TOKENIZER_BYTE) && vocab == SHARD_BYTE_VOCAB)
        self->eot = SHARD_BYTE_EOT;
    else if (!strcmp(self->tokenizer, "gpt2") && vocab == 50257)
        self->eot = 50256;
    else if (!strcmp(self->tokenizer, SHARD_TOKENIZER_BPE)) {
        int64_t eot;
        if (h5_attr_read_str(r, "tokenizer_sha256", self->tok_sha, sizeof self->tok_sha) < 0 ||
            h5_attr_read_i64(r, "eot_id", &eot) < 0)
            return weft_error_prefix("%s", self->path);
        if (vocab < 1 || vocab > INT32_MAX || eot < 0 || eot >= vocab)
            return weft_error("%s: eot_id %lld is outside the vocabulary of %lld (corrupt file)",
                              self->path, (long long)eot, (long long)vocab);
        self->eot = (int)eot;
    } else
        return weft_error("%s: unknown tokenizer '%s' with vocab_size %lld (weft knows byte/257, "
                          "gpt2/50257 and bpe)",
                          self->path, self->tokenizer, (long long)vocab);
    self->vocab = (int)vocab;
    return 0;
}

shardset_t *shardset_new(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        weft_error("cannot open shard file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (H5Fis_hdf5(path) <= 0) {
        weft_error("%s is not an HDF5 file; make shard files with 'weft shard'", path);
        return NULL;
    }
    shardset_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        weft_error("out of memory");
        return NULL;
    }
    self->file = self->tokens[0] = self->tokens[1] = self->offsets[0] = self->offsets[1] = -1;
    self->mask[0] = self->mask[1] = -1;
    /* many ranks may open one file: shared locks, skipped where the file
     * system has none */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, 1, 1);
    self->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    h5why_t w = self->file < 0 ? h5_why() : (h5why_t){.desc = ""}; /* before the next call */
    H5Pclose(fapl);
    int rc = 0;
    if (self->file < 0) {
        rc = w.truncated ? weft_error("%s is truncated (%s); re-create or re-copy it", path, w.desc)
                         : weft_error("%s cannot be opened as HDF5 (%s): damaged file?", path,
                                      w.desc[0] ? w.desc : "unknown HDF5 error");
    }
    if (rc == 0) rc = open_attrs(self);
    if (rc == 0) rc = open_split(self, SHARDSET_TRAIN);
    if (rc == 0) rc = open_split(self, SHARDSET_VAL);
    if (rc == 0 && (self->mask[0] < 0) != (self->mask[1] < 0))
        rc = weft_error("%s has a loss_mask in one split only (corrupt file)", path);
    if (rc == 0 && h5_attr_exists(self->file, "data_format"))
        rc = h5_attr_read_str(self->file, "data_format", self->data_format,
                              sizeof self->data_format);
    if (rc == 0 && h5_attr_exists(self->file, "chat_template"))
        rc = h5_attr_read_str(self->file, "chat_template", self->chat_template,
                              sizeof self->chat_template);
    if (rc == 0) rc = open_shards(self);
    if (rc < 0) shardset_destroy(&self);
    return self;
}

void shardset_destroy(shardset_t **self_p)
{
    shardset_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < 2; i++) {
        if (self->tokens[i] >= 0) H5Dclose(self->tokens[i]);
        if (self->offsets[i] >= 0) H5Dclose(self->offsets[i]);
        if (self->mask[i] >= 0) H5Dclose(self->mask[i]);
    }
    if (self->file >= 0) H5Fclose(self->file);
    free(self->bounds);
    free(self->sel_start);
    free(self->sel_cum);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *shardset_path(shardset_t *self)
{
    return self->path;
}
const char *shardset_tokenizer(shardset_t *self)
{
    return self->tokenizer;
}
const char *shardset_tokenizer_sha256(shardset_t *self)
{
    return self->tok_sha;
}

int shardset_vocab_size(shardset_t *self)
{
    return self->vocab;
}
int shardset_eot(shardset_t *self)
{
    return self->eot;
}
int64_t shardset_seed(shardset_t *self)
{
    return self->seed;
}
const char *shardset_source_sha256(shardset_t *self)
{
    return self->sha;
}
int64_t shardset_tokens(shardset_t *self, shardset_split_t split)
{
    return self->ntok[split];
}
int64_t shardset_docs(shardset_t *self, shardset_split_t split)
{
    return self->ndoc[split];
}
int64_t shardset_shards(shardset_t *self)
{
    return self->nshards;
}
int64_t shardset_positions(shardset_t *self)
{
    return self->nsel ? self->sel_cum[self->nsel] : 0;
}

int shardset_shard_range(shardset_t *self, int64_t s, int64_t *start, int64_t *end)
{
    if (s < 0 || s >= self->nshards)
        return weft_error("%s: shard %lld does not exist (the file has %lld)", self->path,
                          (long long)s, (long long)self->nshards);
    *start = self->bounds[s];
    *end = self->bounds[s + 1];
    return 0;
}

int shardset_doc_range(shardset_t *self, shardset_split_t split, int64_t i, int64_t *start,
                       int64_t *end)
{
    if (i < 0 || i >= self->ndoc[split])
        return weft_error("%s: %s document %lld does not exist (the split has %lld)", self->path,
                          split_name[split], (long long)i, (long long)self->ndoc[split]);
    int64_t o[2];
    char name[64];
    snprintf(name, sizeof name, "/%s/doc_offsets", split_name[split]);
    if (read_range(self, self->offsets[split], name, i, 2, H5T_NATIVE_INT64, o) < 0) return -1;
    if (o[0] < 0 || o[1] <= o[0] || o[1] > self->ntok[split])
        return weft_error("%s: %s[%lld] is out of order (corrupt file)", self->path, name,
                          (long long)i);
    *start = o[0];
    *end = o[1];
    return 0;
}

int shardset_doc_offsets(shardset_t *self, shardset_split_t split, int64_t first, int64_t n,
                         int64_t *out)
{
    char name[64];
    snprintf(name, sizeof name, "/%s/doc_offsets", split_name[split]);
    if (first < 0 || n < 0 || first + n > self->ndoc[split] + 1)
        return weft_error("%s: %s[%lld..%lld) is outside its %lld entries", self->path, name,
                          (long long)first, (long long)(first + n),
                          (long long)self->ndoc[split] + 1);
    return read_range(self, self->offsets[split], name, first, n, H5T_NATIVE_INT64, out);
}

int shardset_read(shardset_t *self, shardset_split_t split, int64_t start, int64_t n, int32_t *out)
{
    char name[64];
    snprintf(name, sizeof name, "/%s/tokens", split_name[split]);
    if (start < 0 || n < 0 || start + n > self->ntok[split])
        return weft_error("%s: %s[%lld..%lld) is outside the %lld tokens", self->path, name,
                          (long long)start, (long long)(start + n), (long long)self->ntok[split]);
    if (read_range(self, self->tokens[split], name, start, n, H5T_NATIVE_INT32, out) < 0) return -1;
    for (int64_t i = 0; i < n; i++)
        if (out[i] < 0 || out[i] >= self->vocab)
            return weft_error("%s: token %d at %s[%lld] is outside the vocabulary of %d (corrupt "
                              "file)",
                              self->path, out[i], name, (long long)(start + i), self->vocab);
    return 0;
}

int shardset_select(shardset_t *self, int rank, int nranks, int seq_len)
{
    if (nranks < 1 || rank < 0 || rank >= nranks || seq_len < 1)
        return weft_error("%s: bad selection rank %d of %d, seq_len %d", self->path, rank, nranks,
                          seq_len);
    if (nranks > self->nshards)
        return weft_error("%s has %lld shards, fewer than the %d ranks; re-shard it with --shards "
                          "%d (or a multiple)",
                          self->path, (long long)self->nshards, nranks, nranks);
    int64_t n = (self->nshards - rank + nranks - 1) / nranks;
    int64_t *st = malloc((size_t)n * sizeof *st), *cum = malloc((size_t)(n + 1) * sizeof *cum);
    if (!st || !cum) {
        free(st);
        free(cum);
        return weft_error("out of memory selecting %lld shards", (long long)n);
    }
    int64_t longest = 0;
    cum[0] = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t s = rank + k * nranks, len = self->bounds[s + 1] - self->bounds[s];
        st[k] = self->bounds[s];
        cum[k + 1] = cum[k] + (len > seq_len ? len - seq_len : 0);
        if (len > longest) longest = len;
    }
    if (cum[n] == 0) {
        free(st);
        free(cum);
        return weft_error("%s: rank %d of %d gets shards of at most %lld tokens, too short for "
                          "one window of seq_len+1 = %d; use fewer shards or a shorter seq_len",
                          self->path, rank, nranks, (long long)longest, seq_len + 1);
    }
    free(self->sel_start);
    free(self->sel_cum);
    self->sel_start = st;
    self->sel_cum = cum;
    self->nsel = n;
    self->rank = rank;
    self->nranks = nranks;
    self->seq_len = seq_len;
    return 0;
}

void shardset_cursor_init(shardset_cursor_t *cursor, uint64_t seed)
{
    cursor->seed = seed;
    cursor->next = 0;
}

int64_t shardset_peek_start(shardset_t *self, const shardset_cursor_t *cursor)
{
    if (!self->nsel) return -1;
    /* window n of rank r: a hash of (seed, r, n), scaled onto the starts */
    uint64_t h = weft_mix64(
        weft_mix64(cursor->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(self->rank + 1))) +
        cursor->next * 0xd1b54a32d192ed03ULL);
    int64_t u = (int64_t)shard_scale(h, (uint64_t)self->sel_cum[self->nsel]);
    int64_t lo = 0, hi = self->nsel; /* last k with sel_cum[k] <= u */
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        if (self->sel_cum[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    return self->sel_start[lo] + (u - self->sel_cum[lo]);
}

int shardset_next_window(shardset_t *self, shardset_cursor_t *cursor, int32_t *tokens)
{
    if (!self->nsel)
        return weft_error("%s: call shardset_select before drawing windows", self->path);
    int64_t start = shardset_peek_start(self, cursor);
    if (shardset_read(self, SHARDSET_TRAIN, start, self->seq_len + 1, tokens) < 0) return -1;
    cursor->next++;
    return 0;
}

int64_t shardset_val_windows(shardset_t *self, int seq_len)
{
    int64_t n = self->ntok[SHARDSET_VAL];
    return seq_len < 1 || n < 1 ? 0 : (n - 1) / seq_len;
}

int shardset_val_window(shardset_t *self, int seq_len, int64_t i, int32_t *tokens)
{
    int64_t n = shardset_val_windows(self, seq_len);
    if (i < 0 || i >= n)
        return weft_error("%s: val window %lld does not exist (%lld windows of %d tokens)",
                          self->path, (long long)i, (long long)n, seq_len + 1);
    return shardset_read(self, SHARDSET_VAL, i * seq_len, seq_len + 1, tokens);
}

int shardset_has_mask(shardset_t *self)
{
    return self->mask[SHARDSET_TRAIN] >= 0;
}

const char *shardset_data_format(shardset_t *self)
{
    return self->data_format[0] ? self->data_format : "text";
}

const char *shardset_chat_template(shardset_t *self)
{
    return self->chat_template;
}

int shardset_read_mask(shardset_t *self, shardset_split_t split, int64_t start, int64_t n,
                       uint8_t *out)
{
    char name[64];
    snprintf(name, sizeof name, "/%s/loss_mask", split_name[split]);
    if (start < 0 || n < 0 || start + n > self->ntok[split])
        return weft_error("%s: %s[%lld..%lld) is outside the %lld tokens", self->path, name,
                          (long long)start, (long long)(start + n), (long long)self->ntok[split]);
    if (self->mask[split] < 0) {
        memset(out, 1, (size_t)n); /* raw text: every token is trained on */
        return 0;
    }
    if (read_range(self, self->mask[split], name, start, n, H5T_NATIVE_UINT8, out) < 0) return -1;
    for (int64_t i = 0; i < n; i++)
        if (out[i] > 1)
            return weft_error("%s: %s[%lld] is %d; a loss mask holds 0 or 1 (corrupt file)",
                              self->path, name, (long long)(start + i), out[i]);
    return 0;
}
