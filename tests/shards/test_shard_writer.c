/* test_shard_writer.c: `weft shard` end to end: every document's bytes come
 * back, the split and shuffle are seeded and byte-identical, shard offsets
 * follow their rule, bad input fails cleanly, h5dump reads the output. */
#include "tests/check_main.h"
#include "tests/shards/testutil.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "shards/shard_format.h"
#include "shards/shard_sha256.h"

#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A random document of 1..max bytes over all 256 values, ending in '\n'
 * and holding no line that is a separator. */
static size_t random_doc(uint64_t *st, uint8_t *buf, size_t max)
{
    size_t n = 1 + shard_rand_below(st, max);
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t r = shard_rand_below(st, 10);
        buf[i] = r < 2 ? '\n' : r < 4 ? '-' : (uint8_t)shard_rand_below(st, 256);
    }
    buf[n - 1] = '\n';
    /* break any line that reads exactly "---" or "---\r" */
    for (size_t i = 0; i + 3 < n; i++) {
        int line_start = i == 0 || buf[i - 1] == '\n';
        if (line_start && !memcmp(buf + i, "---", 3) &&
            (buf[i + 3] == '\n' || (buf[i + 3] == '\r' && i + 4 < n && buf[i + 4] == '\n')))
            buf[i] = '+';
    }
    return n;
}

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void put_bytes(buf_t *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n);
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_str(buf_t *b, const char *s)
{
    put_bytes(b, s, strlen(s));
}

/* Five text inputs exercising every separator rule; fills expect. */
static void make_text_corpus(tu_docs_t *expect, char **inputs)
{
    uint64_t st = 11;
    uint8_t doc[600];
    buf_t f = {0};
    /* a.txt: documents split by "---\n", "---\r\n", an empty document
     * (skipped) and a final "---" without a newline */
    const char *seps[] = {"---\n", "---\r\n", "---\n---\n", "---\n"};
    for (int i = 0; i < 40; i++) {
        size_t n = random_doc(&st, doc, sizeof doc);
        tu_docs_add(expect, doc, n);
        put_bytes(&f, doc, n);
        put_str(&f, seps[i % 4]);
    }
    put_str(&f, "---");
    tu_put("a.txt", f.p, f.n);
    /* b.txt: one document without a final newline; "----", " ---" and
     * "--- " lines are not separators */
    const char *b = "first line\n----\n ---\n--- \nlast line, no newline";
    tu_docs_add(expect, b, strlen(b));
    tu_put("b.txt", b, strlen(b));
    /* c.txt: empty, no documents */
    tu_put("c.txt", "", 0);
    /* d.txt: a separator first, then one document */
    const char *d = "---\nonly after the separator\n";
    tu_docs_add(expect, d + 4, strlen(d) - 4);
    tu_put("d.txt", d, strlen(d));
    /* e.txt: many small documents */
    f.n = 0;
    for (int i = 0; i < 60; i++) {
        size_t n = random_doc(&st, doc, 40);
        tu_docs_add(expect, doc, n);
        put_bytes(&f, doc, n);
        put_str(&f, "---\n");
    }
    tu_put("e.txt", f.p, f.n);
    free(f.p);
    const char *names[] = {"a.txt", "b.txt", "c.txt", "d.txt", "e.txt"};
    for (int i = 0; i < 5; i++) inputs[i] = strdup(tu_path(names[i]));
}

static void free_inputs(char **inputs, int n)
{
    for (int i = 0; i < n; i++) free(inputs[i]);
}

static void read_all(const char *path, tu_docs_t *got, int64_t *ndocs)
{
    shardset_t *ss = shardset_new(path);
    ck_assert_msg(ss != NULL, "%s", weft_last_error());
    tu_docs_read(ss, SHARDSET_TRAIN, got);
    tu_docs_read(ss, SHARDSET_VAL, got);
    ndocs[0] = shardset_docs(ss, SHARDSET_TRAIN);
    ndocs[1] = shardset_docs(ss, SHARDSET_VAL);
    shardset_destroy(&ss);
    ck_assert_ptr_null(ss);
}

