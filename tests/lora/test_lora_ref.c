/* test_lora_ref.c: two tenants (different rank, scaling, targets, data)
 * trained packed together on the engine, each matched against PyTorch's
 * plain PEFT math (scripts/make-lora-reference.py, tests/lora/data/): loss
 * and logits, adapter gradients, and 5 AdamW steps with clipping. */
#include "model/adapter.h"
#include "engine/gpt2.h"
#include "common/h5util.h"
#include "common/log.h"
#include "engine/lora_train.h"
#include "model/model_file.h"
#include "model/modules.h"
#include "common/sha256.h"
#include "tests/check_main.h"

#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 2
static const char *tenants[K] = {"acme", "globex"};
static char data[1024];

static void data_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", data, name);
    ck_assert(n > 0 && (size_t)n < size);
}

static int *read_ints(hid_t f, const char *name, int *B, int *T)
{
    int rank;
    hsize_t d[8];
    ck_assert_int_eq(h5_dataset_shape(f, name, &rank, d), 0);
    ck_assert_int_eq(rank, 2);
    int *v = malloc(d[0] * d[1] * sizeof *v);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(ds);
    *B = (int)d[0], *T = (int)d[1];
    return v;
}

static double attr(hid_t f, const char *name)
{
    double v;
    ck_assert_int_eq(h5_attr_read_f64(f, name, &v), 0);
    return v;
}

/* ||got - want|| / ||want|| over n floats */
static double rel(const float *got, const float *want, size_t n)
{
    double d = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    return sqrt(d) / (sqrt(w) + 1e-30);
}

/* Every adapter tensor of tenant k in buf against prefix/h/... in ref. */
static void compare_tensors(hid_t ref, const char *prefix, lora_pack_t *p, int k, const float *buf,
                            double tol, const char *what)
{
    float *want = malloc(lora_pack_size(p) * sizeof *want);
    ck_assert_int_eq(adapter_read_tensors(ref, prefix, p, k, want), 0);
    size_t checked = 0;
    for (int l = 0; l < lora_pack_layers(p); l++)
        for (int m = 0; m < LORA_NMODULES; m++) {
            size_t a, b;
            if (lora_pack_offsets(p, k, l, m, &a, &b) < 0) continue;
            int in, out, r = lora_pack_spec(p, k)->r;
            lora_module_dims(m, lora_pack_embd(p), &in, &out);
            double ea = rel(buf + a, want + a, (size_t)r * in);
            double eb = rel(buf + b, want + b, (size_t)out * r);
            ck_assert_msg(ea <= tol && eb <= tol,
                          "%s %s h/%d/%s: lora_A rel err %.3g, lora_B %.3g "
                          "(tolerance %.0e)",
                          tenants[k], what, l, module_path(m), ea, eb, tol);
            checked += 2;
        }
    ck_assert_uint_gt(checked, 0);
    free(want);
}

