/* shard_writer.c: `weft shard`'s engine. Pass 1 reads every input once,
 * hashing it and recording where each document lies (16 bytes a document);
 * pass 2 reads the documents back in seeded shuffled order and streams their
 * byte tokens into chunked, compressed, checksummed HDF5 datasets. JSONL
 * documents are decoded once, in pass 1, into an unnamed spill file in the
 * output's folder, and pass 2 reads them from there.
 *
 * Token chunks are encoded here and stored with H5Dwrite_chunk: exactly
 * HDF5's shuffle -> deflate -> fletcher32 pipeline, so any HDF5 reader
 * decodes them, but twice as fast: with libdeflate when the build finds it,
 * else with zlib coding the all-but-empty high-byte plane as runs (Z_RLE).
 *
 * With a BPE tokenizer (--tokenizer), a pass between the two tokenizes every
 * document in input order, streaming (tokenizer.h), into a second unnamed
 * spill file of uint32 ids; pass 2 then reads documents' ids from there and
 * stores them as uint16 while the vocabulary fits, else uint32. */
#include "common/clock.h"
#include "shards/shard_writer.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "shards/shard_format.h"
#include "shards/shard_sha256.h"
#include "model/tok_h5.h"
#include "model/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "config.h"
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#define SHARD_LIBDEFLATE 1
#endif

#define READ_BLOCK   (1 << 20) /* pass 1 read size, bytes */
#define OFFSET_FLUSH (4 * SHARD_OFFSET_CHUNK)

/* Where one document lies: bytes [off, off+len) of the sources. For text
 * the sources are the inputs one after another (off is the input's base, the
 * sum of the sizes before it, plus the offset inside it); for JSONL, the
 * spill file of decoded documents. */
typedef struct {
    int64_t off, len;
} doc_t;

typedef struct {
    const char *path;
    int fd;
    int64_t size; /* bytes read in pass 1 */
    int64_t base; /* offset of its first byte in the sources */
} input_t;

/* Encodes token chunks as HDF5's filters would: the shuffled bytes (low
 * plane, then high plane) deflated into one zlib stream, then HDF5's
 * Fletcher32 of the compressed bytes appended little-endian. */
typedef struct {
#ifdef SHARD_LIBDEFLATE
    struct libdeflate_compressor *ld;
#endif
    z_stream z;
    int ready;
    uint8_t *plane; /* (width, SHARD_TOKEN_CHUNK) shuffled bytes */
    int width;      /* bytes a token: 2 (uint16) or 4 (uint32) */
    int rle;        /* zlib: code the planes above the first as runs (byte tokens) */
    uint8_t *out;
    size_t outcap;
} chunk_coder_t;

typedef struct {
    hid_t tokens, offsets;
    size_t chunk; /* token chunk length of this dataset */
    chunk_coder_t *coder;
    int64_t ntok, ndoc; /* dataset lengths */
    int64_t tok_done;   /* tokens written to the dataset */
    int64_t off_done;   /* offsets written to the dataset */
    int64_t tok_pos;    /* tokens emitted so far (buffered or written) */
    uint8_t *lo, *hi;   /* the chunk being filled, already shuffled: (width, chunk) */
    size_t ntokbuf;
    int64_t *offbuf;
    size_t noffbuf;
} split_out_t;

typedef struct {
    const shard_opts_t *o;
    input_t *in;
    int nin;
    input_t spill; /* JSONL: decoded documents */
    input_t *src;  /* pass 2 reads documents from src[0..nsrc) */
    int nsrc;
    doc_t *docs;
    int64_t ndocs, capdocs;
    int64_t nval;
    int64_t ntok[2];
    int64_t *bounds; /* S+1 shard offsets */
    weft_sha256_t sha;
    uint8_t *rbuf; /* READ_BLOCK bytes: text reads, JSONL spill writes */
    size_t nrbuf;
    char *lbuf; /* JSONL lines */
    size_t lcap;
    chunk_coder_t coder;
    hid_t file;
    tok_t *tok;     /* NULL: the byte tokenizer */
    int32_t eot;    /* end-of-document id */
    int64_t vocab;  /* vocabulary size */
    input_t tspill; /* BPE: every document's ids, uint32 */
    double t0, tlast;
    int64_t pdone, ptotal;
    const char *phase;
    int printed;
} writer_t;

/* ---- temporary file, removed on error and on SIGINT/SIGTERM/SIGHUP ---- */

static char tmp_path[PATH_MAX];
static volatile sig_atomic_t tmp_live;