START_TEST(roundtrip_text)
{
    tu_docs_t expect = {0}, got = {0};
    char *inputs[5];
    make_text_corpus(&expect, inputs);
    shard_opts_t o = tu_opts(tu_path("out.h5"), inputs, 5);
    o.val_fraction = 0.2;
    o.shards = 3;
    shard_stats_t st;
    ck_assert_msg(shard_write(&o, &st) == 0, "%s", weft_last_error());
    int64_t n[2];
    read_all(o.output, &got, n);
    tu_docs_assert_same(&expect, &got);
    /* val = max(1, round(F*N)) documents; stats agree with the file */
    ck_assert_int_eq(n[1], llround(0.2 * (double)expect.n));
    ck_assert_int_eq(n[0] + n[1], expect.n);
    ck_assert_int_eq(st.docs[0], n[0]);
    ck_assert_int_eq(st.docs[1], n[1]);
    tu_docs_free(&expect);
    tu_docs_free(&got);
    free_inputs(inputs, 5);
}
END_TEST

/* Appends one JSON string unit: its escaped text and its decoded bytes. */
static void json_unit(uint64_t *st, buf_t *json, buf_t *bytes)
{
    static const struct {
        const char *json, *bytes;
        size_t nbytes;
    } units[] = {
        {"\\n", "\n", 1},
        {"\\\"", "\"", 1},
        {"\\\\", "\\", 1},
        {"\\t", "\t", 1},
        {"\\u0000", "\0", 1},
        {"\\u00e9", "\xc3\xa9", 2},
        {"\xc3\xa9", "\xc3\xa9", 2},
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80", 4},
        {"\\/", "/", 1},
        {"---", "---", 3},
    };
    uint64_t r = shard_rand_below(st, 30);
    if (r < 10) {
        put_str(json, units[r].json);
        put_bytes(bytes, units[r].bytes, units[r].nbytes);
    } else {
        char c = (char)(' ' + 1 + shard_rand_below(st, 94)); /* printable, not space */
        if (c == '"' || c == '\\') c = 'q';
        put_bytes(json, &c, 1);
        put_bytes(bytes, &c, 1);
    }
}

START_TEST(roundtrip_jsonl)
{
    tu_docs_t expect = {0}, got = {0};
    uint64_t st = 3;
    buf_t f = {0}, doc = {0};
    for (int i = 0; i < 80; i++) {
        doc.n = 0;
        put_str(&f, "{\"id\": 1, \"text\": \"not this\", \"body\": \"");
        size_t units = 1 + shard_rand_below(&st, 200);
        for (size_t k = 0; k < units; k++) json_unit(&st, &f, &doc);
        put_str(&f, i % 3 ? "\"}\n" : "\"}\r\n");
        if (i % 7 == 0) put_str(&f, "\n   \n"); /* blank lines are skipped */
        tu_docs_add(&expect, doc.p, doc.n);
    }
    put_str(&f, "{\"body\": \"\"}\n"); /* an empty document is skipped */
    put_str(&f, "{\"body\": \"last line without a newline\"}");
    tu_docs_add(&expect, "last line without a newline", 27);
    tu_put("in.jsonl", f.p, f.n);
    char *inputs[] = {strdup(tu_path("in.jsonl"))};
    shard_opts_t o = tu_opts(tu_path("out.h5"), inputs, 1);
    o.format = SHARD_INPUT_JSONL;
    o.field = "body";
    o.val_fraction = 0.1;
    ck_assert_msg(shard_write(&o, NULL) == 0, "%s", weft_last_error());
    int64_t n[2];
    read_all(o.output, &got, n);
    tu_docs_assert_same(&expect, &got);
    ck_assert_int_eq(n[1], llround(0.1 * (double)expect.n));
    tu_docs_free(&expect);
    tu_docs_free(&got);
    free(f.p);
    free(doc.p);
    free(inputs[0]);
}
END_TEST

/* source_sha256 is the SHA-256 of the inputs' bytes concatenated in order;
 * the root attributes hold the contract's values. */
