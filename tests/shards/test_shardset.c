/* test_shardset.c: the weft-shards reader: seeded windows and a cursor that
 * restores exactly, validation windows in order, and one clear error for
 * files that are not weft-shards, of another version, truncated or corrupt. */
#include "tests/shards/testutil.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shard_format.h"
#include "tests/check_main.h"

#include <check.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define L 32

/* A corpus of ~600 KB (several token chunks) as good.h5: 4 shards, 10% val. */
static void make_good(void)
{
    size_t n = 600000;
    char *text = malloc(n);
    uint64_t st = 21;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = shard_rand_below(&st, 40);
        text[i] = r == 0 ? '\n' : r == 1 ? ' ' : (char)('a' + shard_rand_below(&st, 26));
    }
    for (size_t i = 997; i + 5 < n; i += 997 + shard_rand_below(&st, 2000))
        memcpy(text + i, "\n---\n", 5);
    tu_put("in.txt", text, n);
    free(text);
    char *in[] = {(char *)tu_path("in.txt")};
    shard_opts_t o = tu_opts(tu_path("good.h5"), in, 1);
    o.shards = 4;
    o.val_fraction = 0.1;
    ck_assert_msg(shard_write(&o, NULL) == 0, "%s", weft_last_error());
}

/* good.h5 copied as name (its first keep bytes; 0: all of it): the copy's path. */
static const char *copy_good(const char *name, size_t keep)
{
    size_t n;
    uint8_t *b = tu_get(tu_path("good.h5"), &n);
    ck_assert_ptr_nonnull(b);
    const char *to = tu_path(name);
    FILE *f = fopen(to, "wb");
    ck_assert_uint_eq(fwrite(b, 1, keep && keep < n ? keep : n, f), keep && keep < n ? keep : n);
    fclose(f);
    free(b);
    return to;
}

START_TEST(windows_and_cursor_restore)
{
    make_good();
    shardset_t *a = shardset_new(tu_path("good.h5")), *b = shardset_new(tu_path("good.h5"));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(shardset_select(a, 1, 2, L), 0);
    ck_assert_int_eq(shardset_select(b, 1, 2, L), 0);
    shardset_cursor_t c, saved, other;
    shardset_cursor_init(&c, 1234);
    shardset_cursor_init(&other, 1235);
    int32_t w[40][L + 1], x[L + 1], y[L + 1];
    int64_t starts[40];
    for (int i = 0; i < 40; i++) {
        if (i == 25) saved = c; /* what a checkpoint stores */
        starts[i] = shardset_peek_start(a, &c);
        ck_assert_int_eq(shardset_next_window(a, &c, w[i]), 0);
        /* a window is exactly the tokens at its start */
        ck_assert_int_eq(shardset_read(a, SHARDSET_TRAIN, starts[i], L + 1, x), 0);
        ck_assert(!memcmp(x, w[i], sizeof x));
    }
    ck_assert_uint_eq(c.next, 40);
    /* restored, in the same handle and in another one: the same windows */
    shardset_cursor_t r1 = saved, r2 = saved;
    for (int i = 25; i < 40; i++) {
        ck_assert_int_eq(shardset_next_window(a, &r1, x), 0);
        ck_assert_int_eq(shardset_next_window(b, &r2, y), 0);
        ck_assert(!memcmp(x, w[i], sizeof x));
        ck_assert(!memcmp(y, w[i], sizeof y));
    }
    /* the windows are spread, and another seed draws other windows */
    int distinct = 0, same_as_other = 0;
    for (int i = 0; i < 40; i++) {
        int dup = 0;
        for (int k = 0; k < i; k++) dup |= starts[k] == starts[i];
        distinct += !dup;
        same_as_other += shardset_peek_start(a, &other) == starts[i];
        other.next++;
    }
    ck_assert_int_ge(distinct, 38);
    ck_assert_int_le(same_as_other, 2);
    /* another rank draws from other shards */
    ck_assert_int_eq(shardset_select(b, 0, 2, L), 0);
    r2 = saved;
    ck_assert_int_ne(shardset_peek_start(b, &r2), starts[25]);
    shardset_destroy(&a);
    shardset_destroy(&b);
}
END_TEST

