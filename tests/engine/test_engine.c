/* test_engine.c: the engine against PyTorch references (logits, loss,
 * gradients, 5 AdamW steps), finite differences, determinism, the LoRA seam
 * (module deltas, frozen backbone, per-row loss scale) and bad model files. */
#include "engine/gpt2.h"
#include "common/h5util.h"
#include "engine/kernels.h"
#include "common/log.h"
#include "model/model_file.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/par.h"
#include "tests/check_main.h"

#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char datadir[4096];
static char tmpdir[] = "/tmp/weft-test-engine-XXXXXX";

static void data_path(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", datadir, name);
    ck_assert_int_lt(n, (int)size);
}

/* ||a - b|| / ||b|| in double. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

static float *read_f32(hid_t f, const char *path, size_t n)
{
    int rank;
    hsize_t dims[8];
    ck_assert_msg(h5_dataset_shape(f, path, &rank, dims) == 0, "%s", weft_last_error());
    size_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    ck_assert_msg(total == n, "%s holds %zu values, expected %zu", path, total, n);
    float *buf = malloc(n * sizeof *buf);
    ck_assert_msg(h5_read_f32(f, path, rank, dims, buf) == 0, "%s", weft_last_error());
    return buf;
}

static int *read_i32(hid_t f, const char *path, int *B, int *T)
{
    int rank;
    hsize_t dims[8];
    ck_assert(h5_dataset_shape(f, path, &rank, dims) == 0 && rank == 2);
    *B = (int)dims[0];
    *T = (int)dims[1];
    int *buf = malloc(dims[0] * dims[1] * sizeof *buf);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert(H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    return buf;
}

static gpt2_t *load(const char *name)
{
    char path[4200];
    data_path(path, sizeof path, name);
    gpt2_t *m = model_file_load(path, NULL, 0);
    ck_assert_msg(m != NULL, "%s", weft_last_error());
    return m;
}

/* Compares every tensor of buf with the reference datasets prefix/<name>;
 * prints the worst and fails when it is above tol. */
static void compare_tensors(const char *what, const gpt2_t *m, const float *buf, hid_t ref,
                            const char *prefix, double tol)
{
    double worst = -1;
    const char *worst_name = "";
    char path[128];
    for (size_t i = 0; i < m->ntensors; i++) {
        const gpt2_tensor_t *t = &m->tensors[i];
        snprintf(path, sizeof path, "/%s/%s", prefix, t->name);
        float *want = read_f32(ref, path, t->numel);
        double d = rel_diff(buf + t->offset, want, t->numel);
        free(want);
        if (!(d <= worst)) {
            worst = d;
            worst_name = t->name;
        }
    }
    printf("  %-28s worst %-28s rel %.3e (tolerance %.0e)\n", what, worst_name, worst, tol);
    ck_assert_msg(worst <= tol, "%s: %s differs from the reference by %.3e (tolerance %.0e)", what,
                  worst_name, worst, tol);
}

/* Parameters after training against the reference: each tensor's error
 * relative to how far the reference moved it from p0, and the error of the
 * whole parameter vector relative to its norm. Adam normalises every
 * element's step, so float32 rounding in a small gradient element becomes a
 * step error of the same relative size: a zero-initialised bias (all of it
 * movement) cannot meet 1e-5 of its own norm even in PyTorch float32 against
 * float64, while its error relative to the movement stays near 1e-4. */