static void on_signal(int sig)
{
    if (tmp_live) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSIGNALS (sizeof cleanup_signals / sizeof cleanup_signals[0])

/* ---- progress ---- */

static void progress_phase(writer_t *w, const char *phase, int64_t total)
{
    w->phase = phase;
    w->pdone = 0;
    w->ptotal = total;
}

static void progress_end(writer_t *w)
{
    if (w->printed) fputc('\n', stderr);
    w->printed = 0;
}

/* One line on stderr after the first two seconds: rewritten every second on
 * a terminal, a new line every ten seconds in a log. */
static void progress(writer_t *w, int64_t bytes)
{
    w->pdone += bytes;
    if (!w->o->progress) return;
    double t = weft_clock();
    int tty = isatty(2);
    if (t - w->t0 < 2.0 || t - w->tlast < (tty ? 1.0 : 10.0)) return;
    w->tlast = t;
    fprintf(stderr, "%sweft shard: %s %.0f of %.0f MB (%.0f%%), %.1f s%s", tty ? "\r" : "",
            w->phase, (double)w->pdone / 1e6, (double)w->ptotal / 1e6,
            w->ptotal ? 100.0 * (double)w->pdone / (double)w->ptotal : 100.0, t - w->t0,
            tty ? "" : "\n");
    w->printed = tty;
}

/* ---- pass 1: scan ---- */

static int add_doc(writer_t *w, doc_t d)
{
    if (w->ndocs == w->capdocs) {
        int64_t cap = w->capdocs ? 2 * w->capdocs : 4096;
        doc_t *p = realloc(w->docs, (size_t)cap * sizeof *p);
        if (!p) return weft_error("out of memory indexing %lld documents", (long long)cap);
        w->docs = p;
        w->capdocs = cap;
    }
    w->docs[w->ndocs++] = d;
    return 0;
}

static int add_text_doc(writer_t *w, int64_t base, int64_t start, int64_t end)
{
    if (end <= start) return 0; /* empty documents are skipped */
    return add_doc(w, (doc_t){.off = base + start, .len = end - start});
}

static ssize_t read_full(int fd, void *buf, size_t n)
{
    ssize_t r;
    do r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

/* A line holding only "---" (or "---\r") separates two documents. */
static int is_separator(const char head[4], int64_t linelen)
{
    return (linelen == 3 && !memcmp(head, "---", 3)) || (linelen == 4 && !memcmp(head, "---\r", 4));
}

/* Text: finds separator lines without ever holding a whole line. */
static int scan_text(writer_t *w, input_t *in)
{
    int64_t pos = 0, doc_start = 0, line_start = 0, linelen = 0;
    char head[4];
    for (;;) {
        ssize_t n = read_full(in->fd, w->rbuf, READ_BLOCK);
        if (n < 0) return weft_error("cannot read input %s: %s", in->path, strerror(errno));
        if (n == 0) break;
        shard_sha256_update(&w->sha, w->rbuf, (size_t)n);
        const uint8_t *b = w->rbuf;
        size_t i = 0;
        while (i < (size_t)n) {
            const uint8_t *nl = memchr(b + i, '\n', (size_t)n - i);
            size_t seg_end = nl ? (size_t)(nl - b) : (size_t)n;
            size_t seg = seg_end - i;
            if (linelen < 4) {
                size_t k = (size_t)(4 - linelen) < seg ? (size_t)(4 - linelen) : seg;
                memcpy(head + linelen, b + i, k);
            }
            linelen += (int64_t)seg;
            if (!nl) break;
            if (is_separator(head, linelen)) {
                if (add_text_doc(w, in->base, doc_start, line_start) < 0) return -1;
                doc_start = pos + (int64_t)seg_end + 1;
            }
            line_start = pos + (int64_t)seg_end + 1;
            linelen = 0;
            i = seg_end + 1;
        }
        pos += n;
        progress(w, n);
    }
    in->size = pos;
    if (linelen > 0 && is_separator(head, linelen)) {
        if (add_text_doc(w, in->base, doc_start, line_start) < 0) return -1;
        doc_start = pos;
    }
    return add_text_doc(w, in->base, doc_start, pos);
}

static int ensure_lbuf(writer_t *w, size_t n)
{
    if (n <= w->lcap) return 0;
    size_t cap = w->lcap ? w->lcap : READ_BLOCK;
    while (cap < n) cap *= 2;
    char *p = realloc(w->lbuf, cap);
    if (!p) return weft_error("out of memory for a %zu-byte line", n);
    w->lbuf = p;
    w->lcap = cap;
    return 0;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Parses one JSONL line and finds its document: the string member named by
 * --field. Returns the parsed value (caller frees) with *s, *n set. */
static json_t *parse_line(writer_t *w, const char *path, int64_t lineno, const char *line,
                          size_t len, const char **s, size_t *n)
{
    json_error_t err;
    json_t *v = json_loadb(line, len, JSON_ALLOW_NUL, &err);
    if (!v) {
        weft_error("%s:%lld: malformed JSON (%s, column %d); fix or remove the line", path,
                   (long long)lineno, err.text, err.column);
        return NULL;
    }
    json_t *f = json_is_object(v) ? json_object_get(v, w->o->field) : NULL;
    if (!json_is_object(v)) {
        weft_error("%s:%lld: the line is not a JSON object; each line must be one {...}", path,
                   (long long)lineno);
    } else if (!f) {
        weft_error("%s:%lld: no field '%s'; name the document's field with --field", path,
                   (long long)lineno, w->o->field);
    } else if (!json_is_string(f)) {
        weft_error("%s:%lld: field '%s' is not a string", path, (long long)lineno, w->o->field);
    } else {
        *s = json_string_value(f);
        *n = json_string_length(f);
        return v;
    }
    json_decref(v);
    return NULL;
}

static int spill_flush(writer_t *w)
{
    for (size_t done = 0; done < w->nrbuf;) {
        ssize_t r = write(w->spill.fd, w->rbuf + done, w->nrbuf - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return weft_error("cannot write decoded JSONL next to %s: %s", w->o->output,
                              strerror(errno));
        done += (size_t)r;
    }
    w->nrbuf = 0;
    return 0;
}

static int spill(writer_t *w, const char *s, size_t n)
{
    while (n > 0) {
        size_t k = READ_BLOCK - w->nrbuf < n ? READ_BLOCK - w->nrbuf : n;
        memcpy(w->rbuf + w->nrbuf, s, k);
        w->nrbuf += k, s += k, n -= k;
        if (w->nrbuf == READ_BLOCK && spill_flush(w) < 0) return -1;
    }
    return 0;
}

static int jsonl_line(writer_t *w, input_t *in, int64_t lineno, const char *line, size_t len)
{
    if (is_blank(line, len)) return 0;
    const char *s;
    size_t n;
    json_t *v = parse_line(w, in->path, lineno, line, len, &s, &n);
    if (!v) return -1;
    int rc = 0;
    if (n > 0) { /* empty documents are skipped */
        rc = add_doc(w, (doc_t){.off = w->spill.size, .len = (int64_t)n});
        if (rc == 0) rc = spill(w, s, n);
        w->spill.size += (int64_t)n;
    }
    json_decref(v);
    return rc;
}

/* JSONL: whole lines are gathered in lbuf (a line must fit in memory). */
static int scan_jsonl(writer_t *w, input_t *in)
{
    size_t start = 0, end = 0, scan = 0;
    int64_t pos = 0; /* file offset of lbuf[0] */
    int64_t lineno = 0;
    int eof = 0;
    if (ensure_lbuf(w, READ_BLOCK) < 0) return -1;
    for (;;) {
        char *nl = scan < end ? memchr(w->lbuf + scan, '\n', end - scan) : NULL;
        if (nl || (eof && start < end)) {
            size_t stop = nl ? (size_t)(nl - w->lbuf) : end;
            if (jsonl_line(w, in, ++lineno, w->lbuf + start, stop - start) < 0) return -1;
            start = scan = nl ? stop + 1 : end;
            continue;
        }
        if (eof) break;
        if (start > 0) {
            memmove(w->lbuf, w->lbuf + start, end - start);
            pos += (int64_t)start;
            end -= start;
            start = 0;
        }
        scan = end;
        if (end == w->lcap && ensure_lbuf(w, 2 * w->lcap) < 0) return -1;
        ssize_t n = read_full(in->fd, w->lbuf + end,
                              w->lcap - end < READ_BLOCK ? w->lcap - end : READ_BLOCK);
        if (n < 0) return weft_error("cannot read input %s: %s", in->path, strerror(errno));
        if (n == 0) {
            eof = 1;
            continue;
        }
        shard_sha256_update(&w->sha, w->lbuf + end, (size_t)n);
        end += (size_t)n;
        progress(w, n);
    }
    in->size = pos + (int64_t)end;
    return 0;
}

static int open_inputs(writer_t *w, int64_t *total)
{
    *total = 0;
    for (int i = 0; i < w->nin; i++) {
        input_t *in = &w->in[i];
        in->path = w->o->inputs[i];
        /* O_NONBLOCK: a FIFO is refused below instead of blocking the open. */
        in->fd = open(in->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (in->fd < 0) return weft_error("cannot open input %s: %s", in->path, strerror(errno));
        struct stat st;
        if (fstat(in->fd, &st) < 0)
            return weft_error("cannot stat input %s: %s", in->path, strerror(errno));
        if (S_ISDIR(st.st_mode))
            return weft_error("input %s is a folder; pass the files in it", in->path);
        if (!S_ISREG(st.st_mode))
            return weft_error("input %s is not a regular file (weft shard reads inputs twice); "
                              "save it to a file first",
                              in->path);
        fcntl(in->fd, F_SETFL, fcntl(in->fd, F_GETFL) & ~O_NONBLOCK);
        posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        *total += st.st_size;
    }
    return 0;
}

/* An unnamed file in the output's folder (named and at once unlinked where
 * O_TMPFILE is not supported): it vanishes with the process. */
static int spill_open(writer_t *w, input_t *sp, const char *what, const char *suffix)
{
    char dir[PATH_MAX], name[PATH_MAX + 8];
    weft_dirname(w->o->output, dir, sizeof dir);
    sp->path = what;
    sp->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (sp->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        snprintf(name, sizeof name, "%s%s", tmp_path, suffix);
        sp->fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        if (sp->fd >= 0) unlink(name);
    }
    if (sp->fd < 0)
        return weft_error("cannot create a temporary file in %s: %s", dir, strerror(errno));
    return 0;
}

static int scan_inputs(writer_t *w)
{
    int64_t total;
    if (open_inputs(w, &total) < 0) return -1;
    if (w->o->format == SHARD_INPUT_JSONL &&
        spill_open(w, &w->spill, "the decoded JSONL documents (a temporary file)", ".docs") < 0)
        return -1;
    progress_phase(w, "reading", total);
    weft_sha256_init(&w->sha);
    int64_t base = 0;
    for (int i = 0; i < w->nin; i++) {
        w->in[i].base = base;
        int rc =
            w->o->format == SHARD_INPUT_JSONL ? scan_jsonl(w, &w->in[i]) : scan_text(w, &w->in[i]);
        if (rc < 0) return -1;
        base += w->in[i].size;
    }
    progress_end(w);
    if (w->o->format == SHARD_INPUT_JSONL) {
        if (spill_flush(w) < 0) return -1;
        w->src = &w->spill, w->nsrc = 1;
    } else {
        w->src = w->in, w->nsrc = w->nin;
    }
    if (w->ndocs == 0)
        return weft_error("empty corpus: no documents in the %d input%s (%s); give non-empty "
                          "inputs",
                          w->nin, w->nin == 1 ? "" : "s",
                          w->o->format == SHARD_INPUT_JSONL ? "every line is blank or its "
                                                              "field is empty"
                                                            : "every input is empty");
    return 0;
}

/* ---- BPE: tokenize every document, in input order, into the token spill ---- */

static int write_all(writer_t *w, input_t *out, const void *buf, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = write(out->fd, (const char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return weft_error("cannot write %s next to %s: %s", out->path, w->o->output,
                              strerror(errno));
        done += (size_t)r;
    }
    return 0;
}

static input_t *source_of(writer_t *w, int64_t off);
static int pread_full(input_t *in, void *buf, size_t n, int64_t off);

/* Each document's ids go to the token spill (uint32, native order); the
 * document then names its ids there: off and len count tokens. */
static int tokenize_docs(writer_t *w)
{
    if (spill_open(w, &w->tspill, "the token ids (a temporary file)", ".ids") < 0) return -1;
    tok_stream_t *st = tok_stream_new(w->tok);
    tok_ids_t ids = {0};
    int64_t total = 0, pos = 0;
    for (int64_t i = 0; i < w->ndocs; i++) total += w->docs[i].len;
    progress_phase(w, "tokenizing", total);
    int rc = st ? 0 : -1;
    for (int64_t i = 0; rc == 0 && i < w->ndocs; i++) {
        doc_t *d = &w->docs[i];
        input_t *in = source_of(w, d->off);
        int64_t off = d->off - in->base, count = 0;
        for (int64_t done = 0; rc == 0 && done <= d->len;) {
            size_t k = d->len - done < READ_BLOCK ? (size_t)(d->len - done) : READ_BLOCK;
            ids.n = 0;
            if (k == 0)
                rc = tok_stream_end(st, &ids);
            else if ((rc = pread_full(in, w->rbuf, k, off + done)) == 0)
                rc = tok_stream_feed(st, (const char *)w->rbuf, k, &ids);
            if (rc == 0) rc = write_all(w, &w->tspill, ids.v, ids.n * sizeof *ids.v);
            count += (int64_t)ids.n;
            if (k == 0) break;
            done += (int64_t)k;
            progress(w, (int64_t)k);
        }
        if (rc < 0) weft_error_prefix("%s", in->path);
        *d = (doc_t){.off = pos, .len = count};
        pos += count;
    }
    progress_end(w);
    tok_ids_free(&ids);
    tok_stream_destroy(&st);
    return rc;
}

/* ---- split, shuffle, shard plan ---- */

/* Shuffles all documents (Fisher-Yates from --seed); the first nval are the
 * validation split: nval = max(1, round(F*N)) when F > 0, else 0. */
static int split_docs(writer_t *w)
{
    int64_t n = w->ndocs;
    uint64_t state = w->o->seed;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)shard_rand_below(&state, (uint64_t)i + 1);
        doc_t t = w->docs[i];
        w->docs[i] = w->docs[j];
        w->docs[j] = t;
    }
    double f = w->o->val_fraction;
    w->nval = f > 0 ? llround(f * (double)n) : 0;
    if (f > 0 && w->nval < 1) w->nval = 1;
    if (w->nval >= n)
        return weft_error("--val-fraction %g leaves no training document out of %lld; lower it "
                          "or add documents",
                          f, (long long)n);
    w->ntok[0] = w->ntok[1] = 0;
    for (int64_t i = 0; i < n; i++) w->ntok[i >= w->nval ? 0 : 1] += w->docs[i].len + 1;
    return 0;
}

/* Shard k's ideal start is floor(k*T/S). It moves to the nearest document
 * boundary when that lies within T/(4S) tokens and every shard keeps at
 * least 2 tokens (one window of 2); otherwise it stays at the ideal. */
static int plan_shards(writer_t *w)
{
    int64_t s = w->o->shards, t = w->ntok[0];
    if (s > t / 2)
        return weft_error("--shards %lld is too many: the %lld training tokens make at most %lld "
                          "shards of 2 tokens or more; lower --shards or add data",
                          (long long)s, (long long)t, (long long)(t / 2));
    w->bounds = malloc((size_t)(s + 1) * sizeof *w->bounds);
    if (!w->bounds) return weft_error("out of memory for %lld shard offsets", (long long)s);
    int64_t tol = t / (4 * s), j = w->nval, pos = 0;
    w->bounds[0] = 0;
    for (int64_t k = 1; k < s; k++) {
        int64_t ideal = (int64_t)((__int128)k * t / s);
        int64_t next = (int64_t)((__int128)(k + 1) * t / s);
        while (j < w->ndocs && pos + w->docs[j].len + 1 <= ideal) pos += w->docs[j++].len + 1;
        int64_t lo = pos, hi = j < w->ndocs ? pos + w->docs[j].len + 1 : t;
        int64_t first = ideal - lo <= hi - ideal ? lo : hi, second = first == lo ? hi : lo;
        int64_t pick = ideal, prev = w->bounds[k - 1];
        int64_t cand[2] = {first, second};
        for (int c = 0; c < 2; c++) {
            int64_t d = cand[c] > ideal ? cand[c] - ideal : ideal - cand[c];
            if (d <= tol && cand[c] >= prev + 2 && cand[c] <= next - 2) {
                pick = cand[c];
                break;
            }
        }
        w->bounds[k] = pick;
    }
    w->bounds[s] = t;
    return 0;
}

/* ---- pass 2: write ---- */

static hid_t make_dataset(hid_t loc, const char *name, hid_t type, int64_t n, hsize_t chunk)
{
    /* fixed size, except an empty split: a chunk needs a non-zero extent */
    hsize_t dims = (hsize_t)n, maxdims = n > 0 ? dims : H5S_UNLIMITED;
    if (chunk > dims && dims > 0) chunk = dims;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 1);
    H5Pset_fletcher32(dcpl);
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    /* writes are whole chunks in order: no cache needed */
    H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, dapl);
    H5Pclose(dapl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (d < 0) weft_error("cannot create dataset %s in %s", name, tmp_path);
    return d;
}

static int write_range(hid_t d, hid_t memtype, int64_t start, size_t n, const void *buf)
{
    if (n == 0) return 0;
    hsize_t off = (hsize_t)start, cnt = n;
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
    herr_t st = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return st < 0 ? weft_error("cannot write to %s (disk full?)", tmp_path) : 0;
}

static int coder_init(chunk_coder_t *c)
{
#ifdef SHARD_LIBDEFLATE
    if (!(c->ld = libdeflate_alloc_compressor(1)))
        return weft_error("cannot initialise libdeflate");
#endif
    if (deflateInit(&c->z, 1) != Z_OK) return weft_error("cannot initialise zlib");
    c->ready = 1;
    c->outcap = deflateBound(&c->z, 4 * SHARD_TOKEN_CHUNK) + 1024;
    c->plane = calloc(4, SHARD_TOKEN_CHUNK);
    c->out = malloc(c->outcap);
    return c->plane && c->out ? 0 : weft_error("out of memory for the chunk coder");
}

static void coder_free(chunk_coder_t *c)
{
#ifdef SHARD_LIBDEFLATE
    if (c->ld) libdeflate_free_compressor(c->ld);
#endif
    if (c->ready) deflateEnd(&c->z);
    free(c->plane);
    free(c->out);
}

/* HDF5's Fletcher32 (H5_checksum_fletcher32): sums of big-endian 16-bit
 * words, folded every 360 words, an odd last byte as a high byte. */
static uint32_t fletcher32(const uint8_t *p, size_t len)
{
    uint32_t s1 = 0, s2 = 0;
    for (size_t words = len / 2; words > 0;) {
        size_t n = words > 360 ? 360 : words;
        words -= n;
        for (; n > 0; n--, p += 2) {
            s1 += (uint32_t)p[0] << 8 | p[1];
            s2 += s1;
        }
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if (len % 2) {
        s1 += (uint32_t)p[0] << 8;
        s2 += s1;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return s2 << 16 | s1;
}

/* Encodes the shuffled chunk in c->plane, (width, chunk) bytes holding n
 * tokens then zeros, and stores it as the chunk starting at token start. */
static int write_token_chunk(chunk_coder_t *c, hid_t d, size_t n, size_t chunk, int64_t start)
{
    size_t w = (size_t)c->width;
    for (size_t k = 0; k < w; k++) memset(c->plane + k * chunk + n, 0, chunk - n);
    size_t size;
#ifdef SHARD_LIBDEFLATE
    size = libdeflate_zlib_compress(c->ld, c->plane, w * chunk, c->out, c->outcap - 4);
    if (size == 0) return weft_error("libdeflate failed to compress a token chunk of %s", tmp_path);
#else
    z_stream *z = &c->z;
    int ok = deflateReset(z) == Z_OK && deflateParams(z, 1, Z_DEFAULT_STRATEGY) == Z_OK;
    z->next_out = c->out;
    z->avail_out = (uInt)(c->outcap - 4);
    for (size_t k = 0; ok && k < w; k++) {
        if (k == 1 && c->rle) ok = deflateParams(z, 1, Z_RLE) == Z_OK;
        z->next_in = c->plane + k * chunk;
        z->avail_in = (uInt)chunk;
        int last = k + 1 == w;
        ok = ok && deflate(z, last ? Z_FINISH : Z_NO_FLUSH) == (last ? Z_STREAM_END : Z_OK) &&
             z->avail_in == 0;
    }
    if (!ok) return weft_error("zlib failed to compress a token chunk of %s", tmp_path);
    size = z->total_out;
#endif
    uint32_t sum = fletcher32(c->out, size);
    for (int i = 0; i < 4; i++) c->out[size + (size_t)i] = (uint8_t)(sum >> (8 * i));
    hsize_t off = (hsize_t)start;
    if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, &off, size + 4, c->out) < 0)
        return weft_error("cannot write to %s (disk full?)", tmp_path);
    memset(c->plane + chunk, 0, (w - 1) * chunk); /* the next chunk's high bytes start at zero */
    return 0;
}

static int flush_tokens(split_out_t *so)
{
    if (so->ntokbuf == 0) return 0;
    if (write_token_chunk(so->coder, so->tokens, so->ntokbuf, so->chunk, so->tok_done) < 0)
        return -1;
    so->tok_done += (int64_t)so->ntokbuf;
    so->ntokbuf = 0;
    return 0;
}

static int flush_offsets(split_out_t *so)
{
    if (write_range(so->offsets, H5T_NATIVE_INT64, so->off_done, so->noffbuf, so->offbuf) < 0)
        return -1;
    so->off_done += (int64_t)so->noffbuf;
    so->noffbuf = 0;
    return 0;
}

static int push_offset(split_out_t *so)
{
    so->offbuf[so->noffbuf++] = so->tok_pos;
    return so->noffbuf == OFFSET_FLUSH ? flush_offsets(so) : 0;
}

/* Byte tokens: byte b is token b, so its low byte is b and its high byte
 * 0; the end-of-document token 256 has low byte 0 and high byte 1. The
 * shuffled chunk gets the low bytes in lo, the high bytes in hi (zeroed). */
static int push_bytes(split_out_t *so, const uint8_t *inp, size_t n)
{
    while (n > 0) {
        size_t k = so->chunk - so->ntokbuf;
        if (k > n) k = n;
        memcpy(so->lo + so->ntokbuf, inp, k);
        so->ntokbuf += k;
        so->tok_pos += (int64_t)k;
        inp += k;
        n -= k;
        if (so->ntokbuf == so->chunk && flush_tokens(so) < 0) return -1;
    }
    return 0;
}

/* BPE ids: byte k of each id goes to plane k of the shuffled chunk. */
static int push_ids(split_out_t *so, const uint32_t *ids, size_t n)
{
    int width = so->coder->width;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < width; k++)
            so->lo[(size_t)k * so->chunk + so->ntokbuf] = (uint8_t)(ids[i] >> (8 * k));
        so->ntokbuf++;
        so->tok_pos++;
        if (so->ntokbuf == so->chunk && flush_tokens(so) < 0) return -1;
    }
    return 0;
}

static int push_eot(split_out_t *so, int32_t eot)
{
    uint32_t id = (uint32_t)eot;
    return push_ids(so, &id, 1);
}

static input_t *source_of(writer_t *w, int64_t off)
{
    int lo = 0, hi = w->nsrc; /* last source whose base <= off */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (w->src[mid].base <= off)
            lo = mid;
        else
            hi = mid;
    }
    return &w->src[lo];
}

