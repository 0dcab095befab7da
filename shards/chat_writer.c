/* chat_writer.c: the chat and completion writer (see chat_writer.h). */
#include "common/clock.h"
#include "shards/chat_writer.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "shards/shard_format.h"

#include <errno.h>
#include <hdf5.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHAT_MAX_INPUT ((size_t)1 << 34) /* 16 GiB a file */
#define MAX_MESSAGES 4096

typedef struct {
    chat_doc_t all;       /* every document's tokens and mask, one after another */
    int64_t *off;         /* ndocs + 1 */
    int64_t ndocs, capoff;
    int64_t bad;
} docs_t;

static int add_offset(docs_t *D)
{
    if (D->ndocs + 2 > D->capoff) {
        int64_t cap = D->capoff ? 2 * D->capoff : 1024;
        int64_t *p = realloc(D->off, (size_t)cap * sizeof *p);
        if (!p) return weft_error("out of memory indexing %lld documents", (long long)cap);
        D->off = p;
        D->capoff = cap;
    }
    D->off[++D->ndocs] = (int64_t)D->all.n;
    return 0;
}

/* A string member of o: the value, or NULL with why set. */
static const char *member(json_t *o, const char *key, size_t *len, const char **why)
{
    json_t *v = json_object_get(o, key);
    if (!v) return *why = "missing", NULL;
    if (!json_is_string(v)) return *why = "not a string", NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Renders one parsed line into D; a bad line sets field and why. */
static int render_line(const chat_shard_opts_t *o, json_t *v, docs_t *D, char *field,
                       size_t fsize, const char **why)
{
    const chat_tok_t *tok = o->tok;
    size_t start = D->all.n;
    if (!json_is_object(v)) {
        snprintf(field, fsize, "(line)");
        return *why = "not a JSON object; each line must be one {...}", 1;
    }
    if (o->completion) {
        size_t pl, cl;
        const char *p = member(v, "prompt", &pl, why), *c;
        if (!p) return snprintf(field, fsize, "prompt"), 1;
        if (!(c = member(v, "completion", &cl, why))) return snprintf(field, fsize, "completion"), 1;
        if (!cl) return snprintf(field, fsize, "completion"), *why = "empty answer", 1;
        if (chat_render_completion(tok, p, pl, c, cl, &D->all) < 0) return -1;
        return add_offset(D);
    }
    json_t *msgs = json_object_get(v, "messages");
    snprintf(field, fsize, "messages");
    if (!msgs) return *why = "missing", 1;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return *why = "not a non-empty array of messages", 1;
    size_t n = json_array_size(msgs);
    if (n > MAX_MESSAGES) return *why = "more than 4096 messages", 1;
    chat_msg_t m[MAX_MESSAGES];
    int answers = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(msgs, i);
        snprintf(field, fsize, "messages[%zu]", i);
        if (!json_is_object(e)) return *why = "not an object with role and content", 1;
        size_t rl;
        const char *role = member(e, "role", &rl, why);
        snprintf(field, fsize, "messages[%zu].role", i);
        if (!role) return 1;
        int r = chat_role_parse(role);
        if (r < 0) return *why = "unknown role: use system, user or assistant", 1;
        m[i].role = (chat_role_t)r;
        snprintf(field, fsize, "messages[%zu].content", i);
        if (!(m[i].content = member(e, "content", &m[i].len, why))) return 1;
        if (r == CHAT_ASSISTANT && m[i].len == 0) return *why = "empty answer", 1;
        answers += r == CHAT_ASSISTANT;
    }
    snprintf(field, fsize, "messages");
    if (!answers) return *why = "no assistant message: nothing to train on", 1;
    if (chat_render(o->tmpl, tok, m, (int)n, &D->all) < 0) {
        D->all.n = start;
        return -1;
    }
    return add_offset(D);
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int read_input(const chat_shard_opts_t *o, const char *path, docs_t *D, weft_sha256_t *sha,
                      int64_t *bytes)
{
    size_t len;
    char *buf = weft_read_file(path, CHAT_MAX_INPUT, &len);
    if (!buf) return weft_error_prefix("input %s", path);
    weft_sha256_update(sha, buf, len);
    *bytes += (int64_t)len;
    int64_t lineno = 0;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < len;) {
        char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        if (!is_blank(buf + at, end - at)) {
            json_error_t err;
            char field[64] = "(line)", detail[200];
            const char *why = NULL;
            json_t *v = json_loadb(buf + at, end - at, 0, &err);
            int bad = 0;
            if (!v) {
                snprintf(detail, sizeof detail, "not JSON (%s, column %d)", err.text, err.column);
                why = detail;
                bad = 1;
            } else {
                bad = render_line(o, v, D, field, sizeof field, &why);
                json_decref(v);
            }
            if (bad < 0) {
                rc = weft_error_prefix("%s:%lld", path, (long long)lineno);
            } else if (bad && o->skip_bad) {
                D->bad++;
            } else if (bad) {
                rc = weft_error("%s:%lld: %s: %s; fix the line or pass --skip-bad", path,
                                (long long)lineno, field, why);
            }
        }
        at = end + 1;
    }
    free(buf);
    return rc;
}