static void compare_params(const gpt2_t *m, const float *p0, hid_t ref, double tol_move,
                           double tol_all)
{
    double worst = -1, err_all = 0, norm_all = 0;
    const char *worst_name = "";
    char path[128];
    for (size_t i = 0; i < m->ntensors; i++) {
        const gpt2_tensor_t *t = &m->tensors[i];
        snprintf(path, sizeof path, "/params/%s", t->name);
        float *want = read_f32(ref, path, t->numel);
        const float *got = m->params + t->offset, *start = p0 + t->offset;
        double e = 0, mv = 0, n = 0;
        for (size_t j = 0; j < t->numel; j++) {
            e += ((double)got[j] - want[j]) * ((double)got[j] - want[j]);
            mv += ((double)want[j] - start[j]) * ((double)want[j] - start[j]);
            n += (double)want[j] * want[j];
        }
        free(want);
        err_all += e;
        norm_all += n;
        double d = sqrt(e / mv);
        if (!(d <= worst)) {
            worst = d;
            worst_name = t->name;
        }
    }
    double all = sqrt(err_all / norm_all);
    printf("  %-28s worst %-28s %.3e of its movement (tolerance %.0e)\n", "parameters after steps",
           worst_name, worst, tol_move);
    printf("  %-28s all parameters rel %.3e (tolerance %.0e)\n", "", all, tol_all);
    ck_assert_msg(worst <= tol_move,
                  "after training, %s differs from the reference by %.3e of its movement",
                  worst_name, worst);
    ck_assert_msg(all <= tol_all,
                  "after training, the parameters differ from the reference by %.3e", all);
}

static void check_reference(const char *name)
{
    char model_file[64], grad_file[64], train_file[64], path[4200];
    snprintf(model_file, sizeof model_file, "%s.h5", name);
    snprintf(grad_file, sizeof grad_file, "%s-grad.h5", name);
    snprintf(train_file, sizeof train_file, "%s-train.h5", name);
    printf("reference %s\n", name);

    /* one batch: logits, loss, gradients */
    gpt2_t *m = load(model_file);
    data_path(path, sizeof path, grad_file);
    hid_t ref = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(ref >= 0, "cannot open %s", path);
    int B, T, B2, T2;
    int *inputs = read_i32(ref, "/inputs", &B, &T);
    int *targets = read_i32(ref, "/targets", &B2, &T2);
    ck_assert(B == B2 && T == T2);
    size_t nlogits = (size_t)B * T * m->cfg.vocab_size;
    float *want_logits = read_f32(ref, "/logits", nlogits);
    float *want_loss = read_f32(ref, "/loss", 1);
    float loss;
    ck_assert_msg(gpt2_forward(m, inputs, targets, B, T, &loss) == 0, "%s", weft_last_error());
    double dl = rel_diff(gpt2_logits(m), want_logits, nlogits);
    double dloss = fabs((double)loss - want_loss[0]) / fabs(want_loss[0]);
    printf("  %-28s rel %.3e\n  %-28s %.7f vs %.7f rel %.3e\n", "logits", dl, "loss", (double)loss,
           (double)want_loss[0], dloss);
    ck_assert_msg(dl <= 1e-5, "logits differ from the reference by %.3e", dl);
    ck_assert_msg(dloss <= 1e-5, "loss %.7f differs from the reference %.7f", (double)loss,
                  (double)want_loss[0]);
    ck_assert_msg(gpt2_backward(m, NULL) == 0, "%s", weft_last_error());
    compare_tensors("gradients", m, m->grads, ref, "grad", 1e-4);
    H5Fclose(ref);
    free(want_logits);
    free(want_loss);
    gpt2_destroy(&m);

    /* 5 AdamW steps with clipping and warmup + cosine */
    m = load(model_file);
    float *p0 = malloc(m->nparams * sizeof *p0);
    memcpy(p0, m->params, m->nparams * sizeof *p0);
    data_path(path, sizeof path, train_file);
    ref = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(ref >= 0, "cannot open %s", path);
    double lr, lr_min, warmup, steps, b1, b2, eps, wd, clip;
    ck_assert(
        h5_attr_read_f64(ref, "lr", &lr) == 0 && h5_attr_read_f64(ref, "lr_min", &lr_min) == 0 &&
        h5_attr_read_f64(ref, "warmup", &warmup) == 0 &&
        h5_attr_read_f64(ref, "steps", &steps) == 0 && h5_attr_read_f64(ref, "beta1", &b1) == 0 &&
        h5_attr_read_f64(ref, "beta2", &b2) == 0 && h5_attr_read_f64(ref, "eps", &eps) == 0 &&
        h5_attr_read_f64(ref, "weight_decay", &wd) == 0 &&
        h5_attr_read_f64(ref, "grad_clip", &clip) == 0);
    schedule_t sched = {SCHED_COSINE, (float)lr, (float)lr_min, (long)warmup, (long)steps};
    adamw_hparams_t hp = {(float)b1, (float)b2, (float)eps, (float)wd};
    float *mom = calloc(2 * m->nparams, sizeof *mom);
    float *want_losses = read_f32(ref, "/losses", (size_t)steps);
    float *want_norms = read_f32(ref, "/grad_norm", (size_t)steps);
    int clipped = 0;
    for (long s = 0; s < (long)steps; s++) {
        ck_assert(gpt2_forward(m, inputs, targets, B, T, &loss) == 0);
        gpt2_zero_grad(m);
        ck_assert(gpt2_backward(m, NULL) == 0);
        double norm = gpt2_grad_norm(m);
        clipped += grad_clip(m->grads, m->nparams, norm, (float)clip) < 1.0f;
        gpt2_adamw(m, mom, mom + m->nparams, schedule_lr(&sched, s), &hp, GPT2_DECAY_DEFAULT,
                   s + 1);
        double dls = fabs((double)loss - want_losses[s]) / want_losses[s];
        double dn = fabs(norm - want_norms[s]) / want_norms[s];
        printf("  step %ld loss %.6f (rel %.2e) grad norm %.5f (rel %.2e)\n", s + 1, (double)loss,
               dls, norm, dn);
        ck_assert_msg(dls <= 1e-5, "step %ld: loss %.7f, reference %.7f", s + 1, (double)loss,
                      (double)want_losses[s]);
        ck_assert_msg(dn <= 1e-4, "step %ld: grad norm %.6f, reference %.6f", s + 1, norm,
                      (double)want_norms[s]);
    }
    ck_assert_msg(clipped > 0, "the reference run should exercise clipping");
    compare_params(m, p0, ref, 1e-3, 1e-5);
    H5Fclose(ref);
    free(p0);
    free(mom);
    free(want_losses);
    free(want_norms);
    free(inputs);
    free(targets);
    gpt2_destroy(&m);
}