static int pread_full(input_t *in, void *buf, size_t n, int64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(in->fd, (char *)buf + got, n - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return weft_error("cannot read %s: %s", in->path, strerror(errno));
        if (r == 0) return weft_error("%s shrank while being sharded; run again", in->path);
        got += (size_t)r;
    }
    return 0;
}

static int emit_doc(writer_t *w, split_out_t *so, const doc_t *d)
{
    if (w->tok) { /* d is ids [off, off+len) of the token spill */
        const int64_t per = READ_BLOCK / 4;
        for (int64_t done = 0; done < d->len;) {
            int64_t k = d->len - done < per ? d->len - done : per;
            if (pread_full(&w->tspill, w->rbuf, (size_t)k * 4, (d->off + done) * 4) < 0 ||
                push_ids(so, (const uint32_t *)w->rbuf, (size_t)k) < 0)
                return -1;
            done += k;
        }
        progress(w, d->len);
        return push_eot(so, w->eot);
    }
    input_t *in = source_of(w, d->off);
    int64_t off = d->off - in->base;
    for (int64_t done = 0; done < d->len;) {
        size_t k = d->len - done < READ_BLOCK ? (size_t)(d->len - done) : READ_BLOCK;
        if (pread_full(in, w->rbuf, k, off + done) < 0 || push_bytes(so, w->rbuf, k) < 0) return -1;
        done += (int64_t)k;
    }
    progress(w, d->len);
    return push_eot(so, SHARD_BYTE_EOT);
}