START_TEST(attributes_and_source_hash)
{
    tu_docs_t expect = {0};
    char *inputs[5];
    make_text_corpus(&expect, inputs);
    shard_opts_t o = tu_opts(tu_path("out.h5"), inputs, 5);
    o.seed = 1234567;
    o.val_fraction = 0.25;
    shard_stats_t st;
    ck_assert_int_eq(shard_write(&o, &st), 0);
    weft_sha256_t h;
    uint8_t d[32];
    char hex[65];
    weft_sha256_init(&h);
    for (int i = 0; i < 5; i++) {
        size_t n;
        uint8_t *b = tu_get(inputs[i], &n);
        weft_sha256_update(&h, b, n);
        free(b);
    }
    weft_sha256_final(&h, d);
    weft_sha256_hex(d, hex);
    ck_assert_str_eq(st.source_sha256, hex);
    hid_t f = H5Fopen(o.output, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    char s[128];
    int64_t v;
    double x;
    ck_assert_int_eq(h5_attr_read_str(f, "format", s, sizeof s), 0);
    ck_assert_str_eq(s, "weft-shards");
    ck_assert_int_eq(h5_attr_read_i64(f, "version", &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(h5_attr_read_str(f, "tokenizer", s, sizeof s), 0);
    ck_assert_str_eq(s, "byte");
    ck_assert_int_eq(h5_attr_read_i64(f, "vocab_size", &v), 0);
    ck_assert_int_eq(v, 257);
    ck_assert_int_eq(h5_attr_read_i64(f, "seed", &v), 0);
    ck_assert_int_eq(v, 1234567);
    ck_assert_int_eq(h5_attr_read_f64(f, "val_fraction", &x), 0);
    ck_assert(x == 0.25);
    ck_assert_int_eq(h5_attr_read_str(f, "source_sha256", s, sizeof s), 0);
    ck_assert_str_eq(s, hex);
    /* tokens are uint16, offsets int64, all chunked with the three filters */
    const char *sets[] = {"/train/tokens", "/val/tokens", "/train/doc_offsets", "/val/doc_offsets",
                          "/train/shard_offsets"};
    for (int i = 0; i < 5; i++) {
        hid_t ds = H5Dopen2(f, sets[i], H5P_DEFAULT);
        ck_assert_int_ge(ds, 0);
        hid_t t = H5Dget_type(ds), p = H5Dget_create_plist(ds);
        ck_assert(H5Tequal(t, i < 2 ? H5T_STD_U16LE : H5T_STD_I64LE) > 0);
        ck_assert_int_eq(H5Pget_layout(p), H5D_CHUNKED);
        int nf = H5Pget_nfilters(p), have = 0;
        for (int k = 0; k < nf; k++) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            H5Z_filter_t id = H5Pget_filter2(p, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL);
            have |= id == H5Z_FILTER_DEFLATE ? 1 : id == H5Z_FILTER_FLETCHER32 ? 2 : 0;
        }
        ck_assert_msg(have == 3, "%s lacks deflate or fletcher32", sets[i]);
        H5Pclose(p);
        H5Tclose(t);
        H5Dclose(ds);
    }
    H5Fclose(f);
    tu_docs_free(&expect);
    free_inputs(inputs, 5);
}
END_TEST

START_TEST(deterministic)
{
    tu_docs_t expect = {0};
    char *inputs[5];
    make_text_corpus(&expect, inputs);
    shard_opts_t o = tu_opts(tu_path("one.h5"), inputs, 5);
    o.val_fraction = 0.3;
    o.shards = 4;
    o.seed = 9;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    o.output = tu_path("two.h5");
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    o.output = tu_path("seed10.h5");
    o.seed = 10;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    size_t n1, n2, n3;
    uint8_t *a = tu_get(tu_path("one.h5"), &n1), *b = tu_get(tu_path("two.h5"), &n2),
            *c = tu_get(tu_path("seed10.h5"), &n3);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(!memcmp(a, b, n1), "same inputs and seed gave different bytes");
    ck_assert_msg(n1 != n3 || memcmp(a, c, n1), "another seed gave the same file");
    /* another seed: same documents, another order and split */
    tu_docs_t d9 = {0}, d10 = {0};
    int64_t k9[2], k10[2];
    read_all(tu_path("one.h5"), &d9, k9);
    read_all(tu_path("seed10.h5"), &d10, k10);
    int64_t same_pos = 0;
    for (int64_t i = 0; i < d9.n; i++)
        same_pos += d9.len[i] == d10.len[i] && !memcmp(d9.data[i], d10.data[i], d9.len[i]);
    ck_assert_int_lt(same_pos, d9.n / 4);
    tu_docs_assert_same(&d9, &d10);
    free(a);
    free(b);
    free(c);
    tu_docs_free(&d9);
    tu_docs_free(&d10);
    tu_docs_free(&expect);
    free_inputs(inputs, 5);
}
END_TEST

static int64_t *read_bounds(const char *path, int64_t *nshards)
{
    shardset_t *ss = shardset_new(path);
    ck_assert_msg(ss != NULL, "%s", weft_last_error());
    *nshards = shardset_shards(ss);
    int64_t *b = malloc((size_t)(*nshards + 1) * sizeof *b);
    for (int64_t s = 0; s < *nshards; s++)
        ck_assert_int_eq(shardset_shard_range(ss, s, &b[s], &b[s + 1]), 0);
    shardset_destroy(&ss);
    return b;
}

/* 100 documents of 100 tokens: every shard boundary lands on a document
 * boundary near k*T/S. One document of 1001 tokens: boundaries are exactly
 * floor(k*T/S). S = T/2 works, S = T/2 + 1 is refused. */
START_TEST(shard_offsets_rule)
{
    char *one[] = {strdup(tu_path("many.txt"))};
    buf_t f = {0};
    for (int i = 0; i < 100; i++) {
        char doc[128];
        memset(doc, 'a' + i % 26, 98);
        doc[98] = '\n';
        put_bytes(&f, doc, 99);
        put_str(&f, "---\n");
    }
    tu_put("many.txt", f.p, f.n);
    shard_opts_t o = tu_opts(tu_path("many.h5"), one, 1);
    o.shards = 7;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    int64_t ns, *b = read_bounds(o.output, &ns);
    ck_assert_int_eq(ns, 7);
    ck_assert_int_eq(b[0], 0);
    ck_assert_int_eq(b[7], 10000);
    for (int k = 1; k < 7; k++) {
        ck_assert_int_eq(b[k] % 100, 0);
        ck_assert_int_le(llabs(b[k] - (int64_t)k * 10000 / 7), 10000 / 28);
    }
    free(b);

    char *big[] = {strdup(tu_path("big.txt"))};
    char text[1000];
    memset(text, 'z', sizeof text);
    tu_put("big.txt", text, sizeof text);
    o = tu_opts(tu_path("big.h5"), big, 1);
    o.shards = 4;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    b = read_bounds(o.output, &ns);
    int64_t want[] = {0, 250, 500, 750, 1001};
    for (int k = 0; k <= 4; k++) ck_assert_int_eq(b[k], want[k]);
    free(b);
    o.shards = 500;
    o.force = 1;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    b = read_bounds(o.output, &ns);
    for (int k = 0; k < 500; k++) ck_assert_int_ge(b[k + 1] - b[k], 2);
    free(b);
    o.shards = 501;
    ck_assert_int_eq(shard_write(&o, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "--shards 501"));
    free(f.p);
    free(one[0]);
    free(big[0]);
}
END_TEST

/* Rank r of R owns shards r, r+R, ...: over all ranks every window start
 * is counted once (disjoint, complete), and each rank's windows lie inside
 * one of its own shards. */
START_TEST(rank_split_invariants)
{
    tu_docs_t expect = {0};
    char *inputs[5];
    make_text_corpus(&expect, inputs);
    shard_opts_t o = tu_opts(tu_path("out.h5"), inputs, 5);
    o.shards = 6;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    shardset_t *ss = shardset_new(o.output);
    ck_assert_ptr_nonnull(ss);
    const int L = 8;
    int64_t all = 0, b[7];
    for (int s = 0; s < 6; s++) ck_assert_int_eq(shardset_shard_range(ss, s, &b[s], &b[s + 1]), 0);
    for (int s = 0; s < 6; s++) all += b[s + 1] - b[s] - L;
    for (int nranks = 1; nranks <= 6; nranks++) {
        int64_t sum = 0;
        for (int r = 0; r < nranks; r++) {
            ck_assert_int_eq(shardset_select(ss, r, nranks, L), 0);
            sum += shardset_positions(ss);
            shardset_cursor_t c;
            shardset_cursor_init(&c, 77);
            for (int k = 0; k < 200; k++, c.next++) {
                int64_t start = shardset_peek_start(ss, &c), s = 0;
                while (b[s + 1] <= start) s++;
                ck_assert_int_eq(s % nranks, r);
                ck_assert_int_le(start + L + 1, b[s + 1]);
            }
        }
        ck_assert_int_eq(sum, all);
    }
    ck_assert_int_eq(shardset_select(ss, 0, 7, L), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "fewer than the 7 ranks"));
    shardset_destroy(&ss);
    tu_docs_free(&expect);
    free_inputs(inputs, 5);
}
END_TEST

/* Runs weft with the arguments; asserts a non-zero exit, a one-line
 * message holding want, and no new or temporary file in the folder. */
#define EXPECT_FAIL(want, ...)                                                                     \
    do {                                                                                           \
        int before_ = tu_entries();                                                                \
        char *out_;                                                                                \
        int rc_ = tu_weft(&out_, __VA_ARGS__, NULL);                                               \
        ck_assert_msg(rc_ != 0 && rc_ < 128, "exit %d: %s", rc_, out_);                            \
        ck_assert_msg(strstr(out_, want) != NULL, "'%s' not in: %s", want, out_);                  \
        ck_assert_msg(strstr(out_, "error: ") != NULL, "no error line: %s", out_);                 \
        ck_assert_int_eq(tu_entries(), before_);                                                   \
        ck_assert(!tu_has_tmp());                                                                  \
        free(out_);                                                                                \
    } while (0)

START_TEST(bad_inputs)
{
    tu_put("ok.txt", "hello world\n", 12);
    tu_put("empty1.txt", "", 0);
    tu_put("empty2.txt", "---\n---\n", 8);
    tu_put("bad.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n", 28);
    tu_put("nofield.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n", 28);
    tu_put("notstr.jsonl", "{\"text\": 12}\n", 13);
    tu_put("array.jsonl", "[\"text\"]\n", 9);
    mkdir(tu_path("folder"), 0755);
    const char *ok = tu_path("ok.txt"), *out = tu_path("out.h5");
    EXPECT_FAIL("missing.txt", "shard", "-o", out, tu_path("missing.txt"));
    EXPECT_FAIL("folder", "shard", "-o", out, ok, tu_path("folder"));
    EXPECT_FAIL("bad.jsonl:3", "shard", "--format", "jsonl", "-o", out, tu_path("bad.jsonl"));
    EXPECT_FAIL("nofield.jsonl:2: no field 'text'", "shard", "--format", "jsonl", "-o", out,
                tu_path("nofield.jsonl"));
    EXPECT_FAIL("notstr.jsonl:1: field 'text' is not a string", "shard", "--format", "jsonl", "-o",
                out, tu_path("notstr.jsonl"));
    EXPECT_FAIL("array.jsonl:1", "shard", "--format", "jsonl", "-o", out, tu_path("array.jsonl"));
    EXPECT_FAIL("empty corpus", "shard", "-o", out, tu_path("empty1.txt"), tu_path("empty2.txt"));
    EXPECT_FAIL("--shards 7", "shard", "--shards", "7", "-o", out, ok); /* 13 tokens */
    EXPECT_FAIL("--shards", "shard", "--shards", "0", "-o", out, ok);
    EXPECT_FAIL("--val-fraction", "shard", "--val-fraction", "1", "-o", out, ok);
    EXPECT_FAIL("--val-fraction", "shard", "--val-fraction", "-0.1", "-o", out, ok);
    EXPECT_FAIL("--val-fraction", "shard", "--val-fraction", "half", "-o", out, ok);
    EXPECT_FAIL("leaves no training document", "shard", "--val-fraction", "0.5", "-o", out, ok);
    EXPECT_FAIL("nowhere", "shard", "-o", tu_path("nowhere/out.h5"), ok);
    EXPECT_FAIL("--format", "shard", "--format", "csv", "-o", out, ok);
    EXPECT_FAIL("-o", "shard", ok);

    /* an existing output is kept unless --force */
    tu_put("out.h5", "precious", 8);
    EXPECT_FAIL("--force", "shard", "-o", out, ok);
    size_t n;
    uint8_t *kept = tu_get(out, &n);
    ck_assert_uint_eq(n, 8);
    ck_assert(!memcmp(kept, "precious", 8));
    free(kept);
    char *msg;
    ck_assert_int_eq(tu_weft(&msg, "shard", "--force", "-o", out, ok, NULL), 0);
    free(msg);
    shardset_t *ss = shardset_new(out);
    ck_assert_ptr_nonnull(ss);
    shardset_destroy(&ss);
}
END_TEST

/* A FIFO (or any non-regular file) is refused at once, not read: opening
 * one for reading would wait for a writer for ever (its own test case, so a
 * hang fails in seconds). */
START_TEST(fifo_input_refused)
{
    ck_assert_int_eq(mkfifo(tu_path("pipe"), 0600), 0);
    const char *out = tu_path("out.h5");
    EXPECT_FAIL("is not a regular file", "shard", "-o", out, tu_path("pipe"));
}
END_TEST

/* Killed mid-write: no file at the output name. SIGTERM also removes the
 * temporary file; SIGKILL leaves only a name ending in .tmp.<pid>. */
START_TEST(interrupted_run)
{
    size_t n = 24 << 20;
    char *text = malloc(n);
    uint64_t st = 5;
    for (size_t i = 0; i < n; i++) text[i] = (char)('a' + shard_rand_below(&st, 26));
    tu_put("big.txt", text, n);
    free(text);
    int sigs[] = {SIGTERM, SIGKILL};
    for (int k = 0; k < 2; k++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            char bin[4096];
            const char *top = getenv("top_builddir");
            snprintf(bin, sizeof bin, "%s/weft", top ? top : ".");
            execl(bin, bin, "shard", "--quiet", "-o", tu_path("out.h5"), tu_path("big.txt"),
                  (char *)NULL);
            _exit(127);
        }
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tu_path("out.h5"), (long)pid);
        struct timespec ms = {0, 1000000};
        for (int i = 0; i < 20000 && access(tmp, F_OK) != 0; i++) nanosleep(&ms, NULL);
        ck_assert_msg(access(tmp, F_OK) == 0, "the writer never created %s", tmp);
        kill(pid, sigs[k]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k]);
        ck_assert_int_ne(access(tu_path("out.h5"), F_OK), 0);
        ck_assert_int_eq(access(tmp, F_OK) == 0, sigs[k] == SIGKILL);
        unlink(tmp);
    }
}
END_TEST