START_TEST(reference_tiny)
{
    check_reference("tiny");
}
END_TEST

START_TEST(reference_l3h3)
{
    check_reference("l3h3");
}
END_TEST

/* Llama family: GQA with an untied head and theta 500000; a tied head with
 * q/k/v biases and one kv head; llama3 rope scaling; head_dim != C/H with
 * linear rope scaling (scripts/make-reference.py). */
START_TEST(reference_llama)
{
    static const char *names[] = {"lgqa", "lbias", "lrope3", "lhd"};
    check_reference(names[_i]);
}
END_TEST

/* ------------------------------------------------------------------------ */

static const gpt2_config_t small_cfg = {2, 2, 16, 37, 8, ARCH_GPT2, {0}};

/* A small model with weights far enough from init that every path matters. */
static gpt2_t *random_model(const gpt2_config_t *cfg, uint64_t seed)
{
    gpt2_t *m = gpt2_new(cfg);
    ck_assert(m != NULL);
    gpt2_init_weights(m, seed);
    weft_rng_t r;
    rng_seed(&r, seed + 1000);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += rng_normal(&r, 0.0f, 0.2f);
    return m;
}

static void random_batch(int *inp, int *tgt, int B, int T, int V, uint64_t seed)
{
    weft_rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)(rng_u64(&r) % (uint64_t)V);
        tgt[i] = (int)(rng_u64(&r) % (uint64_t)V);
    }
    tgt[1] = -1;
}

/* Mean loss with the sum of per-position losses accumulated in double. */
static double loss_at(gpt2_t *m, const int *inp, const int *tgt, int B, int T)
{
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    const float *l = gpt2_losses(m);
    double s = 0;
    for (int i = 0; i < B * T; i++) s += l[i];
    return s / (double)gpt2_valid_targets(m);
}