/* Writes one split: its tokens and doc_offsets, documents docs[a..b). */
static int write_split(writer_t *w, const char *group, int split, int64_t a, int64_t b,
                       int64_t *offbuf)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(w->file, group, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) return weft_error("cannot create group %s in %s", group, tmp_path);
    split_out_t so = {.ntok = w->ntok[split], .ndoc = b - a, .offbuf = offbuf, .coder = &w->coder};
    so.chunk = so.ntok < SHARD_TOKEN_CHUNK ? (size_t)so.ntok : SHARD_TOKEN_CHUNK;
    so.lo = w->coder.plane;
    so.hi = w->coder.plane + so.chunk;
    memset(so.hi, 0, (size_t)(w->coder.width - 1) * so.chunk);
    so.tokens = make_dataset(g, "tokens", w->coder.width == 4 ? H5T_STD_U32LE : H5T_STD_U16LE,
                             so.ntok, SHARD_TOKEN_CHUNK);
    so.offsets = so.tokens < 0 ? -1
                               : make_dataset(g, "doc_offsets", H5T_STD_I64LE, so.ndoc + 1,
                                              SHARD_OFFSET_CHUNK);
    int rc = so.offsets < 0 ? -1 : 0;
    for (int64_t i = a; rc == 0 && i < b; i++)
        rc = push_offset(&so) < 0 || emit_doc(w, &so, &w->docs[i]) < 0 ? -1 : 0;
    if (rc == 0)
        rc = push_offset(&so) < 0 || flush_tokens(&so) < 0 || flush_offsets(&so) < 0 ? -1 : 0;
    if (rc == 0 && (so.tok_done != so.ntok || so.off_done != so.ndoc + 1))
        rc = weft_error("internal error: %s holds %lld tokens, planned %lld", group,
                        (long long)so.tok_done, (long long)so.ntok);
    if (rc == 0 && split == 0) {
        hid_t sd =
            make_dataset(g, "shard_offsets", H5T_STD_I64LE, w->o->shards + 1, SHARD_OFFSET_CHUNK);
        rc =
            sd < 0 ? -1 : write_range(sd, H5T_NATIVE_INT64, 0, (size_t)w->o->shards + 1, w->bounds);
        if (sd >= 0) H5Dclose(sd);
    }
    if (so.offsets >= 0) H5Dclose(so.offsets);
    if (so.tokens >= 0) H5Dclose(so.tokens);
    H5Gclose(g);
    return rc;
}