START_TEST(packed_tenants_match_pytorch)
{
    char path[1200], hex[65];
    data_path(path, sizeof path, "base.h5");
    gpt2_t *m = model_file_load(path, NULL, 0);
    ck_assert_msg(m != NULL, "%s", weft_last_error());
    ck_assert_int_eq(weft_sha256_file(path, hex), 0);

    lora_spec_t spec[K];
    adapter_info_t info[K];
    hid_t ref[K];
    int *inputs[K], *targets[K], Bk[K], T = 0, Bsum = 0;
    for (int k = 0; k < K; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.h5", tenants[k]);
        data_path(path, sizeof path, name);
        ck_assert_msg(adapter_read_info(path, &info[k]) == 0, "%s", weft_last_error());
        spec[k] = info[k].spec;
        snprintf(name, sizeof name, "%s-ref.h5", tenants[k]);
        data_path(path, sizeof path, name);
        ref[k] = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        ck_assert_int_ge(ref[k], 0);
        inputs[k] = read_ints(ref[k], "/inputs", &Bk[k], &T);
        targets[k] = read_ints(ref[k], "/targets", &Bk[k], &T);
        Bsum += Bk[k];
    }
    ck_assert_int_ne(spec[0].r, spec[1].r);
    lora_pack_t *p = lora_pack_new(m->cfg.n_layer, m->cfg.n_embd, K, spec, (size_t)Bsum * T);
    lora_hparams_t hp[K];
    for (int k = 0; k < K; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.h5", tenants[k]);
        data_path(path, sizeof path, name);
        ck_assert_msg(adapter_load(path, "base.h5", hex, p, k, NULL) == 0, "%s", weft_last_error());
        hp[k] = (lora_hparams_t){
            .sched = {.kind = SCHED_COSINE,
                      .lr = (float)attr(ref[k], "lr"),
                      .lr_min = (float)attr(ref[k], "lr_min"),
                      .warmup = (long)attr(ref[k], "warmup"),
                      .total = (long)attr(ref[k], "steps")},
            .weight_decay = (float)attr(ref[k], "weight_decay"),
            .grad_clip = (float)attr(ref[k], "grad_clip"),
            .adam = {.beta1 = (float)attr(ref[k], "beta1"),
                     .beta2 = (float)attr(ref[k], "beta2"),
                     .eps = (float)attr(ref[k], "eps")},
        };
    }
    lora_trainer_t *tr = lora_trainer_new(m, p, hp, Bsum, T);
    ck_assert_ptr_nonnull(tr);
    lora_batch_t batch[K];
    for (int k = 0; k < K; k++) batch[k] = (lora_batch_t){inputs[k], targets[k], Bk[k]};

    /* one batch: loss, logits of each tenant's rows, adapter gradients */
    float loss[K];
    ck_assert_int_eq(lora_trainer_eval(tr, batch, loss), 0);
    size_t V = (size_t)m->cfg.vocab_size, row = 0;
    for (int k = 0; k < K; k++) {
        size_t n = (size_t)Bk[k] * T * V;
        float *want = malloc(n * sizeof *want), want_loss;
        hsize_t d3[3] = {(hsize_t)Bk[k], (hsize_t)T, V};
        ck_assert_int_eq(h5_read_f32(ref[k], "/logits", 3, d3, want), 0);
        ck_assert_int_eq(h5_read_f32(ref[k], "/loss", 0, NULL, &want_loss), 0);
        double el = rel(gpt2_logits(m) + row * V, want, n);
        ck_assert_msg(el <= 1e-5, "%s logits rel err %.3g", tenants[k], el);
        ck_assert_msg(fabs(loss[k] - want_loss) <= 1e-5 * fabs(want_loss), "%s loss %.8f vs %.8f",
                      tenants[k], (double)loss[k], (double)want_loss);
        row += (size_t)Bk[k] * T;
        free(want);
    }
    ck_assert_int_eq(lora_trainer_forward_backward(tr, batch, loss), 0);
    for (int k = 0; k < K; k++)
        compare_tensors(ref[k], "/grad", p, k, lora_pack_grads(p), 1e-4, "gradient");

    /* 5 AdamW steps on the same batch, from the adapters as loaded */
    for (int k = 0; k < K; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.h5", tenants[k]);
        data_path(path, sizeof path, name);
        ck_assert_int_eq(adapter_load(path, "base.h5", hex, p, k, NULL), 0);
    }
    int steps = (int)attr(ref[0], "steps");
    float want_losses[K][16];
    for (int k = 0; k < K; k++) {
        hsize_t d1 = (hsize_t)steps;
        ck_assert_int_eq(h5_read_f32(ref[k], "/train/losses", 1, &d1, want_losses[k]), 0);
    }
    for (int s = 0; s < steps; s++) {
        ck_assert_int_eq(lora_trainer_step(tr, batch, loss), 0);
        for (int k = 0; k < K; k++)
            ck_assert_msg(fabs(loss[k] - want_losses[k][s]) <= 1e-5 * fabs(want_losses[k][s]),
                          "%s step %d loss %.8f vs %.8f", tenants[k], s, (double)loss[k],
                          (double)want_losses[k][s]);
    }
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(lora_trainer_tenant_step(tr, k), steps);
        compare_tensors(ref[k], "/train/params", p, k, lora_pack_params(p), 1e-5, "after 5 steps");
        H5Fclose(ref[k]);
        free(inputs[k]);
        free(targets[k]);
    }
    lora_trainer_destroy(&tr);
    lora_pack_destroy(&p);
    gpt2_destroy(&m);
}
END_TEST

int main(void)
{
    const char *top = getenv("top_srcdir");
    snprintf(data, sizeof data, "%s/tests/lora/data", top ? top : ".");
    h5_quiet();
    openblas_set_num_threads(1);
    check_test_t tests[] = {CHECK_TEST(packed_tenants_match_pytorch)};
    int failed = check_main((check_opts_t){.suite = "lora-reference", .tcase = "reference"}, tests,
                            CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