START_TEST(finite_differences)
{
    enum { B = 2, T = 8 };
    gpt2_t *m = random_model(&small_cfg, 3);
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B, T, small_cfg.vocab_size, 5);
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    ck_assert(gpt2_backward(m, NULL) == 0);
    float *grad = malloc(m->nparams * sizeof *grad);
    memcpy(grad, m->grads, m->nparams * sizeof *grad);
    weft_rng_t r;
    rng_seed(&r, 11);
    int checked = 0;
    double worst = 0;
    for (size_t ti = 0; ti < m->ntensors; ti++) {
        const gpt2_tensor_t *t = &m->tensors[ti];
        /* every kind in block 1 and the model-level tensors */
        if (!strncmp(t->name, "h/0/", 4)) continue;
        size_t top = 0;
        for (size_t j = 1; j < t->numel; j++)
            if (fabsf(grad[t->offset + j]) > fabsf(grad[t->offset + top])) top = j;
        size_t coords[3] = {top, rng_u64(&r) % t->numel, rng_u64(&r) % t->numel};
        for (int c = 0; c < 3; c++) {
            size_t k = t->offset + coords[c];
            float saved = m->params[k], h = 1e-2f;
            m->params[k] = saved + h;
            double up = loss_at(m, inp, tgt, B, T);
            m->params[k] = saved - h;
            double down = loss_at(m, inp, tgt, B, T);
            m->params[k] = saved;
            double fd = (up - down) / (2.0 * h), an = grad[k];
            double err = fabs(fd - an) / (fabs(an) + 1e-3);
            worst = err > worst ? err : worst;
            ck_assert_msg(err < 2e-2, "%s[%zu]: analytic %.6e, finite difference %.6e", t->name,
                          coords[c], an, fd);
            checked++;
        }
    }
    printf("finite differences: %d coordinates, worst error %.3e\n", checked, worst);
    ck_assert_int_ge(checked, 3 * 14);
    free(grad);
    gpt2_destroy(&m);
}
END_TEST

/* Trains 3 steps from seed and returns a copy of params then grads. */
static float *train_copy(int threads, int blas_threads, size_t *n)
{
    par_set_threads(threads);
    openblas_set_num_threads(blas_threads);
    gpt2_config_t cfg = {2, 4, 64, 101, 64, ARCH_GPT2, {0}};
    gpt2_t *m = gpt2_new(&cfg);
    gpt2_init_weights(m, 42);
    enum { B = 3, T = 64 };
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B, T, cfg.vocab_size, 9);
    float *mom = calloc(2 * m->nparams, sizeof *mom);
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (long s = 1; s <= 3; s++) {
        gpt2_zero_grad(m);
        ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
        ck_assert(gpt2_backward(m, NULL) == 0);
        grad_clip(m->grads, m->nparams, gpt2_grad_norm(m), 1.0f);
        gpt2_adamw(m, mom, mom + m->nparams, 1e-3f, &hp, GPT2_DECAY_DEFAULT, s);
    }
    *n = 2 * m->nparams;
    float *out = malloc(*n * sizeof *out);
    memcpy(out, m->params, m->nparams * sizeof *out);
    memcpy(out + m->nparams, m->grads, m->nparams * sizeof *out);
    free(mom);
    gpt2_destroy(&m);
    par_set_threads(1);
    return out;
}

START_TEST(determinism)
{
    /* the same bits run to run with 1, 2 and 3 threads; and with OpenBLAS
     * single-threaded, the same bits for any count: every loop outside
     * sgemm cuts by rows, heads, sequences or columns (par.h). (OpenBLAS's
     * own threads may round a product differently: the engine claims the
     * same bits for the same thread count only.) */
    size_t n0;
    float *one = train_copy(1, 1, &n0);
    for (int threads = 1; threads <= 3; threads++) {
        size_t n1, n2, n3;
        float *a = train_copy(threads, threads, &n1), *b = train_copy(threads, threads, &n2);
        float *c = train_copy(threads, 1, &n3);
        ck_assert(n1 == n2 && n1 == n0 && n3 == n0);
        ck_assert_msg(!memcmp(a, b, n1 * sizeof *a),
                      "two runs with %d thread(s) gave different bits", threads);
        ck_assert_msg(!memcmp(c, one, n1 * sizeof *a),
                      "the engine's loops on %d threads gave other bits than on 1", threads);
        free(a);
        free(b);
        free(c);
    }
    free(one);
    par_set_threads(1);
}
END_TEST

/* Deltas that add inp·D to chosen modules, and accumulate dD for each. */
typedef struct {
    int layer[2];
    gpt2_module_t module[2];
    float *D[2], *dD[2];
    int n, calls_fwd, calls_bwd;
} test_delta_t;

