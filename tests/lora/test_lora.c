/* test_lora.c: the LoRA math on buffers: targets, PEFT init, the segment-wise
 * forward and backward against a naive double-precision loop and finite
 * differences, dropout masks kept for the backward, packing invariance. */
#include "common/log.h"
#include "engine/lora.h"
#include "tests/check_main.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C 12 /* n_embd: modules are 12->36, 12->12, 12->48, 48->12 */
#define L 2

static uint64_t tseed = 12345;
static float urand(void)
{
    tseed = tseed * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((tseed >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = urand();
}

static float *vec(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Three tenants with different rank, alpha, scaling and targets. */
static void three_specs(lora_spec_t s[3], float dropout)
{
    s[0] = (lora_spec_t){.r = 2, .alpha = 4, .use_rslora = 0, .targets = 0xF, .seed = 1};
    s[1] = (lora_spec_t){.r = 4,
                         .alpha = 3,
                         .use_rslora = 1,
                         .targets = (1u << LORA_ATTN_C_ATTN) | (1u << LORA_MLP_C_PROJ),
                         .seed = 2};
    s[2] = (lora_spec_t){
        .r = 8, .alpha = 16, .use_rslora = 0, .targets = 1u << LORA_MLP_C_FC, .seed = 3};
    for (int k = 0; k < 3; k++) s[k].dropout = dropout;
}

/* Random A and B (B nonzero, unlike the init) for every tenant. */
static void randomise(lora_pack_t *p)
{
    fill(lora_pack_params(p), lora_pack_size(p));
}

START_TEST(module_dims_and_resolve)
{
    int in, out;
    lora_module_dims(LORA_ATTN_C_ATTN, 10, &in, &out);
    ck_assert(in == 10 && out == 30);
    lora_module_dims(LORA_MLP_C_PROJ, 10, &in, &out);
    ck_assert(in == 40 && out == 10);
    lora_dims_t dims;
    lora_dims_gpt2(10, &dims);
    ck_assert_uint_eq(dims.modules, 0xfu);
    unsigned t;
    ck_assert_int_eq(lora_targets_resolve(LORA_ALL_LINEAR, &dims, &t), 0);
    ck_assert_uint_eq(t, 0xfu);
    ck_assert_int_eq(lora_targets_resolve(1u << LORA_Q_PROJ, &dims, &t), -1);
}
END_TEST

START_TEST(spec_checks_and_scaling)
{
    lora_spec_t s = {.r = 4, .alpha = 8, .targets = 1};
    ck_assert_float_eq(lora_spec_scaling(&s), 2.0f);
    s.use_rslora = 1;
    ck_assert_float_eq(lora_spec_scaling(&s), 4.0f);
    ck_assert_int_eq(lora_spec_check(&s), 0);
    lora_spec_t bad = s;
    bad.r = 0;
    ck_assert_int_eq(lora_spec_check(&bad), -1);
    bad = s, bad.targets = 0;
    ck_assert_int_eq(lora_spec_check(&bad), -1);
    bad = s, bad.targets = 1u << LORA_NMODULES;
    ck_assert_int_eq(lora_spec_check(&bad), -1);
    bad = s, bad.dropout = 1.0f;
    ck_assert_int_eq(lora_spec_check(&bad), -1);
    bad = s, bad.alpha = NAN;
    ck_assert_int_eq(lora_spec_check(&bad), -1);
    ck_assert_ptr_null(lora_pack_new(L, C, 1, &bad, 8));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "tenant 0"));
}
END_TEST

START_TEST(layout_and_init)
{
    lora_spec_t s[3];
    three_specs(s, 0);
    lora_pack_t *p = lora_pack_new(L, C, 3, s, 16);
    ck_assert_ptr_nonnull(p);
    /* tenant 0: r=2 on all four modules per block */
    size_t t0 = (size_t)L * 2 * (C + 3 * C + C + C + C + 4 * C + 4 * C + C);
    size_t t1 = (size_t)L * 4 * (C + 3 * C + 4 * C + C);
    size_t t2 = (size_t)L * 8 * (C + 4 * C);
    ck_assert_uint_eq(lora_pack_tenant_size(p, 0), t0);
    ck_assert_uint_eq(lora_pack_tenant_size(p, 1), t1);
    ck_assert_uint_eq(lora_pack_tenant_size(p, 2), t2);
    ck_assert_uint_eq(lora_pack_tenant_offset(p, 1), t0);
    ck_assert_uint_eq(lora_pack_tenant_offset(p, 2), t0 + t1);
    ck_assert_uint_eq(lora_pack_size(p), t0 + t1 + t2);
    ck_assert_uint_ge(lora_pack_tenant_state_bytes(p, 2), 4 * t2 * sizeof(float));
    size_t a, b;
    ck_assert_int_eq(lora_pack_offsets(p, 1, 1, LORA_ATTN_C_PROJ, &a, &b), -1);
    ck_assert_int_eq(lora_pack_offsets(p, 1, 1, LORA_MLP_C_PROJ, &a, &b), 0);
    ck_assert_uint_eq(b - a, 4 * 4 * C); /* A is (r=4, in=4C) */
    ck_assert_uint_eq(lora_pack_offsets(p, 2, 1, LORA_MLP_C_FC, &a, &b), 0);
    ck_assert_uint_eq(b + 4 * C * 8, lora_pack_size(p)); /* last B is (4C, r=8) */

    /* PEFT init: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0. */
    float *w = lora_pack_params(p);
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < L; l++)
            for (int m = 0; m < LORA_NMODULES; m++) {
                if (lora_pack_offsets(p, k, l, m, &a, &b) < 0) continue;
                int in, out;
                lora_module_dims(m, C, &in, &out);
                float bound = 1.0f / sqrtf((float)in), maxabs = 0;
                double mean = 0;
                size_t na = (size_t)s[k].r * in;
                for (size_t i = 0; i < na; i++) {
                    ck_assert(fabsf(w[a + i]) <= bound);
                    maxabs = fmaxf(maxabs, fabsf(w[a + i]));
                    mean += w[a + i];
                }
                ck_assert(maxabs > 0.5f * bound);
                ck_assert(fabs(mean / (double)na) < 0.5 * bound);
                for (size_t i = 0; i < (size_t)out * s[k].r; i++) ck_assert(w[b + i] == 0.0f);
            }

    /* The same spec gives the same bits alone; another seed gives others. */
    lora_pack_t *alone = lora_pack_new(L, C, 1, &s[1], 4);
    ck_assert_mem_eq(lora_pack_params(alone), w + lora_pack_tenant_offset(p, 1), t1 * 4);
    lora_spec_t other = s[1];
    other.seed = 99;
    lora_pack_t *o = lora_pack_new(L, C, 1, &other, 4);
    ck_assert(memcmp(lora_pack_params(o), lora_pack_params(alone), t1 * 4) != 0);
    lora_pack_destroy(&o);
    lora_pack_destroy(&alone);
    lora_pack_destroy(&p);
    ck_assert_ptr_null(p);
}
END_TEST