static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, n = 0, r;
    char *s = malloc(cap);
    while ((r = fread(s + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 2) s = realloc(s, cap *= 2);
    }
    s[n] = 0;
    ck_assert_int_eq(pclose(p), 0);
    return s;
}

/* h5dump reads the structure, the filters and the data of a shard file. */
START_TEST(h5dump_reads_output)
{
    const char *h5dump = getenv("H5DUMP") ? getenv("H5DUMP") : "h5dump";
    const char *text = "alpha\n---\nbeta\n---\ngamma\n";
    tu_put("a.txt", text, strlen(text));
    char *in[] = {strdup(tu_path("a.txt"))};
    shard_opts_t o = tu_opts(tu_path("out.h5"), in, 1);
    o.shards = 2;
    ck_assert_int_eq(shard_write(&o, NULL), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s -H %s", h5dump, o.output);
    char *s = capture(cmd);
    const char *want[] = {"ATTRIBUTE \"format\"",
                          "ATTRIBUTE \"source_sha256\"",
                          "GROUP \"train\"",
                          "GROUP \"val\"",
                          "DATASET \"shard_offsets\"",
                          "DATASET \"doc_offsets\"",
                          "H5T_STD_U16LE",
                          "( 20 ) / ( 20 )"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_msg(strstr(s, want[i]), "h5dump -H lacks %s:\n%s", want[i], s);
    free(s);
    snprintf(cmd, sizeof cmd, "%s -p -H -d /train/tokens %s", h5dump, o.output);
    s = capture(cmd);
    ck_assert_ptr_nonnull(strstr(s, "CHECKSUM FLETCHER32"));
    ck_assert_ptr_nonnull(strstr(s, "COMPRESSION DEFLATE"));
    free(s);
    /* the values h5dump decodes are the ones the reader returns */
    shardset_t *ss = shardset_new(o.output);
    ck_assert_ptr_nonnull(ss);
    char offs[128];
    int64_t a, b[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(shardset_doc_range(ss, SHARDSET_TRAIN, i, &a, &b[i]), 0);
    snprintf(offs, sizeof offs, "(0): 0, %lld, %lld, %lld", (long long)b[0], (long long)b[1],
             (long long)b[2]);
    ck_assert_int_eq(b[2], 20);
    shardset_destroy(&ss);
    snprintf(cmd, sizeof cmd, "%s -a /format -d /train/doc_offsets %s", h5dump, o.output);
    s = capture(cmd);
    ck_assert_ptr_nonnull(strstr(s, "\"weft-shards\""));
    ck_assert_msg(strstr(s, offs) != NULL, "h5dump lacks %s:\n%s", offs, s);
    free(s);
    free(in[0]);
}
END_TEST

/* Documents larger than the read block and the token chunk, a separator
 * cut by a pass-1 read boundary (1 MiB), and JSONL lines across that
 * boundary and longer than it all come back exactly. */
START_TEST(large_documents_and_block_edges)
{
    const size_t block = 1 << 20;
    tu_docs_t expect = {0}, got = {0};
    buf_t f = {0};
    uint64_t st = 17;
    uint8_t *big = malloc(3 * block);
    size_t n1 = block - 2; /* then "---\n", cut by the 1 MiB read boundary */
    for (size_t i = 0; i < 3 * block; i++) big[i] = (uint8_t)('a' + shard_rand_below(&st, 26));
    for (size_t i = 77; i < 3 * block; i += 1000) big[i] = '\n';
    big[n1 - 1] = '\n';
    put_bytes(&f, big, n1);
    tu_docs_add(&expect, big, n1);
    put_str(&f, "---\n");
    ck_assert_uint_eq(f.n, block + 2);
    put_bytes(&f, big + 5, 2 * block + 12345);
    tu_docs_add(&expect, big + 5, 2 * block + 12345);
    tu_put("big.txt", f.p, f.n);
    char *in[] = {strdup(tu_path("big.txt")), strdup(tu_path("big.jsonl"))};
    shard_opts_t o = tu_opts(tu_path("big.h5"), in, 1);
    o.shards = 2;
    ck_assert_msg(shard_write(&o, NULL) == 0, "%s", weft_last_error());
    int64_t n[2];
    read_all(o.output, &got, n);
    tu_docs_assert_same(&expect, &got);
    tu_docs_free(&expect);
    tu_docs_free(&got);

    f.n = 0;
    for (int i = 0; i < 6; i++) { /* lines of ~0.4, 1.4, 0.4, ... MiB */
        size_t len = i % 2 ? block + block / 3 : block / 3 + (size_t)i;
        put_str(&f, "{\"text\": \"");
        for (size_t k = 0; k < len; k++) big[k] = (uint8_t)('a' + shard_rand_below(&st, 26));
        put_bytes(&f, big, len);
        put_str(&f, "\"}\n");
        tu_docs_add(&expect, big, len);
    }
    tu_put("big.jsonl", f.p, f.n);
    o = tu_opts(tu_path("bigj.h5"), in + 1, 1);
    o.format = SHARD_INPUT_JSONL;
    ck_assert_msg(shard_write(&o, NULL) == 0, "%s", weft_last_error());
    read_all(o.output, &got, n);
    tu_docs_assert_same(&expect, &got);
    tu_docs_free(&expect);
    tu_docs_free(&got);
    free(big);
    free(f.p);
    free(in[0]);
    free(in[1]);
}
END_TEST

/* The SHA-NI path gives common/sha256.c's digests for any split of the
 * input, aligned or not. */
START_TEST(sha256_accelerated_matches_plain)
{
    uint8_t data[4096];
    uint64_t st = 99;
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)weft_splitmix64(&st);
    for (size_t len = 0; len <= sizeof data; len += 61) {
        weft_sha256_t a, b;
        uint8_t da[32], db[32];
        weft_sha256_init(&a);
        weft_sha256_init(&b);
        weft_sha256_update(&a, data, len);
        size_t cut1 = len / 3, cut2 = len - len / 5;
        shard_sha256_update(&b, data, cut1);
        shard_sha256_update(&b, data + cut1, cut2 - cut1);
        shard_sha256_update(&b, data + cut2, len - cut2);
        weft_sha256_final(&a, da);
        weft_sha256_final(&b, db);
        ck_assert_msg(!memcmp(da, db, 32), "digests differ for %zu bytes", len);
    }
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(roundtrip_text),
                            CHECK_TEST(roundtrip_jsonl),
                            CHECK_TEST(attributes_and_source_hash),
                            CHECK_TEST(deterministic),
                            CHECK_TEST(shard_offsets_rule),
                            CHECK_TEST(rank_split_invariants),
                            CHECK_TEST(bad_inputs),
                            CHECK_TEST(interrupted_run),
                            CHECK_TEST(h5dump_reads_output),
                            CHECK_TEST(sha256_accelerated_matches_plain),
                            CHECK_TEST(large_documents_and_block_edges),
                            CHECK_TIMED(fifo_input_refused, 10)};
    return check_main(
        (check_opts_t){
            .suite = "shard_writer", .timeout = 120, .setup = tu_setup, .teardown = tu_teardown},
        tests, CHECK_NTESTS(tests));
}
