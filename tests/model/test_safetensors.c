/* test_safetensors.c: the safetensors header parser's rules one by one, the
 * exact conversions (every BF16 and F16 value), and the writer: header
 * padded to 8 bytes with {"format":"pt"}, read back to the same bits. */
#include "common/log.h"
#include "model/safetensors.h"
#include "tests/check_main.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses header text for a data area of n bytes; the error (if any) must
 * contain phrase. */
static void expect(const char *json, uint64_t n, const char *phrase)
{
    st_header_t h;
    int rc = st_header_parse(json, strlen(json), n, &h);
    if (!phrase) {
        ck_assert_msg(rc == 0, "%s: %s", json, weft_last_error());
        st_header_free(&h);
        return;
    }
    ck_assert_msg(rc == -1, "accepted: %s", json);
    ck_assert_msg(strstr(weft_last_error(), phrase), "'%s' lacks '%s'", weft_last_error(), phrase);
}

START_TEST(test_header_rules)
{
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, NULL);
    expect("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[],"
           "\"data_offsets\":[0,2]}}   ",
           2, NULL);
    expect("{}", 0, NULL);
    expect("[1]", 0, "start with '{'");
    expect("{\"a\":1", 0, "not valid JSON");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
           16, "duplicate");
    expect("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "whole number");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "whole number");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}",
           4, "overflows");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
           6, "overlapping");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
           12, "a gap");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "a gap");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "trailing");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2, "truncated");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks");
    expect("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
           "rank");
}
END_TEST

START_TEST(test_bf16_every_value)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        uint32_t u;
        memcpy(&u, &f, 4);
        ck_assert_uint_eq(u, h << 16);
        if (!isnan(f)) ck_assert_uint_eq(st_f32_to_bf16(f), h); /* exact values round-trip */
    }
    /* ties go to even, NaN stays NaN */
    float x;
    uint32_t u = 0x3f808000u; /* halfway between bf16 0x3f80 and 0x3f81 */
    memcpy(&x, &u, 4);
    ck_assert_uint_eq(st_f32_to_bf16(x), 0x3f80);
    u = 0x3f818000u;
    memcpy(&x, &u, 4);
    ck_assert_uint_eq(st_f32_to_bf16(x), 0x3f82);
    ck_assert(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}
END_TEST

START_TEST(test_f16_every_value)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            ck_assert(m ? isnan(f) : isinf(f));
            continue;
        }
        double want = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (sign) want = -want;
        ck_assert_msg((double)f == want && !!signbit(f) == sign, "half 0x%04x -> %a", h, (double)f);
    }
}
END_TEST

START_TEST(test_writer_round_trip)
{
    char dir[] = "/tmp/weft-test-st-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float a[6] = {1.5f, -2.25f, 3e-40f, 65504.0f, 0.1f, -0.0f}, b[1] = {7.0f};
    st_spec_t specs[2] = {{"layer.a", 2, {2, 3}}, {"b", 1, {1}}};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        st_writer_t *w = st_writer_new(path, specs, 2, bf16 ? ST_BF16 : ST_F32);
        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(st_writer_put(w, a), 0);
        ck_assert_int_eq(st_writer_put(w, b), 0);
        ck_assert_int_eq(st_writer_finish(&w), 0);
        ck_assert_int_eq(access(path, F_OK), 0);
        st_file_t *f = st_file_open(path);
        ck_assert_msg(f != NULL, "%s", weft_last_error());
        const st_header_t *h = st_file_header(f);
        ck_assert_str_eq(st_header_meta(h, "format"), "pt");
        ck_assert_uint_eq(h->tensors[0].begin, 0); /* data starts 8-byte aligned */
        const st_tensor_t *t = st_file_find(f, "layer.a");
        ck_assert_int_eq(t->dtype, bf16 ? ST_BF16 : ST_F32);
        float got[6];
        ck_assert_int_eq(st_file_read_f32(f, t, got), 0);
        for (int i = 0; i < 6; i++) {
            float want = bf16 ? st_bf16_to_f32(st_f32_to_bf16(a[i])) : a[i];
            ck_assert(memcmp(&got[i], &want, 4) == 0);
        }
        st_file_close(&f);
        FILE *fp = fopen(path, "rb");
        unsigned char len[8];
        ck_assert_uint_eq(fread(len, 1, 8, fp), 8);
        fclose(fp);
        ck_assert_uint_eq(len[0] % 8, 0);
    }
    /* a writer left unfinished leaves nothing behind */
    char tmp2[80];
    snprintf(tmp2, sizeof tmp2, "%s/y.safetensors", dir);
    st_writer_t *w = st_writer_new(tmp2, specs, 2, ST_F32);
    ck_assert_int_eq(st_writer_put(w, a), 0);
    ck_assert_int_eq(st_writer_finish(&w), -1);
    ck_assert_int_ne(access(tmp2, F_OK), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_nonfinite_refused)
{
    char dir[] = "/tmp/weft-test-st-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float a[3] = {1.0f, INFINITY, 2.0f}, got[3];
    st_spec_t spec = {"w", 1, {3}};
    st_writer_t *w = st_writer_new(path, &spec, 1, ST_BF16);
    ck_assert_int_eq(st_writer_put(w, a), 0);
    ck_assert_int_eq(st_writer_finish(&w), 0);
    st_file_t *f = st_file_open(path);
    ck_assert_int_eq(st_file_read_f32(f, st_file_find(f, "w"), got), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "index 1"));
    st_file_close(&f);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(test_header_rules), CHECK_TEST(test_bf16_every_value),
                            CHECK_TEST(test_f16_every_value), CHECK_TEST(test_writer_round_trip),
                            CHECK_TEST(test_nonfinite_refused)};
    int failed = check_main((check_opts_t){.suite = "safetensors", .tcase = "core"}, tests,
                            CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