/* Naive reference in double: out[i] += s * sum_q B[o,q] sum_j A[q,j] x[i,j]. */
static void naive_forward(const lora_pack_t *p, int k, int l, int m, double *out, const float *x,
                          size_t row0, size_t n)
{
    const lora_spec_t *s = lora_pack_spec(p, k);
    size_t a, b;
    if (lora_pack_offsets(p, k, l, m, &a, &b) < 0) return;
    int in, oc;
    lora_module_dims(m, C, &in, &oc);
    const float *A = lora_pack_params((lora_pack_t *)p) + a;
    const float *B = lora_pack_params((lora_pack_t *)p) + b;
    double sc = lora_spec_scaling(s);
    for (size_t i = row0; i < row0 + n; i++)
        for (int o = 0; o < oc; o++) {
            double acc = 0;
            for (int q = 0; q < s->r; q++) {
                double h = 0;
                for (int j = 0; j < in; j++) h += (double)A[q * in + j] * x[i * in + j];
                acc += (double)B[o * s->r + q] * h;
            }
            out[i * oc + o] += sc * acc;
        }
}

static const size_t seg_row0[3] = {9, 0, 4},
                    seg_n[3] = {5, 3, 4}; /* rows 3 and 8 uncovered, 14..15 unused */
#define NROWS 16

