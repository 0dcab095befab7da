/* test_pack.c: packed multi-tenant LoRA training on a real GPT-2 engine:
 * packing invariance (bitwise), a fresh adapter leaves the logits exactly
 * equal, the backbone's bytes never change, a NaN tenant fails alone. */
#include "engine/gpt2.h"
#include "common/log.h"
#include "engine/lora.h"
#include "engine/lora_train.h"
#include "common/sha256.h"
#include "engine/par.h"
#include "tests/check_main.h"

#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* L2 H2 C32, T = 12 (not a multiple of 8, so rows land at every alignment).
 * big(1) switches to a shape whose products are large (C256, 256 rows and
 * more a tenant, LoRA on all four modules): packed or alone, each tenant's
 * products run on its own rows (gpt2.c, rows()), at either size. */
static gpt2_config_t cfg = {.n_layer = 2, .n_head = 2, .n_embd = 32, .vocab_size = 67, .n_ctx = 16};
static int T = 12;
#define STEPS 20

static gpt2_t *model(void)
{
    gpt2_t *m = gpt2_new(&cfg);
    ck_assert_ptr_nonnull(m);
    gpt2_init_weights(m, 42);
    return m;
}

/* Tenant data: B sequences of tokens from a seeded stream, a few targets -1. */
typedef struct {
    int *inputs, *targets;
    int B;
} data_t;

static data_t make_data(int B, uint64_t seed)
{
    data_t d = {malloc((size_t)B * T * sizeof(int)), malloc((size_t)B * T * sizeof(int)), B};
    uint64_t s = seed * 2654435761u + 1;
    for (int i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d.inputs[i] = (int)((s >> 33) % cfg.vocab_size);
        d.targets[i] = (int)((s >> 13) % cfg.vocab_size);
        if (i % 7 == 3) d.targets[i] = -1;
    }
    return d;
}

static void free_data(data_t *d)
{
    free(d->inputs);
    free(d->targets);
}

static lora_hparams_t hparams(float lr)
{
    return (lora_hparams_t){
        .sched = {.kind = SCHED_COSINE, .lr = lr, .lr_min = lr / 10, .warmup = 3, .total = STEPS},
        .weight_decay = 0.01f,
        .grad_clip = 0.5f,
        .adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
    };
}

/* The four tenants of the pack: different ranks, targets, scaling, data
 * sizes, learning rates. Tenant 2 is the one compared against itself alone. */
static const lora_spec_t specs[4] = {
    {.r = 2, .alpha = 4, .targets = 0xF, .seed = 11},
    {.r = 8, .alpha = 8, .use_rslora = 1, .targets = 1u << LORA_MLP_C_PROJ, .seed = 12},
    {.r = 4,
     .alpha = 16,
     .targets = (1u << LORA_ATTN_C_ATTN) | (1u << LORA_MLP_C_FC),
     .dropout = 0.1f,
     .seed = 13},
    {.r = 3, .alpha = 3, .targets = (1u << LORA_ATTN_C_PROJ), .dropout = 0.2f, .seed = 14},
};
static int batch_sizes[4] = {3, 1, 2, 2};

/* L1 H4 C256, T = 64, 4 to 6 sequences a tenant (256 to 384 rows), every
 * tenant on all four modules. */
static int big_shape;
static void big(int on)
{
    static const gpt2_config_t small = {
        .n_layer = 2, .n_head = 2, .n_embd = 32, .vocab_size = 67, .n_ctx = 16};
    big_shape = on;
    if (!on) { /* back to the small shape (matters only without fork) */
        cfg = small, T = 12;
        memcpy(batch_sizes, (int[4]){3, 1, 2, 2}, sizeof batch_sizes);
        return;
    }
    cfg = (gpt2_config_t){.n_layer = 1, .n_head = 4, .n_embd = 256, .vocab_size = 300, .n_ctx = 64};
    T = 64;
    memcpy(batch_sizes, (int[4]){4, 6, 5, 4}, sizeof batch_sizes);
}
static const float lrs[4] = {3e-3f, 1e-2f, 5e-3f, 1e-3f};
static int threads = 1; /* WEFT_TEST_THREADS */

