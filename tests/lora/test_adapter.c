/* test_adapter.c: the weft-adapter HDF5 file: save/load round trip to the
 * bit, base_sha256 checked on load, targets checked against the datasets
 * present, and one clear error for each kind of bad file. */
#include "model/adapter.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define C 8
#define L 3

static char dir[256], path[300];
static const char *sha_a = "1111111111111111111111111111111111111111111111111111111111111111";
static const char *sha_b = "2222222222222222222222222222222222222222222222222222222222222222";

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/weft-test-adapter-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/acme.h5", dir);
}

static void teardown(void)
{
    weft_rm_rf(dir);
}

static lora_spec_t spec(void)
{
    return (lora_spec_t){.r = 4,
                         .alpha = 8,
                         .use_rslora = 1,
                         .targets = (1u << LORA_ATTN_C_ATTN) | (1u << LORA_MLP_C_PROJ),
                         .seed = 77};
}

/* Saves a trained-looking adapter (B nonzero) for tenant "acme". */
static lora_pack_t *save_one(void)
{
    lora_spec_t s = spec();
    lora_pack_t *p = lora_pack_new(L, C, 1, &s, 4);
    float *w = lora_pack_params(p);
    for (size_t i = 0; i < lora_pack_size(p); i++) w[i] = sinf((float)i);
    adapter_info_t info = {.tenant = "acme", .steps = 20};
    memcpy(info.base_sha256, sha_a, 65);
    ck_assert_int_eq(adapter_save(path, p, 0, &info), 0);
    ck_assert_int_eq(access(path, R_OK), 0);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    return p;
}

/* Runs edit on the saved file (read-write), then expects adapter_load to
 * fail with an error containing want. */
static void expect_load_error(void (*edit)(hid_t), const char *want)
{
    lora_pack_t *p = save_one();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    edit(f);
    H5Fclose(f);
    lora_spec_t s = spec();
    lora_pack_t *q = lora_pack_new(L, C, 1, &s, 4);
    ck_assert_int_eq(adapter_load(path, "base.h5", sha_a, q, 0, NULL), -1);
    ck_assert_msg(strstr(weft_last_error(), want) != NULL, "error '%s' lacks '%s'",
                  weft_last_error(), want);
    ck_assert_msg(strstr(weft_last_error(), path) != NULL, "error '%s' does not name the file",
                  weft_last_error());
    lora_pack_destroy(&p);
    lora_pack_destroy(&q);
}