START_TEST(forward_backward_match_naive)
{
    lora_spec_t s[3];
    three_specs(s, 0);
    lora_pack_t *p = lora_pack_new(L, C, 3, s, NROWS);
    randomise(p);
    ck_assert_int_eq(lora_pack_set_rows(p, seg_row0, seg_n), 0);
    for (int l = 0; l < L; l++)
        for (int m = 0; m < LORA_NMODULES; m++) {
            int in, oc;
            lora_module_dims(m, C, &in, &oc);
            float *x = vec(NROWS * in), *out = vec(NROWS * oc), *dout = vec(NROWS * oc);
            float *dx = vec(NROWS * in);
            double *ref = calloc(NROWS * oc, sizeof *ref);
            fill(x, NROWS * in), fill(out, NROWS * oc), fill(dout, NROWS * oc),
                fill(dx, NROWS * in);
            float *dx0 = vec(NROWS * in);
            memcpy(dx0, dx, NROWS * in * sizeof *dx);
            for (size_t i = 0; i < (size_t)NROWS * oc; i++) ref[i] = out[i];
            for (int k = 0; k < 3; k++) naive_forward(p, k, l, m, ref, x, seg_row0[k], seg_n[k]);
            memset(lora_pack_grads(p), 0, lora_pack_size(p) * sizeof(float));
            lora_forward(p, l, m, out, x);
            for (size_t i = 0; i < (size_t)NROWS * oc; i++)
                ck_assert_msg(fabs(out[i] - ref[i]) <= 1e-5 * (1 + fabs(ref[i])),
                              "l%d m%d out[%zu] %g vs %g", l, m, i, out[i], ref[i]);

            lora_backward(p, l, m, dx, dout, x);
            /* naive gradients: g = s * dout; dB = g^T h; dh = g B; dA = dh^T x; dx += dh A */
            for (int k = 0; k < 3; k++) {
                size_t a, b;
                if (lora_pack_offsets(p, k, l, m, &a, &b) < 0) continue;
                int r = s[k].r;
                double sc = lora_spec_scaling(&s[k]);
                const float *A = lora_pack_params(p) + a, *B = lora_pack_params(p) + b;
                const float *dA = lora_pack_grads(p) + a, *dB = lora_pack_grads(p) + b;
                double *rdA = calloc((size_t)r * in, sizeof *rdA),
                       *rdB = calloc((size_t)oc * r, sizeof *rdB);
                for (size_t i = seg_row0[k]; i < seg_row0[k] + seg_n[k]; i++) {
                    double h[8] = {0}, dh[8] = {0};
                    for (int q = 0; q < r; q++)
                        for (int j = 0; j < in; j++) h[q] += (double)A[q * in + j] * x[i * in + j];
                    for (int o = 0; o < oc; o++)
                        for (int q = 0; q < r; q++) {
                            rdB[o * r + q] += sc * dout[i * oc + o] * h[q];
                            dh[q] += sc * dout[i * oc + o] * B[o * r + q];
                        }
                    for (int q = 0; q < r; q++)
                        for (int j = 0; j < in; j++) rdA[q * in + j] += dh[q] * x[i * in + j];
                    for (int j = 0; j < in; j++) {
                        double want = dx0[i * in + j];
                        for (int q = 0; q < r; q++) want += dh[q] * A[q * in + j];
                        ck_assert_msg(fabs(dx[i * in + j] - want) <= 1e-5 * (1 + fabs(want)),
                                      "dx t%d l%d m%d", k, l, m);
                    }
                }
                for (int i = 0; i < r * in; i++)
                    ck_assert_msg(fabs(dA[i] - rdA[i]) <= 1e-5 * (1 + fabs(rdA[i])), "dA t%d", k);
                for (int i = 0; i < oc * r; i++)
                    ck_assert_msg(fabs(dB[i] - rdB[i]) <= 1e-5 * (1 + fabs(rdB[i])), "dB t%d", k);
                free(rdA), free(rdB);
            }
            /* rows no tenant owns are untouched */
            for (int j = 0; j < in; j++) {
                ck_assert(dx[3 * in + j] == dx0[3 * in + j]);
                ck_assert(dx[15 * in + j] == dx0[15 * in + j]);
            }
            free(x), free(out), free(dout), free(dx), free(dx0), free(ref);
        }
    lora_pack_destroy(&p);
}
END_TEST

/* loss = sum(out . G) in double, after a forward from a fixed RNG state. */
static double probe_loss(lora_pack_t *p, int l, int m, const float *x, const float *base,
                         const float *G, const uint64_t *rng)
{
    int in, oc;
    lora_module_dims(m, C, &in, &oc);
    float *out = vec(NROWS * oc);
    memcpy(out, base, NROWS * oc * sizeof *out);
    for (int k = 0; k < lora_pack_tenants(p); k++) lora_pack_set_rng(p, k, rng[k]);
    lora_forward(p, l, m, out, x);
    double loss = 0;
    for (int i = 0; i < NROWS * oc; i++) loss += (double)out[i] * G[i];
    free(out);
    return loss;
}