static int delta_find(const test_delta_t *d, int layer, gpt2_module_t mod)
{
    for (int i = 0; i < d->n; i++)
        if (d->layer[i] == layer && d->module[i] == mod) return i;
    return -1;
}

static void delta_fwd(void *ctx, int layer, gpt2_module_t mod, float *out, const float *inp,
                      size_t N, int IC, int OC)
{
    test_delta_t *d = ctx;
    int i = delta_find(d, layer, mod);
    if (i < 0) return;
    d->calls_fwd++;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, OC, IC, 1.0f, inp, IC, d->D[i],
                OC, 1.0f, out, OC);
}

static void delta_bwd(void *ctx, int layer, gpt2_module_t mod, float *dinp, const float *dout,
                      const float *inp, size_t N, int IC, int OC)
{
    test_delta_t *d = ctx;
    int i = delta_find(d, layer, mod);
    if (i < 0) return;
    d->calls_bwd++;
    if (dinp) /* NULL: nothing below wants it (block 0 of a frozen model) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, IC, OC, 1.0f, dout, OC,
                    d->D[i], OC, 1.0f, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, (int)N, 1.0f, inp, IC, dout, OC,
                1.0f, d->dD[i], OC);
}

START_TEST(module_delta_frozen)
{
    /* A frozen model plus a delta D on one module must match the model whose
     * weight is W + D: same loss, and dD equal to that model's dW. A second,
     * zero delta on block 0's c_attn (the first module of the forward) checks
     * that the tested delta's input gradient flows on down: its dD must equal
     * the merged model's gradient there. No parameter gradient when frozen. */
    static const char *weights[GPT2_NMODULES] = {"attn/c_attn/weight", "attn/c_proj/weight",
                                                 "mlp/c_fc/weight", "mlp/c_proj/weight"};
    enum { B = 2, T = 8 };
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B, T, small_cfg.vocab_size, 21);
    for (int mod = 0; mod < GPT2_NMODULES; mod++)
        for (int layer = 0; layer < small_cfg.n_layer; layer++) {
            char name[64];
            snprintf(name, sizeof name, "h/%d/%s", layer, weights[mod]);
            gpt2_t *base = random_model(&small_cfg, 7), *merged = random_model(&small_cfg, 7);
            const gpt2_tensor_t *t = gpt2_tensor(base, name);
            const gpt2_tensor_t *t0 = gpt2_tensor(base, "h/0/attn/c_attn/weight");
            ck_assert(t != NULL && t0 != NULL);
            int probe = t != t0;
            test_delta_t d = {{layer, 0},
                              {(gpt2_module_t)mod, GPT2_ATTN_C_ATTN},
                              {NULL, NULL},
                              {NULL, NULL},
                              1 + probe,
                              0,
                              0};
            d.D[0] = calloc(t->numel, sizeof(float));
            d.dD[0] = calloc(t->numel, sizeof(float));
            d.D[1] = calloc(t0->numel, sizeof(float));
            d.dD[1] = calloc(t0->numel, sizeof(float));
            weft_rng_t r;
            rng_seed(&r, 100 + mod);
            for (size_t i = 0; i < t->numel; i++) {
                d.D[0][i] = rng_normal(&r, 0.0f, 0.05f);
                merged->params[t->offset + i] += d.D[0][i];
            }
            base->frozen = 1;
            base->delta = (gpt2_delta_t){delta_fwd, delta_bwd, &d};
            float l1, l2;
            ck_assert(gpt2_forward(base, inp, tgt, B, T, &l1) == 0);
            ck_assert(gpt2_backward(base, NULL) == 0);
            ck_assert(gpt2_forward(merged, inp, tgt, B, T, &l2) == 0);
            ck_assert(gpt2_backward(merged, NULL) == 0);
            ck_assert_int_eq(d.calls_fwd, d.n);
            ck_assert_int_eq(d.calls_bwd, d.n);
            ck_assert_msg(base->grads == NULL, "a frozen backbone must not get gradients");
            ck_assert_msg(fabsf(l1 - l2) <= 1e-5f * fabsf(l2), "%s: loss %g vs merged %g", name,
                          (double)l1, (double)l2);
            double dd = rel_diff(d.dD[0], merged->grads + t->offset, t->numel);
            ck_assert_msg(dd <= 1e-4, "%s: delta gradient differs from dW by %.3e", name, dd);
            if (probe) {
                dd = rel_diff(d.dD[1], merged->grads + t0->offset, t0->numel);
                ck_assert_msg(dd <= 1e-4, "%s: gradient below the delta differs by %.3e", name, dd);
            }
            for (int i = 0; i < 2; i++) free(d.D[i]), free(d.dD[i]);
            gpt2_destroy(&base);
            gpt2_destroy(&merged);
        }
}
END_TEST