START_TEST(val_windows_in_order)
{
    make_good();
    shardset_t *ss = shardset_new(tu_path("good.h5"));
    ck_assert_ptr_nonnull(ss);
    int64_t n = shardset_tokens(ss, SHARDSET_VAL), nw = shardset_val_windows(ss, L);
    ck_assert_int_gt(nw, 10);
    ck_assert_int_eq(nw, (n - 1) / L);
    int32_t *all = malloc((size_t)n * sizeof *all), w[L + 1];
    ck_assert_int_eq(shardset_read(ss, SHARDSET_VAL, 0, n, all), 0);
    for (int64_t i = 0; i < nw; i++) {
        ck_assert_int_eq(shardset_val_window(ss, L, i, w), 0);
        ck_assert(!memcmp(w, all + i * L, sizeof w));
    }
    ck_assert_int_eq(shardset_val_window(ss, L, nw, w), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "val window"));
    free(all);
    shardset_destroy(&ss);
}
END_TEST

/* Runs `weft shard --verify path`, asserting failure and a message holding
 * both the file's name and want. */
static void verify_fails(const char *path, const char *want)
{
    char *out;
    int rc = tu_weft(&out, "shard", "--verify", path, NULL);
    ck_assert_msg(rc != 0 && rc < 128, "exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, path) && strstr(out, want), "'%s' not in: %s", want, out);
    ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
    free(out);
    shardset_t *ss = shardset_new(path);
    if (ss) { /* a corrupt chunk is only seen when read */
        int32_t *t = malloc((size_t)shardset_tokens(ss, SHARDSET_TRAIN) * sizeof *t);
        ck_assert_int_eq(
            shardset_read(ss, SHARDSET_TRAIN, 0, shardset_tokens(ss, SHARDSET_TRAIN), t), -1);
        free(t);
        shardset_destroy(&ss);
    }
    ck_assert_ptr_nonnull(strstr(weft_last_error(), want));
}

START_TEST(verify_good_file)
{
    make_good();
    char *out;
    ck_assert_int_eq(tu_weft(&out, "shard", "--verify", tu_path("good.h5"), NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "ok: weft-shards"));
    free(out);
}
END_TEST

START_TEST(not_weft_shards)
{
    tu_put("text.h5", "just some text, not HDF5\n", 25);
    verify_fails(tu_path("text.h5"), "is not an HDF5 file");
    verify_fails(tu_path("absent.h5"), "No such file");
    hid_t f = H5Fcreate(tu_path("model.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_eq(h5_attr_write_str(f, "format", "weft-model"), 0);
    H5Fclose(f);
    verify_fails(tu_path("model.h5"), "not a weft-shards file (format is 'weft-model')");
    f = H5Fcreate(tu_path("bare.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    verify_fails(tu_path("bare.h5"), "not a weft-shards file (no 'format' attribute)");
}
END_TEST

START_TEST(wrong_version_and_missing_parts)
{
    make_good();
    hid_t f = H5Fopen(copy_good("v2.h5", 0), H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_eq(h5_attr_write_i64(f, "version", 2), 0);
    H5Fclose(f);
    verify_fails(tu_path("v2.h5"), "has weft-shards version 2; this weft reads version 1");
    f = H5Fopen(copy_good("noval.h5", 0), H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(H5Ldelete(f, "/val/doc_offsets", H5P_DEFAULT), 0);
    H5Fclose(f);
    verify_fails(tu_path("noval.h5"), "missing dataset /val/doc_offsets");
}
END_TEST

START_TEST(truncated_file)
{
    make_good();
    size_t n;
    free(tu_get(tu_path("good.h5"), &n));
    verify_fails(copy_good("half.h5", n / 2), "truncated");
}
END_TEST

/* One flipped byte inside the second chunk of /train/tokens: that chunk's
 * Fletcher32 checksum fails; the first chunk still reads. */
START_TEST(corrupt_chunk)
{
    make_good();
    hid_t f = H5Fopen(copy_good("bad.h5", 0), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/train/tokens", H5P_DEFAULT), s = H5Dget_space(d);
    hsize_t off[1], size;
    haddr_t addr;
    unsigned mask;
    ck_assert_int_ge(H5Dget_chunk_info(d, s, 1, off, &mask, &addr, &size), 0);
    ck_assert_uint_eq(off[0], SHARD_TOKEN_CHUNK);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(tu_path("bad.h5"), O_RDWR);
    uint8_t byte;
    ck_assert_int_eq(pread(fd, &byte, 1, (off_t)(addr + size / 2)), 1);
    byte ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)(addr + size / 2)), 1);
    close(fd);
    verify_fails(tu_path("bad.h5"), "checksum mismatch");
    shardset_t *ss = shardset_new(tu_path("bad.h5"));
    ck_assert_ptr_nonnull(ss);
    int32_t t[L + 1];
    ck_assert_int_eq(shardset_read(ss, SHARDSET_TRAIN, 100, L + 1, t), 0);
    ck_assert_int_eq(shardset_read(ss, SHARDSET_TRAIN, SHARD_TOKEN_CHUNK + 100, L + 1, t), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/train/tokens"));
    shardset_destroy(&ss);
}
END_TEST

/* A checksum-valid file whose document lost its end token: --verify finds
 * it by the offsets. */
START_TEST(verify_checks_document_ends)
{
    make_good();
    shardset_t *ss = shardset_new(copy_good("noeot.h5", 0));
    ck_assert_ptr_nonnull(ss);
    int64_t a, b;
    ck_assert_int_eq(shardset_doc_range(ss, SHARDSET_TRAIN, 3, &a, &b), 0);
    shardset_destroy(&ss);
    hid_t f = H5Fopen(tu_path("noeot.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/train/tokens", H5P_DEFAULT), fs = H5Dget_space(d);
    hsize_t off = (hsize_t)(b - 1), one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    uint16_t x = 'x';
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &one, NULL);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, &x), 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    char *out, want[64];
    snprintf(want, sizeof want, "train token %lld should end a document", (long long)(b - 1));
    ck_assert_int_eq(tu_weft(&out, "shard", "--verify", tu_path("noeot.h5"), NULL), 1);
    ck_assert_msg(strstr(out, want) != NULL, "'%s' not in: %s", want, out);
    free(out);
}
END_TEST

START_TEST(selection_errors)
{
    make_good();
    shardset_t *ss = shardset_new(tu_path("good.h5"));
    ck_assert_ptr_nonnull(ss);
    ck_assert_int_eq(shardset_select(ss, 0, 5, L), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "4 shards, fewer than the 5 ranks"));
    ck_assert_int_eq(shardset_select(ss, 0, 1, 10000000), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "too short for one window"));
    shardset_cursor_t c;
    shardset_cursor_init(&c, 1);
    int32_t t[L + 1];
    ck_assert_int_eq(shardset_next_window(ss, &c, t), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "shardset_select"));
    ck_assert_int_eq(shardset_read(ss, SHARDSET_VAL, shardset_tokens(ss, SHARDSET_VAL) - 2, 3, t),
                     -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "outside"));
    shardset_destroy(&ss);
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(windows_and_cursor_restore),
                            CHECK_TEST(val_windows_in_order),
                            CHECK_TEST(verify_good_file),
                            CHECK_TEST(not_weft_shards),
                            CHECK_TEST(wrong_version_and_missing_parts),
                            CHECK_TEST(truncated_file),
                            CHECK_TEST(corrupt_chunk),
                            CHECK_TEST(verify_checks_document_ends),
                            CHECK_TEST(selection_errors)};
    int failed = check_main(
        (check_opts_t){
            .suite = "shardset", .timeout = 120, .setup = tu_setup, .teardown = tu_teardown},
        tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