static void finite_differences(float dropout)
{
    lora_spec_t s[3];
    three_specs(s, dropout);
    lora_pack_t *p = lora_pack_new(L, C, 3, s, NROWS);
    randomise(p);
    lora_pack_set_rows(p, seg_row0, seg_n);
    uint64_t rng[3];
    for (int k = 0; k < 3; k++) rng[k] = lora_pack_rng(p, k);
    int l = 1;
    for (int m = 0; m < LORA_NMODULES; m++) {
        int in, oc;
        lora_module_dims(m, C, &in, &oc);
        float *x = vec(NROWS * in), *base = vec(NROWS * oc), *G = vec(NROWS * oc),
              *dx = vec(NROWS * in);
        fill(x, NROWS * in), fill(base, NROWS * oc), fill(G, NROWS * oc);
        memset(lora_pack_grads(p), 0, lora_pack_size(p) * sizeof(float));
        probe_loss(p, l, m, x, base, G, rng);
        lora_backward(p, l, m, dx, G, x);
        const float eps = 1e-2f;
        /* a few coordinates of every A, B, and of x in each segment */
        for (int k = 0; k < 3; k++) {
            size_t a, b;
            if (lora_pack_offsets(p, k, l, m, &a, &b) < 0) continue;
            size_t coords[4] = {a, a + (size_t)s[k].r * in - 1, b + 1, b + (size_t)oc * s[k].r - 2};
            for (int c = 0; c < 4; c++) {
                float *w = lora_pack_params(p) + coords[c], save = *w;
                *w = save + eps;
                double lp = probe_loss(p, l, m, x, base, G, rng);
                *w = save - eps;
                double lm = probe_loss(p, l, m, x, base, G, rng);
                *w = save;
                double fd = (lp - lm) / (2 * eps), an = lora_pack_grads(p)[coords[c]];
                ck_assert_msg(fabs(fd - an) <= 2e-3 * (1 + fabs(fd)),
                              "p=%g t%d m%d coord %d: fd %g analytic %g", (double)dropout, k, m, c,
                              fd, an);
            }
            size_t xi[2] = {seg_row0[k] * in, (seg_row0[k] + seg_n[k]) * in - 1};
            for (int c = 0; c < 2; c++) {
                float save = x[xi[c]];
                x[xi[c]] = save + eps;
                double lp = probe_loss(p, l, m, x, base, G, rng);
                x[xi[c]] = save - eps;
                double lm = probe_loss(p, l, m, x, base, G, rng);
                x[xi[c]] = save;
                double fd = (lp - lm) / (2 * eps);
                ck_assert_msg(fabs(fd - dx[xi[c]]) <= 2e-3 * (1 + fabs(fd)),
                              "p=%g dx t%d m%d: fd %g analytic %g", (double)dropout, k, m, fd,
                              (double)dx[xi[c]]);
            }
        }
        free(x), free(base), free(G), free(dx);
    }
    lora_pack_destroy(&p);
}

START_TEST(backward_matches_finite_differences)
{
    finite_differences(0.0f);
}
END_TEST

START_TEST(dropout_mask_kept_for_backward)
{
    /* The backward must use the mask its forward drew: the finite
     * differences replay the same stream, so a different mask fails. */
    finite_differences(0.3f);

    /* About p of the inputs are dropped; evaluation mode drops none. */
    lora_spec_t s = {
        .r = 3, .alpha = 3, .targets = 1u << LORA_MLP_C_PROJ, .dropout = 0.25f, .seed = 7};
    int in = 4 * C, oc = C;
    size_t n = 64;
    lora_pack_t *p = lora_pack_new(1, C, 1, &s, n);
    randomise(p);
    size_t r0 = 0;
    lora_pack_set_rows(p, &r0, &n);
    float *x = vec(n * in), *out = vec(n * oc), *dx = vec(n * in), *dout = vec(n * oc);
    for (size_t i = 0; i < n * in; i++) x[i] = 1.0f;
    fill(dout, n * oc);
    lora_forward(p, 0, LORA_MLP_C_PROJ, out, x);
    /* dx through A only where kept: count exact zeros */
    lora_backward(p, 0, LORA_MLP_C_PROJ, dx, dout, x);
    size_t zeros = 0;
    for (size_t i = 0; i < n * in; i++) zeros += dx[i] == 0.0f;
    double frac = (double)zeros / (double)(n * in);
    ck_assert_msg(frac > 0.20 && frac < 0.30, "dropped fraction %g", frac);

    /* eval: equal to the same pack with p = 0 */
    lora_spec_t s0 = s;
    s0.dropout = 0;
    lora_pack_t *q = lora_pack_new(1, C, 1, &s0, n);
    memcpy(lora_pack_params(q), lora_pack_params(p), lora_pack_size(p) * sizeof(float));
    lora_pack_set_rows(q, &r0, &n);
    lora_pack_set_training(p, 0);
    float *o1 = vec(n * oc), *o2 = vec(n * oc);
    uint64_t before = lora_pack_rng(p, 0);
    lora_forward(p, 0, LORA_MLP_C_PROJ, o1, x);
    lora_forward(q, 0, LORA_MLP_C_PROJ, o2, x);
    ck_assert_mem_eq(o1, o2, n * oc * sizeof(float));
    ck_assert(lora_pack_rng(p, 0) == before);
    free(x), free(out), free(dx), free(dout), free(o1), free(o2);
    lora_pack_destroy(&p);
    lora_pack_destroy(&q);
}
END_TEST