/* Trains tenants `which` (indices into specs) packed together for STEPS
 * steps from PEFT's init; returns the pack, the per-step losses in
 * losses[k][step], and the trainer in *tr_out when asked. */
static lora_pack_t *train(gpt2_t *m, const int *which, int K, float losses[][STEPS],
                          lora_trainer_t **tr_out, const float *lr_override)
{
    lora_spec_t s[4];
    lora_hparams_t hp[4];
    data_t d[4];
    int Bsum = 0;
    for (int k = 0; k < K; k++) {
        s[k] = specs[which[k]];
        if (big_shape) s[k].targets = 0xF;
        hp[k] = hparams(lr_override ? lr_override[k] : lrs[which[k]]);
        Bsum += batch_sizes[which[k]];
    }
    lora_pack_t *p = lora_pack_new(cfg.n_layer, cfg.n_embd, K, s, (size_t)Bsum * T);
    ck_assert_ptr_nonnull(p);
    lora_trainer_t *tr = lora_trainer_new(m, p, hp, Bsum, T);
    ck_assert_ptr_nonnull(tr);
    lora_trainer_set_threads(tr, threads);
    for (int step = 0; step < STEPS; step++) {
        lora_batch_t b[4];
        for (int k = 0; k < K; k++) {
            /* each step a fresh batch from the tenant's own stream */
            d[k] = make_data(batch_sizes[which[k]], (uint64_t)which[k] * 1000 + (uint64_t)step);
            b[k] = (lora_batch_t){d[k].inputs, d[k].targets, d[k].B};
        }
        float loss[4];
        ck_assert_int_ge(lora_trainer_step(tr, b, loss), 0);
        for (int k = 0; k < K; k++) {
            losses[k][step] = loss[k];
            free_data(&d[k]);
        }
    }
    if (tr_out)
        *tr_out = tr;
    else
        lora_trainer_destroy(&tr);
    return p;
}

static const float *tenant_params(lora_pack_t *p, int k)
{
    return lora_pack_params(p) + lora_pack_tenant_offset(p, k);
}

START_TEST(packing_invariance)
{
    big(_i == 1);
    gpt2_t *m = model();
    float packed[4][STEPS], alone[1][STEPS];
    int all[4] = {0, 1, 2, 3}, one[1] = {2};
    lora_pack_t *pk = train(m, all, 4, packed, NULL, NULL);
    lora_pack_t *al = train(m, one, 1, alone, NULL, NULL);
    ck_assert_uint_eq(lora_pack_tenant_size(al, 0), lora_pack_tenant_size(pk, 2));
    ck_assert_mem_eq(alone[0], packed[2], sizeof alone[0]);
    ck_assert_mem_eq(tenant_params(al, 0), tenant_params(pk, 2),
                     lora_pack_tenant_size(al, 0) * sizeof(float));
    /* the adapters did move: B is no longer zero and the loss changed */
    size_t a, b;
    ck_assert_int_eq(lora_pack_offsets(al, 0, cfg.n_layer - 1, LORA_MLP_C_FC, &a, &b), 0);
    ck_assert(lora_pack_params(al)[b] != 0.0f);
    ck_assert(alone[0][STEPS - 1] != alone[0][0]);
    ck_assert(isfinite(alone[0][STEPS - 1]));

    /* and the first tenant of the pack, alone, too (another offset, no dropout) */
    int first[1] = {0};
    lora_pack_destroy(&al);
    al = train(m, first, 1, alone, NULL, NULL);
    ck_assert_mem_eq(alone[0], packed[0], sizeof alone[0]);
    ck_assert_mem_eq(tenant_params(al, 0), tenant_params(pk, 0),
                     lora_pack_tenant_size(al, 0) * sizeof(float));
    lora_pack_destroy(&al);
    lora_pack_destroy(&pk);
    gpt2_destroy(&m);
    big(0);
}
END_TEST