START_TEST(row_scale)
{
    /* Loss scale per row: scale {1/n0, 0} over rows {0, 1} gives row 0's
     * mean-loss gradient alone, as a tenant's own normalisation in a pack.
     * (Not bit for bit: OpenBLAS 0.3.21's sgemm rounds a row differently
     * depending on how many rows the call has.) */
    enum { B = 2, T = 16 };
    const gpt2_config_t cfg = {2, 2, 16, 37, T, ARCH_GPT2, {0}};
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B, T, cfg.vocab_size, 31);
    gpt2_t *pack = random_model(&cfg, 9), *alone = random_model(&cfg, 9);
    ck_assert(gpt2_forward(alone, inp, tgt, 1, T, NULL) == 0);
    size_t n0 = gpt2_valid_targets(alone);
    ck_assert_int_eq(n0, T - 1); /* tgt[1] is ignored */
    float losses[T];
    memcpy(losses, gpt2_losses(alone), sizeof losses);
    ck_assert(gpt2_backward(alone, NULL) == 0);
    float scale[B] = {1.0f / (float)n0, 0.0f};
    ck_assert(gpt2_forward(pack, inp, tgt, B, T, NULL) == 0);
    ck_assert(rel_diff(gpt2_losses(pack), losses, T) <= 1e-6);
    ck_assert(gpt2_backward(pack, scale) == 0);
    double d = rel_diff(pack->grads, alone->grads, pack->nparams);
    ck_assert_msg(d <= 1e-5, "row-scaled gradient differs from the row alone by %.3e", d);
    gpt2_destroy(&pack);
    gpt2_destroy(&alone);
}
END_TEST