static int write_attrs(writer_t *w, const char *sha)
{
    hid_t r = w->file;
    if (w->tok && (h5_attr_write_str(r, "tokenizer_sha256", tok_sha256(w->tok)) < 0 ||
                   h5_attr_write_i64(r, "eot_id", w->eot) < 0))
        return weft_error_prefix("%s", tmp_path);
    if (h5_attr_write_str(r, "format", SHARD_FORMAT) < 0 ||
        h5_attr_write_i64(r, "version", SHARD_VERSION) < 0 ||
        h5_attr_write_str(r, "tokenizer", w->tok ? SHARD_TOKENIZER_BPE : SHARD_TOKENIZER_BYTE) <
            0 ||
        h5_attr_write_i64(r, "vocab_size", w->vocab) < 0 ||
        h5_attr_write_i64(r, "seed", (int64_t)w->o->seed) < 0 ||
        h5_attr_write_str(r, "source_sha256", sha) < 0 ||
        h5_attr_write_f64(r, "val_fraction", w->o->val_fraction) < 0)
        return weft_error_prefix("%s", tmp_path);
    return 0;
}

static int write_file(writer_t *w, const char *sha)
{
    int64_t *offbuf = malloc(OFFSET_FLUSH * sizeof *offbuf);
    int rc = -1;
    if (!offbuf) {
        weft_error("out of memory for write buffers");
        goto done;
    }
    if (coder_init(&w->coder) < 0) goto done;
    w->coder.width = w->vocab > 65536 ? 4 : 2;
    w->coder.rle = !w->tok;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0);
    tmp_live = 1; /* from now on a signal removes the file */
    w->file = H5Fcreate(tmp_path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (w->file < 0) {
        weft_error("cannot create %s (is its folder writable?)", tmp_path);
        goto done;
    }
    int64_t total = 0;
    for (int64_t i = 0; i < w->ndocs; i++) total += w->docs[i].len;
    progress_phase(w, "writing", total);
    for (int i = 0; i < w->nsrc; i++) posix_fadvise(w->src[i].fd, 0, 0, POSIX_FADV_RANDOM);
    if (w->tok) posix_fadvise(w->tspill.fd, 0, 0, POSIX_FADV_RANDOM);
    if (write_attrs(w, sha) < 0 || write_split(w, "/val", 1, 0, w->nval, offbuf) < 0 ||
        write_split(w, "/train", 0, w->nval, w->ndocs, offbuf) < 0)
        goto done;
    herr_t st = H5Fclose(w->file);
    w->file = -1;
    if (st < 0) {
        weft_error("cannot finish writing %s (disk full?)", tmp_path);
        goto done;
    }
    rc = 0;
done:
    progress_end(w);
    free(offbuf);
    return rc;
}