START_TEST(fresh_adapter_leaves_logits_equal)
{
    gpt2_t *m = model();
    data_t d = make_data(5, 7);
    size_t n = (size_t)5 * T * cfg.vocab_size;
    ck_assert_int_eq(gpt2_forward(m, d.inputs, d.targets, 5, T, NULL), 0);
    float *base = malloc(n * sizeof *base);
    memcpy(base, gpt2_logits(m), n * sizeof *base);

    lora_spec_t s[2] = {specs[0], specs[2]};
    lora_pack_t *p = lora_pack_new(cfg.n_layer, cfg.n_embd, 2, s, 5 * T);
    lora_hparams_t hp[2] = {hparams(1e-3f), hparams(1e-3f)};
    lora_trainer_t *tr = lora_trainer_new(m, p, hp, 5, T);
    lora_batch_t b[2] = {{d.inputs, d.targets, 2}, {d.inputs + 2 * T, d.targets + 2 * T, 3}};
    float loss[2];
    /* in training mode, with dropout drawing masks, and in evaluation mode */
    ck_assert_int_eq(lora_trainer_forward_backward(tr, b, loss), 0);
    ck_assert_int_eq(lora_trainer_eval(tr, b, loss), 0);
    ck_assert_mem_eq(gpt2_logits(m), base, n * sizeof *base);
    lora_pack_set_training(p, 1);
    ck_assert_int_eq(gpt2_forward(m, d.inputs, d.targets, 5, T, NULL), 0);
    ck_assert_mem_eq(gpt2_logits(m), base, n * sizeof *base);

    /* a trained adapter does change them: the seam is live */
    lora_pack_params(p)[lora_pack_size(p) - 1] = 0.5f;
    ck_assert_int_eq(gpt2_forward(m, d.inputs, d.targets, 5, T, NULL), 0);
    ck_assert(memcmp(gpt2_logits(m), base, n * sizeof *base) != 0);
    lora_trainer_destroy(&tr);
    ck_assert_ptr_null(m->delta.forward);
    lora_pack_destroy(&p);
    free(base);
    free_data(&d);
    gpt2_destroy(&m);
}
END_TEST

START_TEST(backbone_bytes_unchanged)
{
    gpt2_t *m = model();
    uint8_t before[32], after[32];
    weft_sha256_t h;
    weft_sha256_init(&h);
    weft_sha256_update(&h, m->params, m->nparams * sizeof(float));
    weft_sha256_final(&h, before);
    float losses[4][STEPS];
    int all[4] = {0, 1, 2, 3};
    lora_pack_t *p = train(m, all, 4, losses, NULL, NULL);
    weft_sha256_init(&h);
    weft_sha256_update(&h, m->params, m->nparams * sizeof(float));
    weft_sha256_final(&h, after);
    ck_assert_mem_eq(before, after, 32);
    ck_assert_ptr_null(m->grads); /* frozen: no backbone gradient was ever made */
    ck_assert(losses[0][STEPS - 1] < losses[0][0] + 1.0f);
    lora_pack_destroy(&p);
    gpt2_destroy(&m);
}
END_TEST

START_TEST(nan_tenant_fails_alone)
{
    big(_i == 1);
    gpt2_t *m = model();
    float with[4][STEPS], without[3][STEPS];
    int four[4] = {0, 1, 2, 3}, three[3] = {0, 2, 3};
    float lr4[4] = {lrs[0], 1e30f, lrs[2], lrs[3]}, lr3[3] = {lrs[0], lrs[2], lrs[3]};
    lora_trainer_t *tr;
    lora_pack_t *p4 = train(m, four, 4, with, &tr, lr4);
    lora_pack_t *p3 = train(m, three, 3, without, NULL, lr3);
    long failed = lora_trainer_failed_at(tr, 1);
    ck_assert_msg(failed >= 1 && failed < STEPS, "tenant 1 failed at %ld", failed);
    ck_assert_int_eq(lora_trainer_tenant_step(tr, 1), failed);
    ck_assert(isnan(with[1][STEPS - 1]));
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(lora_trainer_failed_at(tr, three[k]), -1);
        ck_assert_mem_eq(tenant_params(p3, k), tenant_params(p4, three[k]),
                         lora_pack_tenant_size(p3, k) * sizeof(float));
        ck_assert_mem_eq(without[k], with[three[k]], sizeof without[k]);
    }
    lora_trainer_destroy(&tr);
    lora_pack_destroy(&p4);
    lora_pack_destroy(&p3);
    gpt2_destroy(&m);
    big(0);
}
END_TEST

