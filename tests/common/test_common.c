/* test_common.c: SHA-256 against FIPS vectors, HDF5 helper round trips and
 * their errors, durable file helpers. */
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-test-common-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    h5_quiet();
}

static void teardown(void)
{
    weft_rm_rf(tmpdir);
}

static void hex_of(const char *s, size_t n, char hex[65])
{
    weft_sha256_t h;
    uint8_t d[32];
    weft_sha256_init(&h);
    weft_sha256_update(&h, s, n);
    weft_sha256_final(&h, d);
    weft_sha256_hex(d, hex);
}

START_TEST(sha256_vectors)
{
    char hex[65];
    hex_of("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(sha256_streaming_matches_file)
{
    /* One million 'a' fed in uneven pieces, and the same bytes from a file. */
    weft_sha256_t h;
    uint8_t d[32];
    char hex[65], fhex[65];
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    weft_sha256_init(&h);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        weft_sha256_update(&h, a + off, n);
        off += n;
        step = step * 7 % 1031 + 1;
    }
    weft_sha256_final(&h, d);
    weft_sha256_hex(d, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    char path[300];
    snprintf(path, sizeof path, "%s/a.bin", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite(a, 1, 1000000, f);
    fclose(f);
    ck_assert_int_eq(weft_sha256_file(path, fhex), 0);
    ck_assert_str_eq(fhex, hex);
    free(a);
    ck_assert_int_eq(weft_sha256_file("/nonexistent/x", fhex), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/nonexistent/x"));
}
END_TEST

START_TEST(h5_attrs_and_datasets)
{
    char path[300];
    snprintf(path, sizeof path, "%s/t.h5", tmpdir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    ck_assert_int_eq(h5_attr_write_str(f, "format", "weft-test"), 0);
    ck_assert_int_eq(h5_attr_write_i64(f, "n", -42), 0);
    ck_assert_int_eq(h5_attr_write_f64(f, "x", 0.25), 0);
    float data[6] = {1, 2, 3, 4, 5, 6};
    hsize_t dims[2] = {2, 3};
    ck_assert_int_eq(h5_write_f32(f, "/a/b/w", 2, dims, data), 0);
    /* Two strings where one is read: refused, never read past buf. */
    {
        hsize_t two = 2;
        hid_t sp = H5Screate_simple(1, &two, NULL), st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        hid_t at = H5Acreate2(f, "two", st, sp, H5P_DEFAULT, H5P_DEFAULT);
        const char *v[2] = {"a string longer than the buffer it is read into", "b"};
        ck_assert_int_ge(H5Awrite(at, st, v), 0);
        H5Aclose(at), H5Tclose(st), H5Sclose(sp);
        char small[8];
        ck_assert_int_eq(h5_attr_read_str(f, "two", small, sizeof small), -1);
        ck_assert_ptr_nonnull(strstr(weft_last_error(), "holds 2 strings"));
    }
    /* A variable-length UTF-8 string, as h5py writes one by default. */
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    H5Tset_cset(vt, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t va = H5Acreate2(f, "tokenizer", vt, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *byte = "byte";
    ck_assert_int_ge(H5Awrite(va, vt, &byte), 0);
    H5Aclose(va);
    H5Sclose(sp);
    H5Tclose(vt);
    H5Fclose(f);

    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char s[64];
    int64_t n;
    double x;
    ck_assert_int_eq(h5_attr_read_str(f, "format", s, sizeof s), 0);
    ck_assert_str_eq(s, "weft-test");
    ck_assert_int_eq(h5_attr_read_str(f, "tokenizer", s, sizeof s), 0);
    ck_assert_str_eq(s, "byte");
    ck_assert_int_eq(h5_attr_read_i64(f, "n", &n), 0);
    ck_assert_int_eq(n, -42);
    ck_assert_int_eq(h5_attr_read_f64(f, "x", &x), 0);
    ck_assert(x == 0.25);
    ck_assert_int_eq(h5_attr_read_i64(f, "format", &n), -1);
    ck_assert_int_eq(h5_attr_read_str(f, "missing", s, sizeof s), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "missing"));
    ck_assert_int_eq(h5_attr_read_str(f, "format", s, 4), -1);

    float back[6] = {0};
    ck_assert_int_eq(h5_read_f32(f, "/a/b/w", 2, dims, back), 0);
    ck_assert_mem_eq(back, data, sizeof data);
    hsize_t wrong[2] = {3, 2};
    ck_assert_int_eq(h5_read_f32(f, "/a/b/w", 2, wrong, back), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/a/b/w has shape [2,3], expected [3,2]"));
    ck_assert_int_eq(h5_path_exists(f, "/a/b/w"), 1);
    ck_assert_int_eq(h5_path_exists(f, "/a/c/w"), 0);
    ck_assert_int_eq(h5_read_f32(f, "/nope/w", 2, dims, back), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "missing dataset /nope/w"));
    H5Fclose(f);
}
END_TEST

START_TEST(fs_helpers)
{
    char deep[300], file[320], moved[320];
    snprintf(deep, sizeof deep, "%s/x/y/z", tmpdir);
    ck_assert_int_eq(weft_mkdir_p(deep, 0700), 0);
    ck_assert_int_eq(weft_mkdir_p(deep, 0700), 0);
    struct stat st;
    ck_assert_int_eq(stat(deep, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    snprintf(file, sizeof file, "%s/f.tmp", deep);
    snprintf(moved, sizeof moved, "%s/f", deep);
    FILE *f = fopen(file, "w");
    fputs("hello", f);
    fclose(f);
    ck_assert_int_eq(weft_fsync_path(file), 0);
    ck_assert_int_eq(weft_rename_durable(file, moved), 0);
    size_t len;
    char *got = weft_read_file(moved, 100, &len);
    ck_assert_str_eq(got, "hello");
    ck_assert_uint_eq(len, 5);
    free(got);
    ck_assert_ptr_null(weft_read_file(moved, 3, &len));
    ck_assert_int_eq(weft_mkdir_p(moved, 0700), -1);
    char x[300];
    snprintf(x, sizeof x, "%s/x", tmpdir);
    ck_assert_int_eq(weft_rm_rf(x), 0);
    ck_assert_int_eq(stat(x, &st), -1);
    char d[64];
    weft_dirname("a/b/c", d, sizeof d);
    ck_assert_str_eq(d, "a/b");
    weft_dirname("c", d, sizeof d);
    ck_assert_str_eq(d, ".");
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(sha256_vectors), CHECK_TEST(sha256_streaming_matches_file),
                            CHECK_TEST(h5_attrs_and_datasets), CHECK_TEST(fs_helpers)};
    int failed = check_main((check_opts_t){.suite = "common", .setup = setup, .teardown = teardown},
                            tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