/* One step of forward+backward over every (l,m) for the given pack. */
static void run_all(lora_pack_t *p, float **x, float **out, float **dout, float **dx)
{
    for (int l = 0; l < L; l++)
        for (int m = 0; m < 4; m++) { /* GPT-2's four modules */
            lora_forward(p, l, m, out[l * 4 + m], x[l * 4 + m]);
            lora_backward(p, l, m, dx[l * 4 + m], dout[l * 4 + m], x[l * 4 + m]);
        }
}

START_TEST(packing_invariance_bitwise)
{
    /* Tenant 1 alone on rows [0,n) vs inside a pack at rows [5, 5+n):
     * outputs, input gradients, dA, dB and its dropout stream are the same bits. */
    lora_spec_t s[3];
    three_specs(s, 0.2f);
    s[2].dropout = 0;
    size_t n = 6, rows = 20;
    size_t row0[3] = {0, 5, 11}, nrows[3] = {5, n, 9};
    lora_pack_t *pk = lora_pack_new(L, C, 3, s, rows);
    lora_pack_t *al = lora_pack_new(L, C, 1, &s[1], n);
    randomise(pk);
    size_t off = lora_pack_tenant_offset(pk, 1), sz = lora_pack_tenant_size(pk, 1);
    memcpy(lora_pack_params(al), lora_pack_params(pk) + off, sz * sizeof(float));
    ck_assert_int_eq(lora_pack_set_rows(pk, row0, nrows), 0);
    size_t z = 0;
    ck_assert_int_eq(lora_pack_set_rows(al, &z, &n), 0);

    float *x[8], *out[8], *dout[8], *dx[8], *xa[8], *outa[8], *douta[8], *dxa[8];
    for (int i = 0; i < 8; i++) {
        int in, oc;
        lora_module_dims(i % 4, C, &in, &oc);
        x[i] = vec(rows * in), out[i] = vec(rows * oc), dout[i] = vec(rows * oc),
        dx[i] = vec(rows * in);
        fill(x[i], rows * in), fill(out[i], rows * oc), fill(dout[i], rows * oc),
            fill(dx[i], rows * in);
        xa[i] = vec(n * in), outa[i] = vec(n * oc), douta[i] = vec(n * oc), dxa[i] = vec(n * in);
        memcpy(xa[i], x[i] + 5 * in, n * in * sizeof(float));
        memcpy(outa[i], out[i] + 5 * oc, n * oc * sizeof(float));
        memcpy(douta[i], dout[i] + 5 * oc, n * oc * sizeof(float));
        memcpy(dxa[i], dx[i] + 5 * in, n * in * sizeof(float));
    }
    for (int step = 0; step < 2; step++) {
        run_all(pk, x, out, dout, dx);
        run_all(al, xa, outa, douta, dxa);
    }
    for (int i = 0; i < 8; i++) {
        int in, oc;
        lora_module_dims(i % 4, C, &in, &oc);
        ck_assert_mem_eq(outa[i], out[i] + 5 * oc, n * oc * sizeof(float));
        ck_assert_mem_eq(dxa[i], dx[i] + 5 * in, n * in * sizeof(float));
        free(x[i]), free(out[i]), free(dout[i]), free(dx[i]);
        free(xa[i]), free(outa[i]), free(douta[i]), free(dxa[i]);
    }
    ck_assert_mem_eq(lora_pack_grads(al), lora_pack_grads(pk) + off, sz * sizeof(float));
    ck_assert(lora_pack_rng(al, 0) == lora_pack_rng(pk, 1));
    lora_pack_destroy(&pk);
    lora_pack_destroy(&al);
}
END_TEST