START_TEST(trainer_rejects_bad_shapes)
{
    gpt2_t *m = model();
    lora_spec_t s = specs[0];
    lora_pack_t *p = lora_pack_new(cfg.n_layer + 1, cfg.n_embd, 1, &s, 4 * T);
    lora_hparams_t hp = hparams(1e-3f);
    ck_assert_ptr_null(lora_trainer_new(m, p, &hp, 4, T));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "3 blocks"));
    lora_pack_destroy(&p);
    p = lora_pack_new(cfg.n_layer, cfg.n_embd, 1, &s, 4 * T);
    ck_assert_ptr_null(lora_trainer_new(m, p, &hp, 5, T));
    lora_trainer_t *tr = lora_trainer_new(m, p, &hp, 4, T);
    data_t d = make_data(5, 1);
    lora_batch_t b = {d.inputs, d.targets, 5};
    float loss;
    ck_assert_int_eq(lora_trainer_step(tr, &b, &loss), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "4 sequences"));
    free_data(&d);
    lora_trainer_destroy(&tr);
    lora_pack_destroy(&p);
    gpt2_destroy(&m);
}
END_TEST

START_TEST(split_batch_with_valid_total)
{
    /* Two halves of a batch, each weighted by the whole batch's valid
     * targets, sum to the gradient of the whole batch's mean loss: what a
     * data-parallel worker relies on before its Allreduce. */
    gpt2_t *m = model();
    lora_spec_t s = specs[0];
    lora_pack_t *p = lora_pack_new(cfg.n_layer, cfg.n_embd, 1, &s, 4 * T);
    float *w = lora_pack_params(p);
    for (size_t i = 0; i < lora_pack_size(p); i++) w[i] = 0.05f * sinf((float)i);
    lora_hparams_t hp = hparams(1e-3f);
    lora_trainer_t *tr = lora_trainer_new(m, p, &hp, 4, T);
    data_t d = make_data(4, 9);
    size_t valid = 0;
    for (int i = 0; i < 4 * T; i++) valid += d.targets[i] >= 0;
    float loss;
    lora_batch_t whole = {d.inputs, d.targets, 4};
    ck_assert_int_eq(lora_trainer_forward_backward(tr, &whole, &loss), 0);
    size_t n = lora_pack_size(p);
    float *want = malloc(n * sizeof *want), *sum = calloc(n, sizeof *sum);
    memcpy(want, lora_pack_grads(p), n * sizeof *want);
    lora_trainer_set_valid_total(tr, 0, valid);
    for (int half = 0; half < 2; half++) {
        lora_batch_t b = {d.inputs + half * 2 * T, d.targets + half * 2 * T, 2};
        ck_assert_int_eq(lora_trainer_forward_backward(tr, &b, &loss), 0);
        for (size_t i = 0; i < n; i++) sum[i] += lora_pack_grads(p)[i];
    }
    double diff = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)sum[i] - want[i]) * ((double)sum[i] - want[i]);
        norm += (double)want[i] * want[i];
    }
    ck_assert_msg(norm > 0 && sqrt(diff / norm) < 1e-5, "relative difference %g",
                  sqrt(diff / norm));
    free(want), free(sum);
    free_data(&d);
    lora_trainer_destroy(&tr);
    lora_pack_destroy(&p);
    gpt2_destroy(&m);
}
END_TEST

int main(void)
{
    /* The bitwise properties hold for any thread count, the same packed as
     * alone; test_coretypes.sh runs this with 1 and 2 under every kernel
     * family the CPU can execute (OPENBLAS_CORETYPE). */
    const char *env = getenv("WEFT_TEST_THREADS");
    threads = env && atoi(env) > 1 ? atoi(env) : 1;
    par_set_threads(threads);
    check_test_t tests[] = {
        CHECK_LOOP(packing_invariance, 2),      CHECK_TEST(fresh_adapter_leaves_logits_equal),
        CHECK_TEST(backbone_bytes_unchanged),   CHECK_LOOP(nan_tenant_fails_alone, 2),
        CHECK_TEST(trainer_rejects_bad_shapes), CHECK_TEST(split_batch_with_valid_total)};
    int failed = check_main((check_opts_t){.suite = "lora-pack", .tcase = "pack", .timeout = 300},
                            tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