/* A 1-D chunked, shuffled, deflated, checksummed dataset holding n values
 * of memtype from buf, stored as filetype. */
static int write_1d(hid_t file, const char *name, hid_t filetype, hid_t memtype, const void *buf,
                    int64_t n, size_t chunk)
{
    hsize_t dims = (hsize_t)n, maxdims = H5S_UNLIMITED, ch = chunk;
    hid_t sp = H5Screate_simple(1, &dims, &maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &ch);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
    H5Pset_fletcher32(dcpl);
    hid_t d = H5Dcreate2(file, name, filetype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : 0;
    if (st == 0 && n > 0) st = H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return st < 0 ? weft_error("cannot write dataset %s", name) : 0;
}

/* Writes documents order[a..b) of D as split group g. */
static int write_split(hid_t f, const char *g, const docs_t *D, const int64_t *order, int64_t a,
                       int64_t b, int vocab, const int64_t *bounds, int64_t S, int64_t *trainable)
{
    int64_t ntok = 0;
    for (int64_t i = a; i < b; i++) ntok += D->off[order[i] + 1] - D->off[order[i]];
    int32_t *tok = malloc((size_t)(ntok ? ntok : 1) * sizeof *tok);
    uint8_t *mask = malloc((size_t)(ntok ? ntok : 1));
    int64_t *off = malloc((size_t)(b - a + 1) * sizeof *off);
    if (!tok || !mask || !off) {
        free(tok), free(mask), free(off);
        return weft_error("out of memory writing %s", g);
    }
    int64_t at = 0;
    *trainable = 0;
    for (int64_t i = a; i < b; i++) {
        int64_t s = D->off[order[i]], n = D->off[order[i] + 1] - s;
        off[i - a] = at;
        memcpy(tok + at, D->all.tok + s, (size_t)n * sizeof *tok);
        memcpy(mask + at, D->all.mask + s, (size_t)n);
        for (int64_t k = 0; k < n; k++) *trainable += mask[at + k];
        at += n;
    }
    off[b - a] = at;
    char name[64];
    hid_t grp = H5Gcreate2(f, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = grp < 0 ? weft_error("cannot create group %s", g) : 0;
    hid_t ttype = vocab <= 65536 ? H5T_STD_U16LE : H5T_STD_U32LE;
    snprintf(name, sizeof name, "%s/tokens", g);
    if (rc == 0)
        rc = write_1d(f, name, ttype, H5T_NATIVE_INT32, tok, ntok, SHARD_TOKEN_CHUNK);
    snprintf(name, sizeof name, "%s/loss_mask", g);
    if (rc == 0) rc = write_1d(f, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, mask, ntok, SHARD_TOKEN_CHUNK);
    snprintf(name, sizeof name, "%s/doc_offsets", g);
    if (rc == 0)
        rc = write_1d(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, off, b - a + 1, SHARD_OFFSET_CHUNK);
    snprintf(name, sizeof name, "%s/shard_offsets", g);
    if (rc == 0 && bounds)
        rc = write_1d(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, bounds, S + 1, SHARD_OFFSET_CHUNK);
    if (grp >= 0) H5Gclose(grp);
    free(tok), free(mask), free(off);
    return rc;
}

/* S shards of the training documents order[a..b), cut at document ends
 * nearest to equal token counts, each holding at least one document. */
static int plan_shards(const docs_t *D, const int64_t *order, int64_t a, int64_t b, int64_t S,
                       int64_t *bounds)
{
    int64_t nd = b - a;
    if (nd < S)
        return weft_error("%lld training documents cannot fill %lld shards; use --shards %lld or "
                          "fewer",
                          (long long)nd, (long long)S, (long long)(nd > 0 ? nd : 1));
    int64_t total = 0;
    for (int64_t i = a; i < b; i++) total += D->off[order[i] + 1] - D->off[order[i]];
    bounds[0] = 0;
    int64_t pos = 0, i = a;
    for (int64_t k = 1; k < S; k++) {
        int64_t goal = (int64_t)((double)total * (double)k / (double)S);
        /* take documents while the shard is short of its goal, leaving
         * enough documents for the shards after it */
        do {
            pos += D->off[order[i] + 1] - D->off[order[i]];
            i++;
        } while (pos < goal && b - i > S - k);
        bounds[k] = pos;
    }
    bounds[S] = total;
    return 0;
}

static int write_file(const chat_shard_opts_t *o, const docs_t *D, const int64_t *order,
                      int64_t nval, const char *sha, const char *path, chat_shard_stats_t *st)
{
    const shard_opts_t *b = o->base;
    int64_t *bounds = malloc((size_t)(b->shards + 1) * sizeof *bounds);
    if (!bounds) return weft_error("out of memory");
    int rc = plan_shards(D, order, nval, D->ndocs, b->shards, bounds);
    hid_t f = rc == 0 ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (rc == 0 && f < 0) rc = weft_error("cannot create %s", path);
    if (rc == 0 &&
        (h5_attr_write_str(f, "format", SHARD_FORMAT) < 0 ||
         h5_attr_write_i64(f, "version", SHARD_VERSION) < 0 ||
         h5_attr_write_str(f, "tokenizer", o->tok->name) < 0 ||
         (o->tok->sha256 && (h5_attr_write_str(f, "tokenizer_sha256", o->tok->sha256) < 0 ||
                             h5_attr_write_i64(f, "eot_id", o->tok->eot) < 0)) ||
         h5_attr_write_i64(f, "vocab_size", o->tok->vocab_size) < 0 ||
         h5_attr_write_i64(f, "seed", (int64_t)b->seed) < 0 ||
         h5_attr_write_str(f, "source_sha256", sha) < 0 ||
         h5_attr_write_f64(f, "val_fraction", b->val_fraction) < 0 ||
         h5_attr_write_str(f, "data_format", o->completion ? "completion" : "chat") < 0 ||
         (!o->completion && h5_attr_write_str(f, "chat_template", chat_template_name(o->tmpl)) < 0)))
        rc = weft_error("cannot write the attributes of %s", path);
    if (rc == 0)
        rc = write_split(f, "/val", D, order, 0, nval, o->tok->vocab_size, NULL, 0,
                         &st->trainable[1]);
    if (rc == 0)
        rc = write_split(f, "/train", D, order, nval, D->ndocs, o->tok->vocab_size, bounds,
                         b->shards, &st->trainable[0]);
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = weft_error("cannot close %s", path);
    free(bounds);
    return rc;
}

int chat_shard_write(const chat_shard_opts_t *o, chat_shard_stats_t *st)
{
    const shard_opts_t *b = o->base;
    double t0 = weft_clock();
    memset(st, 0, sizeof *st);
    if (b->shards < 1) return weft_error("--shards must be 1 or more");
    if (!(b->val_fraction >= 0 && b->val_fraction < 1))
        return weft_error("--val-fraction %g is outside [0,1)", b->val_fraction);
    if (!o->completion && chat_template_check(o->tmpl, o->tok) < 0) return -1;
    struct stat sb;
    if (stat(b->output, &sb) == 0 && !b->force)
        return weft_error("output %s exists; pass --force to replace it", b->output);
    docs_t D = {0};
    weft_sha256_t sha;
    weft_sha256_init(&sha);
    int rc = add_offset(&D); /* off[0] = 0 once ndocs is reset below */
    D.ndocs = 0;
    D.off[0] = 0;
    for (int i = 0; rc == 0 && i < b->ninputs; i++)
        rc = read_input(o, b->inputs[i], &D, &sha, &st->base.input_bytes);
    if (rc == 0 && D.ndocs == 0)
        rc = weft_error("no documents in the inputs%s", D.bad ? " (every line was bad)" : "");
    int64_t n = D.ndocs, nval = 0;
    int64_t *order = rc == 0 ? malloc((size_t)n * sizeof *order) : NULL;
    if (rc == 0 && !order) rc = weft_error("out of memory");
    if (rc == 0) {
        /* the seeded shuffle and split of weft shard (shard_writer.c) */
        uint64_t state = b->seed;
        for (int64_t i = 0; i < n; i++) order[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)shard_rand_below(&state, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        nval = b->val_fraction > 0 ? llround(b->val_fraction * (double)n) : 0;
        if (b->val_fraction > 0 && nval < 1) nval = 1;
        if (nval >= n)
            rc = weft_error("--val-fraction %g leaves no training document out of %lld; lower it",
                            b->val_fraction, (long long)n);
    }
    uint8_t dig[32];
    char hex[65], tmp[PATH_MAX];
    weft_sha256_final(&sha, dig);
    weft_sha256_hex(dig, hex);
    if (rc == 0 && snprintf(tmp, sizeof tmp, "%s.tmp.%ld", b->output, (long)getpid()) >=
                       (int)sizeof tmp)
        rc = weft_error("output path too long: %s", b->output);
    if (rc == 0) {
        rc = write_file(o, &D, order, nval, hex, tmp, st);
        if (rc == 0) rc = weft_fsync_path(tmp);
        if (rc == 0) rc = weft_rename_durable(tmp, b->output);
        if (rc < 0) unlink(tmp);
    }
    if (rc == 0) {
        st->base.docs[0] = n - nval;
        st->base.docs[1] = nval;
        for (int64_t i = 0; i < n; i++)
            st->base.tokens[i < nval] += D.off[order[i] + 1] - D.off[order[i]];
        st->base.shards = b->shards;
        st->base.seconds = weft_clock() - t0;
        memcpy(st->base.source_sha256, hex, sizeof hex);
        st->bad = D.bad;
    }
    free(order);
    free(D.off);
    chat_doc_free(&D.all);
    return rc;
}