/* ---- the whole run ---- */

/* --tokenizer: a tokenizer.json, a folder, or a weft-model file (whose
 * tokenizer may be the byte one); the end-of-text id from --eos or the
 * tokenizer's added tokens. */
static int open_tokenizer(writer_t *w)
{
    const shard_opts_t *o = w->o;
    w->vocab = SHARD_BYTE_VOCAB;
    w->eot = SHARD_BYTE_EOT;
    if (!o->tokenizer) {
        if (o->eos) return weft_error("--eos needs --tokenizer (the byte tokenizer ends with 256)");
        return 0;
    }
    struct stat st;
    if (stat(o->tokenizer, &st) == 0 && S_ISREG(st.st_mode) && H5Fis_hdf5(o->tokenizer) > 0) {
        char kind[16], sha[65];
        if (tok_h5_info(o->tokenizer, kind, sha) < 0) return -1;
        if (!strcmp(kind, TOK_KIND_BYTE)) {
            if (o->eos)
                return weft_error("--eos: model %s uses the byte tokenizer, whose end is 256",
                                  o->tokenizer);
            return 0;
        }
        if (strcmp(kind, TOK_KIND_BPE))
            return weft_error("model %s names the %s tokenizer but carries none; give its "
                              "tokenizer.json (or vocab.json + merges.txt) with --tokenizer",
                              o->tokenizer, kind);
    }
    if (!(w->tok = tok_load(o->tokenizer))) return -1;
    w->vocab = tok_vocab_size(w->tok);
    w->eot = o->eos ? tok_id(w->tok, o->eos) : tok_eot(w->tok);
    if (w->eot < 0 && o->eos)
        return weft_error("--eos '%s' is not a token of %s", o->eos, o->tokenizer);
    if (w->eot < 0)
        return weft_error("%s has no end-of-text token among its added tokens (<|endoftext|>, "
                          "<|end_of_text|>, </s>, <eos>); name one with --eos TOKEN",
                          o->tokenizer);
    tok_added_as_text(w->tok, w->eot); /* the one end-of-text id is the writer's */
    return 0;
}