START_TEST(fresh_adapter_adds_exactly_zero)
{
    lora_spec_t s[3];
    three_specs(s, 0.1f);
    lora_pack_t *p = lora_pack_new(L, C, 3, s, NROWS);
    lora_pack_set_rows(p, seg_row0, seg_n);
    for (int m = 0; m < LORA_NMODULES; m++) {
        int in, oc;
        lora_module_dims(m, C, &in, &oc);
        float *x = vec(NROWS * in), *out = vec(NROWS * oc), *ref = vec(NROWS * oc);
        fill(x, NROWS * in), fill(out, NROWS * oc);
        memcpy(ref, out, NROWS * oc * sizeof(float));
        lora_forward(p, 0, m, out, x);
        ck_assert_mem_eq(out, ref, NROWS * oc * sizeof(float));
        free(x), free(out), free(ref);
    }
    lora_pack_destroy(&p);
}
END_TEST

START_TEST(bad_rows_rejected)
{
    lora_spec_t s[3];
    three_specs(s, 0);
    lora_pack_t *p = lora_pack_new(L, C, 3, s, NROWS);
    size_t r0[3] = {0, 4, 8}, n[3] = {5, 4, 2};
    ck_assert_int_eq(lora_pack_set_rows(p, r0, n), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "overlapping"));
    size_t r1[3] = {0, 4, 15}, n1[3] = {4, 4, 2};
    ck_assert_int_eq(lora_pack_set_rows(p, r1, n1), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "exceed"));
    size_t r2[3] = {0, 0, 15}, n2[3] = {4, 0, 1}; /* an empty segment may sit anywhere */
    ck_assert_int_eq(lora_pack_set_rows(p, r2, n2), 0);
    lora_pack_destroy(&p);
}
END_TEST

START_TEST(backward_without_input_gradient)
{
    /* dinp NULL (block 0 over a frozen backbone): the same dA, dB, with and
     * without dropout */
    for (int drop = 0; drop < 2; drop++) {
        lora_spec_t s[3];
        three_specs(s, drop ? 0.3f : 0.0f);
        lora_pack_t *p = lora_pack_new(L, C, 3, s, NROWS);
        randomise(p);
        lora_pack_set_rows(p, seg_row0, seg_n);
        int in, oc;
        lora_module_dims(LORA_ATTN_C_ATTN, C, &in, &oc);
        float *x = vec(NROWS * in), *out = vec(NROWS * oc), *dout = vec(NROWS * oc),
              *dx = vec(NROWS * in);
        fill(x, NROWS * in), fill(dout, NROWS * oc);
        float *g1 = vec(lora_pack_size(p));
        uint64_t rng[3];
        for (int k = 0; k < 3; k++) rng[k] = lora_pack_rng(p, k);
        lora_forward(p, 0, LORA_ATTN_C_ATTN, out, x);
        lora_backward(p, 0, LORA_ATTN_C_ATTN, dx, dout, x);
        memcpy(g1, lora_pack_grads(p), lora_pack_size(p) * sizeof(float));
        memset(lora_pack_grads(p), 0, lora_pack_size(p) * sizeof(float));
        for (int k = 0; k < 3; k++) lora_pack_set_rng(p, k, rng[k]);
        lora_forward(p, 0, LORA_ATTN_C_ATTN, out, x);
        lora_backward(p, 0, LORA_ATTN_C_ATTN, NULL, dout, x);
        ck_assert_mem_eq(g1, lora_pack_grads(p), lora_pack_size(p) * sizeof(float));
        free(x), free(out), free(dout), free(dx), free(g1);
        lora_pack_destroy(&p);
    }
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(module_dims_and_resolve), CHECK_TEST(spec_checks_and_scaling), CHECK_TEST(layout_and_init), CHECK_TEST(forward_backward_match_naive), CHECK_TEST(backward_matches_finite_differences), CHECK_TEST(dropout_mask_kept_for_backward), CHECK_TEST(packing_invariance_bitwise), CHECK_TEST(fresh_adapter_adds_exactly_zero), CHECK_TEST(bad_rows_rejected), CHECK_TEST(backward_without_input_gradient)};
    int failed = check_main((check_opts_t){.suite = "lora"}, tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