START_TEST(optimizer_pieces)
{
    schedule_t s = {SCHED_COSINE, 1.0f, 0.1f, 2, 6};
    ck_assert_float_eq_tol(schedule_lr(&s, 0), 0.5f, 1e-7f);
    ck_assert_float_eq_tol(schedule_lr(&s, 1), 1.0f, 1e-7f);
    ck_assert_float_eq_tol(schedule_lr(&s, 2), 1.0f, 1e-7f);
    ck_assert_float_eq_tol(schedule_lr(&s, 5), 0.1f, 1e-7f);
    ck_assert_float_eq_tol(schedule_lr(&s, 50), 0.1f, 1e-7f);
    ck_assert_float_eq_tol(schedule_lr(&s, 3), 0.1f + 0.9f * 0.75f, 1e-6f); /* cos(pi/3) = .5 */
    s.kind = SCHED_LINEAR;
    ck_assert_float_eq_tol(schedule_lr(&s, 3), 0.1f + 0.9f * (2.0f / 3.0f), 1e-6f);
    s.kind = SCHED_CONSTANT;
    ck_assert_float_eq_tol(schedule_lr(&s, 5), 1.0f, 1e-7f);
    sched_kind_t k;
    ck_assert_int_eq(schedule_kind_parse("cosine", &k), 0);
    ck_assert_int_eq(k, SCHED_COSINE);
    ck_assert_int_eq(schedule_kind_parse("exp", &k), -1);

    float g[4] = {3, 4, 0, 0};
    double norm = sqrt(grad_sumsq(g, 4));
    ck_assert(fabs(norm - 5.0) < 1e-12);
    ck_assert_float_eq(grad_clip(g, 4, norm, 10.0f), 1.0f);
    ck_assert_float_eq(g[0], 3.0f);
    grad_clip(g, 4, norm, 1.0f);
    ck_assert_float_eq_tol(g[1], 0.8f, 1e-6f);

    /* first AdamW step: m̂ = g, v̂ = g², so p -= lr·g/(|g|+eps) after decay */
    float p[2] = {1.0f, -2.0f}, gg[2] = {0.5f, -0.25f}, m[2] = {0}, v[2] = {0};
    adamw_hparams_t hp = {0.9f, 0.999f, 1e-8f, 0.0f};
    adamw_update(p, gg, m, v, 2, 0.1f, 0.5f, &hp, 1);
    ck_assert_float_eq_tol(p[0], 1.0f * 0.95f - 0.1f, 1e-6f);
    ck_assert_float_eq_tol(p[1], -2.0f * 0.95f + 0.1f, 1e-6f);
    ck_assert_float_eq_tol(m[0], 0.05f, 1e-7f);
    ck_assert_float_eq_tol(v[1], 0.001f * 0.0625f, 1e-9f);

    for (float x = -80.0f; x < 80.0f; x += 0.37f) {
        double want = exp((double)x), got = fast_expf(x);
        ck_assert_msg(fabs(got - want) <= 4e-7 * want, "fast_expf(%g) = %g, want %g", (double)x,
                      got, want);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bad input: one clear line, never a crash. */

static void tmp_path(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", tmpdir, name);
    ck_assert_int_lt(n, (int)size);
}

/* Copies tiny.h5 to tmpdir/name and returns the path. */
static void copy_tiny(char *out, size_t size, const char *name)
{
    char src[4200];
    data_path(src, sizeof src, "tiny.h5");
    tmp_path(out, size, name);
    gpt2_t *m = model_file_load(src, NULL, 0);
    ck_assert(m != NULL);
    ck_assert_msg(model_file_save(m, "byte", out) == 0, "%s", weft_last_error());
    gpt2_destroy(&m);
}

static void expect_load_error(const char *path, const char *needle)
{
    gpt2_t *m = model_file_load(path, NULL, 0);
    ck_assert_msg(m == NULL, "%s loaded, expected an error about '%s'", path, needle);
    const char *e = weft_last_error();
    printf("  bad model: %s\n", e);
    ck_assert_msg(strstr(e, needle) != NULL, "error '%s' should mention '%s'", e, needle);
    ck_assert_msg(strstr(e, path) != NULL, "error '%s' should name the file", e);
    ck_assert(strchr(e, '\n') == NULL);
}

START_TEST(bad_model_files)
{
    char p[4200];
    tmp_path(p, sizeof p, "missing.h5");
    expect_load_error(p, "cannot read");

    tmp_path(p, sizeof p, "text.h5");
    FILE *f = fopen(p, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    expect_load_error(p, "not an HDF5 file");

    copy_tiny(p, sizeof p, "format.h5");
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    h5_attr_write_str(h, "format", "weft-adapter");
    H5Fclose(h);
    expect_load_error(p, "not a weft-model file");

    copy_tiny(p, sizeof p, "version.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    h5_attr_write_i64(h, "version", 3);
    H5Fclose(h);
    expect_load_error(p, "version 3");

    copy_tiny(p, sizeof p, "heads.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    h5_attr_write_i64(h, "n_head", 3);
    H5Fclose(h);
    expect_load_error(p, "not divisible by n_head");

    copy_tiny(p, sizeof p, "shape.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(h, "/h/1/mlp/c_fc/weight", H5P_DEFAULT);
    float junk[32 * 100] = {0};
    hsize_t dims[2] = {32, 100};
    h5_write_f32(h, "/h/1/mlp/c_fc/weight", 2, dims, junk);
    H5Fclose(h);
    expect_load_error(p, "/h/1/mlp/c_fc/weight has shape [32,100], expected [32,128]");

    copy_tiny(p, sizeof p, "attrs.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    h5_attr_write_i64(h, "vocab_size", 300);
    H5Fclose(h);
    expect_load_error(p, "/wte has shape [257,32], expected [300,32]");

    copy_tiny(p, sizeof p, "missingds.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(h, "/ln_f/bias", H5P_DEFAULT);
    H5Fclose(h);
    expect_load_error(p, "missing dataset /ln_f/bias");

    copy_tiny(p, sizeof p, "nan.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    float ln[32];
    hsize_t d1[1] = {32};
    h5_read_f32(h, "/h/0/ln_2/weight", 1, d1, ln);
    ln[5] = NAN;
    hid_t ds = H5Dopen2(h, "/h/0/ln_2/weight", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ln);
    H5Dclose(ds);
    H5Fclose(h);
    expect_load_error(p, "/h/0/ln_2/weight holds a non-finite value");
}
END_TEST

START_TEST(bad_sizes)
{
    gpt2_config_t c;
    ck_assert_int_eq(gpt2_config_preset("huge", &c), -1);
    ck_assert(strstr(weft_last_error(), "unknown preset 'huge'"));
    ck_assert_int_eq(gpt2_config_preset("small", &c), 0);
    ck_assert_int_eq(c.n_embd, 256);
    c.n_head = 5;
    ck_assert(gpt2_new(&c) == NULL);
    ck_assert(strstr(weft_last_error(), "n_embd = 256 is not divisible by n_head = 5"));
    c = small_cfg;
    c.vocab_size = 0;
    ck_assert(gpt2_new(&c) == NULL);
    ck_assert(strstr(weft_last_error(), "vocab_size"));

    gpt2_t *m = random_model(&small_cfg, 1);
    int inp[2 * 9] = {0}, tgt[2 * 9] = {0};
    ck_assert_int_eq(gpt2_forward(m, inp, tgt, 2, 9, NULL), -1);
    ck_assert(strstr(weft_last_error(), "seq_len 9 is longer than the model's context n_ctx = 8"));
    inp[3] = 37;
    ck_assert_int_eq(gpt2_forward(m, inp, tgt, 2, 8, NULL), -1);
    ck_assert(strstr(weft_last_error(), "input token 37"));
    inp[3] = 0;
    tgt[4] = -2;
    ck_assert_int_eq(gpt2_forward(m, inp, tgt, 2, 8, NULL), -1);
    ck_assert(strstr(weft_last_error(), "target -2"));
    ck_assert_int_eq(gpt2_backward(m, NULL), -1); /* no successful forward yet */
    gpt2_destroy(&m);
}
END_TEST

START_TEST(save_load_roundtrip)
{
    char p[4200];
    tmp_path(p, sizeof p, "roundtrip.h5");
    gpt2_t *a = random_model(&small_cfg, 77);
    ck_assert(model_file_save(a, "byte", p) == 0);
    ck_assert(access(p, F_OK) == 0);
    char tok[16];
    gpt2_t *b = model_file_load(p, tok, sizeof tok);
    ck_assert(b != NULL);
    ck_assert_str_eq(tok, "byte");
    ck_assert(!memcmp(&a->cfg, &b->cfg, sizeof a->cfg));
    ck_assert(!memcmp(a->params, b->params, a->nparams * sizeof(float)));
    /* table offsets cover the buffer exactly, in order */
    size_t off = 0;
    for (size_t i = 0; i < a->ntensors; i++) {
        ck_assert_uint_eq(a->tensors[i].offset, off);
        off += a->tensors[i].numel;
    }
    ck_assert_uint_eq(off, a->nparams);
    gpt2_destroy(&a);
    gpt2_destroy(&b);
    ck_assert(b == NULL);
}
END_TEST

int main(void)
{
    const char *src = getenv("top_srcdir");
    snprintf(datadir, sizeof datadir, "%s/tests/engine/data", src ? src : ".");
    if (!mkdtemp(tmpdir)) return 1;
    h5_quiet();
    par_set_threads(1);
    check_test_t tests[] = {CHECK_TEST(reference_tiny),     CHECK_TEST(reference_l3h3),
                            CHECK_LOOP(reference_llama, 4), CHECK_TEST(finite_differences),
                            CHECK_TEST(determinism),        CHECK_TEST(module_delta_frozen),
                            CHECK_TEST(row_scale),          CHECK_TEST(optimizer_pieces),
                            CHECK_TEST(bad_model_files),    CHECK_TEST(bad_sizes),
                            CHECK_TEST(save_load_roundtrip)};
    int failed = check_main((check_opts_t){.suite = "engine", .timeout = 300, .nofork = 1}, tests,
                            CHECK_NTESTS(tests));
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed ? 1 : 0;
}