static int check_output(const shard_opts_t *o)
{
    char dir[PATH_MAX];
    struct stat st;
    weft_dirname(o->output, dir, sizeof dir);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return weft_error("cannot write %s: folder %s does not exist; create it first", o->output,
                          dir);
    if (stat(o->output, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return weft_error("output %s is a folder", o->output);
        if (!o->force) return weft_error("output %s exists; pass --force to replace it", o->output);
    }
    int n = snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%ld", o->output, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp_path)
        return weft_error("output path too long: %s", o->output);
    return 0;
}

static int check_opts(const shard_opts_t *o)
{
    if (o->ninputs < 1) return weft_error("no input files; give at least one INPUT");
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return weft_error("--val-fraction %g is outside [0,1)", o->val_fraction);
    if (o->shards < 1) return weft_error("--shards %lld: need at least 1", (long long)o->shards);
    if (o->seed > (uint64_t)INT64_MAX) return weft_error("--seed must be below 2^63");
    if (o->format == SHARD_INPUT_JSONL && (!o->field || !*o->field))
        return weft_error("--field must name the JSON member holding each document");
    return 0;
}

int shard_write(const shard_opts_t *o, shard_stats_t *stats)
{
    if (check_opts(o) < 0 || check_output(o) < 0) return -1;
    writer_t w = {.o = o, .nin = o->ninputs, .file = -1, .spill.fd = -1, .tspill.fd = -1};
    w.t0 = w.tlast = weft_clock();
    w.in = calloc((size_t)o->ninputs, sizeof *w.in);
    w.rbuf = malloc(READ_BLOCK);
    for (int i = 0; w.in && i < o->ninputs; i++) w.in[i].fd = -1;
    struct sigaction old[NSIGNALS], sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIGNALS; i++) sigaction(cleanup_signals[i], &sa, &old[i]);

    uint8_t digest[32];
    char sha[65];
    int rc = !w.in || !w.rbuf ? weft_error("out of memory") : 0;
    if (rc == 0) rc = open_tokenizer(&w);
    if (rc == 0) rc = scan_inputs(&w);
    if (rc == 0 && w.tok) rc = tokenize_docs(&w);
    if (rc == 0) {
        weft_sha256_final(&w.sha, digest);
        weft_sha256_hex(digest, sha);
        rc = split_docs(&w);
    }
    if (rc == 0) rc = plan_shards(&w);
    if (rc == 0) rc = write_file(&w, sha);
    if (rc == 0) rc = weft_fsync_path(tmp_path);
    if (rc == 0) rc = weft_rename_durable(tmp_path, o->output);
    if (rc == 0) tmp_live = 0;

    if (w.file >= 0) H5Fclose(w.file);
    if (tmp_live) {
        unlink(tmp_path);
        tmp_live = 0;
    }
    for (size_t i = 0; i < NSIGNALS; i++) sigaction(cleanup_signals[i], &old[i], NULL);
    if (rc == 0 && stats) {
        int64_t bytes = 0;
        for (int i = 0; i < w.nin; i++) bytes += w.in[i].size;
        *stats = (shard_stats_t){.docs = {w.ndocs - w.nval, w.nval},
                                 .vocab = w.vocab,
                                 .eot = w.eot,
                                 .tokens = {w.ntok[0], w.ntok[1]},
                                 .shards = o->shards,
                                 .input_bytes = bytes,
                                 .seconds = weft_clock() - w.t0};
        memcpy(stats->source_sha256, sha, sizeof sha);
    }
    for (int i = 0; w.in && i < w.nin; i++)
        if (w.in[i].fd >= 0) close(w.in[i].fd);
    if (w.spill.fd >= 0) close(w.spill.fd);
    if (w.tspill.fd >= 0) close(w.tspill.fd);
    tok_destroy(&w.tok);
    free(w.in);
    free(w.rbuf);
    free(w.lbuf);
    free(w.docs);
    free(w.bounds);
    coder_free(&w.coder);
    return rc;
}