START_TEST(round_trip_bitwise)
{
    /* tenant 1 of a pack of two saved, loaded into a fresh pack of one */
    lora_spec_t s[2] = {{.r = 2, .alpha = 2, .targets = 0xF, .seed = 5}, spec()};
    lora_pack_t *p = lora_pack_new(L, C, 2, s, 4);
    float *w = lora_pack_params(p);
    for (size_t i = 0; i < lora_pack_size(p); i++) w[i] = cosf((float)i * 0.37f);
    adapter_info_t info = {.tenant = "globex", .steps = 123};
    memcpy(info.base_sha256, sha_a, 65);
    ck_assert_int_eq(adapter_save(path, p, 1, &info), 0);

    adapter_info_t got;
    ck_assert_int_eq(adapter_read_info(path, &got), 0);
    ck_assert_str_eq(got.tenant, "globex");
    ck_assert_int_eq(got.spec.r, 4);
    ck_assert_float_eq(got.spec.alpha, 8.0f);
    ck_assert_int_eq(got.spec.use_rslora, 1);
    ck_assert_uint_eq(got.spec.targets, spec().targets);
    ck_assert_uint_eq(got.spec.seed, 77);
    ck_assert_int_eq(got.steps, 123);
    ck_assert_int_eq(got.n_layer, L);
    ck_assert_int_eq(got.n_embd, C);
    ck_assert_str_eq(got.base_sha256, sha_a);

    lora_spec_t one = spec();
    lora_pack_t *q = lora_pack_new(L, C, 1, &one, 4);
    ck_assert_int_eq(adapter_load(path, "base.h5", sha_a, q, 0, NULL), 0);
    ck_assert_uint_eq(lora_pack_size(q), lora_pack_tenant_size(p, 1));
    ck_assert_mem_eq(lora_pack_params(q), w + lora_pack_tenant_offset(p, 1),
                     lora_pack_size(q) * sizeof(float));

    /* the attribute strings as other tools see them */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char buf[128];
    ck_assert_int_eq(h5_attr_read_str(f, "format", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "weft-adapter");
    ck_assert_int_eq(h5_attr_read_str(f, "targets", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "attn.c_attn,mlp.c_proj");
    int rank;
    hsize_t dims[8];
    ck_assert_int_eq(h5_dataset_shape(f, "/h/2/mlp/c_proj/lora_A", &rank, dims), 0);
    ck_assert(rank == 2 && dims[0] == 4 && dims[1] == 4 * C);
    ck_assert_int_eq(h5_dataset_shape(f, "/h/0/attn/c_attn/lora_B", &rank, dims), 0);
    ck_assert(rank == 2 && dims[0] == 3 * C && dims[1] == 4);
    ck_assert(!h5_path_exists(f, "/h/0/mlp/c_fc"));
    H5Fclose(f);
    lora_pack_destroy(&p);
    lora_pack_destroy(&q);
}
END_TEST

START_TEST(wrong_backbone_names_both)
{
    lora_pack_t *p = save_one();
    ck_assert_int_eq(adapter_load(path, "models/other.h5", sha_b, p, 0, NULL), -1);
    const char *e = weft_last_error();
    ck_assert_ptr_nonnull(strstr(e, sha_a));
    ck_assert_ptr_nonnull(strstr(e, sha_b));
    ck_assert_ptr_nonnull(strstr(e, path));
    ck_assert_ptr_nonnull(strstr(e, "models/other.h5"));
    lora_pack_destroy(&p);
}
END_TEST

START_TEST(tensors_under_a_prefix)
{
    lora_pack_t *p = save_one();
    char other[320];
    snprintf(other, sizeof other, "%s/grads.h5", dir);
    hid_t f = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float *g = lora_pack_grads(p);
    for (size_t i = 0; i < lora_pack_size(p); i++) g[i] = (float)i;
    ck_assert_int_eq(adapter_write_tensors(f, "/adam/m", p, 0, g), 0);
    ck_assert(h5_path_exists(f, "/adam/m/h/1/attn/c_attn/lora_A"));
    float *back = calloc(lora_pack_size(p), sizeof *back);
    ck_assert_int_eq(adapter_read_tensors(f, "/adam/m", p, 0, back), 0);
    ck_assert_mem_eq(back, g, lora_pack_size(p) * sizeof(float));
    H5Fclose(f);
    free(back);
    lora_pack_destroy(&p);
}
END_TEST

static void drop_B(hid_t f)
{
    H5Ldelete(f, "/h/1/mlp/c_proj/lora_B", H5P_DEFAULT);
}
static void extra_module(hid_t f)
{
    hsize_t d[2] = {4, C};
    float z[4 * C] = {0};
    h5_write_f32(f, "/h/0/attn/c_proj/lora_A", 2, d, z);
}
static void bad_shape(hid_t f)
{
    H5Ldelete(f, "/h/2/attn/c_attn/lora_A", H5P_DEFAULT);
    hsize_t d[2] = {5, C};
    float z[5 * C] = {0};
    h5_write_f32(f, "/h/2/attn/c_attn/lora_A", 2, d, z);
}
static void bad_format(hid_t f)
{
    h5_attr_write_str(f, "format", "weft-model");
}
static void bad_version(hid_t f)
{
    h5_attr_write_i64(f, "version", 2);
}
static void bad_targets(hid_t f)
{
    h5_attr_write_str(f, "targets", "attn.c_attn,attn.q");
}
static void bad_sha(hid_t f)
{
    h5_attr_write_str(f, "base_sha256", "abc");
}
static void no_rank(hid_t f)
{
    H5Adelete(f, "r");
}
static void nan_value(hid_t f)
{
    hsize_t d[2] = {3 * C, 4};
    float v[3 * C * 4] = {0};
    v[5] = NAN;
    H5Ldelete(f, "/h/0/attn/c_attn/lora_B", H5P_DEFAULT);
    h5_write_f32(f, "/h/0/attn/c_attn/lora_B", 2, d, v);
}

START_TEST(bad_files_one_clear_error)
{
    expect_load_error(drop_B, "/h/1/mlp/c_proj/lora_B is missing");
    expect_load_error(extra_module, "does not list attn.c_proj");
    expect_load_error(bad_shape, "/h/2/attn/c_attn/lora_A has shape [5,8], expected [4,8]");
    expect_load_error(bad_format, "not a weft-adapter file");
    expect_load_error(bad_version, "version 2");
    expect_load_error(bad_targets, "attn.q");
    expect_load_error(bad_sha, "base_sha256");
    expect_load_error(no_rank, "missing attribute 'r'");
    expect_load_error(nan_value, "NaN");
}
END_TEST

START_TEST(pack_must_fit_the_file)
{
    lora_pack_t *p = save_one();
    lora_spec_t s = spec();
    s.r = 8;
    lora_pack_t *q = lora_pack_new(L, C, 1, &s, 4);
    ck_assert_int_eq(adapter_load(path, "base.h5", sha_a, q, 0, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "r=4"));
    lora_pack_destroy(&q);
    s = spec();
    s.targets = 0xF;
    q = lora_pack_new(L, C, 1, &s, 4);
    ck_assert_int_eq(adapter_load(path, "base.h5", sha_a, q, 0, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "targets"));
    lora_pack_destroy(&q);
    s = spec();
    q = lora_pack_new(L + 1, C, 1, &s, 4);
    ck_assert_int_eq(adapter_load(path, "base.h5", sha_a, q, 0, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "3 blocks"));
    lora_pack_destroy(&q);
    lora_pack_destroy(&p);
}
END_TEST

START_TEST(not_an_adapter)
{
    adapter_info_t info;
    ck_assert_int_eq(adapter_read_info("/nonexistent/a.h5", &info), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/nonexistent/a.h5"));
    FILE *f = fopen(path, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    ck_assert_int_eq(adapter_read_info(path, &info), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "not an HDF5 file"));
}
END_TEST

int main(void)
{
    h5_quiet();
    check_test_t tests[] = {
        CHECK_TEST(round_trip_bitwise),     CHECK_TEST(wrong_backbone_names_both),
        CHECK_TEST(tensors_under_a_prefix), CHECK_TEST(bad_files_one_clear_error),
        CHECK_TEST(pack_must_fit_the_file), CHECK_TEST(not_an_adapter)};
    int failed =
        check_main((check_opts_t){.suite = "adapter", .setup = setup, .teardown = teardown}, tests,
                   CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
