/* test_llama.c: the Llama family beyond the PyTorch references
 * (test_engine.c): finite differences on every tensor kind, bitwise
 * determinism (per BLAS thread count), LoRA on all seven targets (finite differences), packing
 * invariance and NaN isolation on a Llama pack, and bad input refused with
 * one line naming it. */
#include "engine/gpt2.h"
#include "common/h5util.h"
#include "common/log.h"
#include "engine/lora_train.h"
#include "model/model_file.h"
#include "model/modules.h"
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

/* GQA (4 query heads over 2 kv heads), head_dim 6 != C/H, q/k/v and down
 * biases, untied head, llama3 rope scaling. */
static int pack_threads = 1; /* WEFT_TEST_THREADS */
static gpt2_config_t llama_cfg(void)
{
    gpt2_config_t c = {2, 4, 16, 41, 16, ARCH_LLAMA, {0}};
    c.llama = (llama_config_t){.n_kv_head = 2,
                               .head_dim = 6,
                               .n_inner = 24,
                               .bias = 0x47,
                               .rms_norm_eps = 1e-5f,
                               .rope_theta = 10000.0f,
                               .rope_type = ROPE_LLAMA3,
                               .rope_factor = 4.0f,
                               .rope_low_freq_factor = 1.0f,
                               .rope_high_freq_factor = 4.0f,
                               .rope_original_ctx = 8};
    return c;
}

static gpt2_t *random_model(const gpt2_config_t *cfg, uint64_t seed)
{
    gpt2_t *m = gpt2_new(cfg);
    ck_assert_msg(m != NULL, "%s", weft_last_error());
    gpt2_init_weights(m, seed);
    weft_rng_t r;
    rng_seed(&r, seed + 1000);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += rng_normal(&r, 0.0f, 0.2f);
    return m;
}

static void random_batch(int *inp, int *tgt, int n, int V, uint64_t seed)
{
    weft_rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        inp[i] = (int)(rng_u64(&r) % (uint64_t)V);
        tgt[i] = (int)(rng_u64(&r) % (uint64_t)V);
    }
    tgt[1] = -1;
}

static double loss_at(gpt2_t *m, const int *inp, const int *tgt, int B, int T)
{
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    const float *l = gpt2_losses(m);
    double s = 0;
    for (int i = 0; i < B * T; i++) s += l[i];
    return s / (double)gpt2_valid_targets(m);
}

/* Central differences at h on x[k], against the analytic gradient an. */
static double fd_error(gpt2_t *m, float *x, double an, const int *inp, const int *tgt, int B,
                       int T, const char *what, size_t idx)
{
    float saved = *x, h = 1e-2f;
    *x = saved + h;
    double up = loss_at(m, inp, tgt, B, T);
    *x = saved - h;
    double down = loss_at(m, inp, tgt, B, T);
    *x = saved;
    double fd = (up - down) / (2.0 * h);
    double err = fabs(fd - an) / (fabs(an) + 1e-3);
    ck_assert_msg(err < 2e-2, "%s[%zu]: analytic %.6e, finite difference %.6e", what, idx, an, fd);
    return err;
}

START_TEST(finite_differences)
{
    enum { B = 2, T = 10 };
    gpt2_config_t cfg = llama_cfg();
    gpt2_t *m = random_model(&cfg, 3);
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B * T, cfg.vocab_size, 5);
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    ck_assert(gpt2_backward(m, NULL) == 0);
    float *grad = malloc(m->nparams * sizeof *grad);
    memcpy(grad, m->grads, m->nparams * sizeof *grad);
    weft_rng_t r;
    rng_seed(&r, 11);
    int checked = 0, kinds = 0;
    double worst = 0;
    for (size_t ti = 0; ti < m->ntensors; ti++) {
        const gpt2_tensor_t *t = &m->tensors[ti];
        /* every kind in block 1 and the model-level tensors */
        if (!strncmp(t->name, "model/layers/0/", 15)) continue;
        kinds++;
        size_t top = 0;
        for (size_t j = 1; j < t->numel; j++)
            if (fabsf(grad[t->offset + j]) > fabsf(grad[t->offset + top])) top = j;
        size_t coords[3] = {top, rng_u64(&r) % t->numel, rng_u64(&r) % t->numel};
        for (int c = 0; c < 3; c++) {
            size_t k = t->offset + coords[c];
            double e = fd_error(m, &m->params[k], grad[k], inp, tgt, B, T, t->name, coords[c]);
            worst = e > worst ? e : worst;
            checked++;
        }
    }
    printf("llama finite differences: %d coordinates over %d tensors, worst error %.3e\n",
           checked, kinds, worst);
    /* embed, 2 norms + 7 weights + 4 biases in block 1, final norm, lm_head */
    ck_assert_int_eq(kinds, 1 + 2 + 7 + 4 + 1 + 1);
    free(grad);
    gpt2_destroy(&m);
}
END_TEST

/* One forward and backward from seed; a copy of logits then grads. */
static float *run_copy(int threads, int blas_threads, size_t *n)
{
    par_set_threads(threads);
    openblas_set_num_threads(blas_threads);
    gpt2_config_t cfg = llama_cfg();
    cfg.n_embd = 64, cfg.llama.head_dim = 16, cfg.llama.n_inner = 96, cfg.n_ctx = 64;
    gpt2_t *m = random_model(&cfg, 42);
    enum { B = 2, T = 64 };
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B * T, cfg.vocab_size, 9);
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    size_t nl = (size_t)B * T * cfg.vocab_size;
    *n = nl + m->nparams;
    float *out = malloc(*n * sizeof *out);
    memcpy(out, gpt2_logits(m), nl * sizeof *out);
    ck_assert(gpt2_backward(m, NULL) == 0);
    memcpy(out + nl, m->grads, m->nparams * sizeof *out);
    gpt2_destroy(&m);
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
    float *one = run_copy(1, 1, &n0);
    for (int threads = 1; threads <= 3; threads++) {
        size_t n1, n2, n3;
        float *a = run_copy(threads, threads, &n1), *b = run_copy(threads, threads, &n2);
        float *c = run_copy(threads, 1, &n3);
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
    par_set_threads(pack_threads);
}
END_TEST

/* LoRA on all seven Llama targets: gradients of A and B against finite
 * differences, with B moved off PEFT's zero so that both matter. */
START_TEST(lora_finite_differences)
{
    enum { B = 2, T = 8 };
    gpt2_config_t cfg = llama_cfg();
    gpt2_t *m = random_model(&cfg, 4);
    unsigned all;
    ck_assert(modules_parse("all-linear", &all) == 0);
    lora_spec_t spec = {.r = 3, .alpha = 6, .targets = all, .seed = 5};
    lora_pack_t *p = lora_pack_for(m, 1, &spec, B * T);
    ck_assert_msg(p != NULL, "%s", weft_last_error());
    ck_assert_uint_eq(lora_pack_spec(p, 0)->targets, MODULES_LLAMA);
    weft_rng_t r;
    rng_seed(&r, 8);
    float *P = lora_pack_params(p);
    for (size_t i = 0; i < lora_pack_size(p); i++) P[i] += rng_normal(&r, 0.0f, 0.3f);
    size_t row0 = 0, nrows = B * T;
    ck_assert(lora_pack_set_rows(p, &row0, &nrows) == 0);
    lora_attach(m, p);
    int inp[B * T], tgt[B * T];
    random_batch(inp, tgt, B * T, cfg.vocab_size, 6);
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    ck_assert(gpt2_backward(m, NULL) == 0);
    const float *G = lora_pack_grads(p);
    int checked = 0;
    double worst = 0;
    for (int l = 0; l < cfg.n_layer; l++)
        for (int mod = LORA_Q_PROJ; mod <= LORA_DOWN_PROJ; mod++) {
            size_t a, b;
            ck_assert(lora_pack_offsets(p, 0, l, mod, &a, &b) == 0);
            int in, out;
            ck_assert(lora_pack_module_dims(p, mod, &in, &out) == 0);
            size_t picks[2] = {a + rng_u64(&r) % (3u * (size_t)in),
                               b + rng_u64(&r) % ((size_t)out * 3u)};
            for (int i = 0; i < 2; i++) {
                double e = fd_error(m, &P[picks[i]], G[picks[i]], inp, tgt, B, T, module_name(mod),
                                    picks[i]);
                worst = e > worst ? e : worst;
                checked++;
            }
        }
    printf("llama LoRA finite differences: %d coordinates, worst error %.3e\n", checked, worst);
    lora_detach(m);
    lora_pack_destroy(&p);
    gpt2_destroy(&m);
}
END_TEST

/* Packed training on a Llama backbone. */
enum { PT = 8, STEPS = 4 };
static const lora_spec_t pspecs[3] = {
    {.r = 2, .alpha = 4, .targets = LORA_ALL_LINEAR, .seed = 21},
    {.r = 4,
     .alpha = 8,
     .targets = (1u << LORA_Q_PROJ) | (1u << LORA_V_PROJ),
     .dropout = 0.1f,
     .seed = 22},
    {.r = 3, .alpha = 3, .use_rslora = 1, .targets = 1u << LORA_DOWN_PROJ, .seed = 23},
};
static const int pbatch[3] = {2, 1, 3};

/* Trains tenants `which` packed for STEPS steps; tenant `poison` (or -1)
 * gets a NaN in its adapter before the third step. */
static lora_pack_t *ptrain(gpt2_t *m, const int *which, int K, int poison,
                           lora_trainer_t **tr_out)
{
    lora_spec_t s[3];
    lora_hparams_t hp[3];
    int Bsum = 0;
    for (int k = 0; k < K; k++) {
        s[k] = pspecs[which[k]];
        hp[k] = (lora_hparams_t){
            .sched = {.kind = SCHED_COSINE, .lr = 5e-3f, .lr_min = 5e-4f, .warmup = 1,
                      .total = STEPS},
            .weight_decay = 0.01f,
            .grad_clip = 1.0f,
            .adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}};
        Bsum += pbatch[which[k]];
    }
    lora_pack_t *p = lora_pack_for(m, K, s, (size_t)Bsum * PT);
    ck_assert_msg(p != NULL, "%s", weft_last_error());
    lora_trainer_t *tr = lora_trainer_new(m, p, hp, Bsum, PT);
    ck_assert_msg(tr != NULL, "%s", weft_last_error());
    lora_trainer_set_threads(tr, pack_threads);
    for (int step = 0; step < STEPS; step++) {
        int inp[3][3 * PT], tgt[3][3 * PT];
        lora_batch_t b[3];
        for (int k = 0; k < K; k++) {
            int n = pbatch[which[k]] * PT;
            random_batch(inp[k], tgt[k], n, m->cfg.vocab_size,
                         (uint64_t)which[k] * 100 + (uint64_t)step);
            b[k] = (lora_batch_t){inp[k], tgt[k], pbatch[which[k]]};
            if (step == 2 && k == poison)
                lora_pack_params(p)[lora_pack_tenant_offset(p, k)] = NAN;
        }
        float loss[3];
        ck_assert_int_ge(lora_trainer_step(tr, b, loss), 0);
    }
    if (tr_out)
        *tr_out = tr;
    else
        lora_trainer_destroy(&tr);
    return p;
}

static const float *tparams(lora_pack_t *p, int k)
{
    return lora_pack_params(p) + lora_pack_tenant_offset(p, k);
}

START_TEST(packing_invariance)
{
    gpt2_config_t cfg = llama_cfg();
    gpt2_t *m = random_model(&cfg, 7);
    float *before = malloc(m->nparams * sizeof *before);
    memcpy(before, m->params, m->nparams * sizeof *before);
    int all[3] = {0, 1, 2};
    lora_pack_t *pk = ptrain(m, all, 3, -1, NULL);
    for (int k = 0; k < 3; k++) {
        lora_pack_t *al = ptrain(m, &all[k], 1, -1, NULL);
        ck_assert_uint_eq(lora_pack_tenant_size(al, 0), lora_pack_tenant_size(pk, k));
        ck_assert_msg(!memcmp(tparams(al, 0), tparams(pk, k),
                              lora_pack_tenant_size(al, 0) * sizeof(float)),
                      "tenant %d packed differs from tenant %d alone", k, k);
        lora_pack_destroy(&al);
    }
    ck_assert_msg(!memcmp(before, m->params, m->nparams * sizeof *before),
                  "the backbone changed");
    lora_pack_destroy(&pk);
    free(before);
    gpt2_destroy(&m);
}
END_TEST

START_TEST(nan_tenant_fails_alone)
{
    gpt2_config_t cfg = llama_cfg();
    gpt2_t *m = random_model(&cfg, 7);
    int all[3] = {0, 1, 2}, two[2] = {0, 2};
    lora_trainer_t *tr;
    lora_pack_t *p3 = ptrain(m, all, 3, 1, &tr);
    ck_assert_int_eq(lora_trainer_failed_at(tr, 1), 2);
    ck_assert_int_eq(lora_trainer_failed_at(tr, 0), -1);
    ck_assert_int_eq(lora_trainer_failed_at(tr, 2), -1);
    lora_trainer_destroy(&tr);
    /* the survivors' bits are those of a pack without the failing tenant */
    lora_pack_t *p2 = ptrain(m, two, 2, -1, NULL);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(!memcmp(tparams(p2, k), tparams(p3, two[k]),
                              lora_pack_tenant_size(p2, k) * sizeof(float)),
                      "tenant %d changed by a NaN pack-mate", two[k]);
    lora_pack_destroy(&p2);
    lora_pack_destroy(&p3);
    gpt2_destroy(&m);
}
END_TEST

static char tmpdir[] = "/tmp/weft-test-llama-XXXXXX";

/* Saves a random model of llama_cfg() as tmpdir/name into path. */
static void make_file(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    gpt2_config_t cfg = llama_cfg();
    gpt2_t *m = random_model(&cfg, 1);
    ck_assert_msg(model_file_save(m, "byte", path) == 0, "%s", weft_last_error());
    gpt2_destroy(&m);
}

static void expect_load_error(const char *path, const char *needle)
{
    gpt2_t *m = model_file_load(path, NULL, 0);
    ck_assert_msg(m == NULL, "%s loaded, expected an error about '%s'", path, needle);
    printf("  bad llama model: %s\n", weft_last_error());
    ck_assert_msg(strstr(weft_last_error(), needle), "error '%s' does not mention '%s'",
                  weft_last_error(), needle);
    ck_assert_msg(!strchr(weft_last_error(), '\n'), "error is more than one line");
}

START_TEST(bad_input)
{
    char p[4200];
    /* a good file round-trips, biases and scaling included */
    make_file(p, sizeof p, "good.h5");
    gpt2_t *m = model_file_load(p, NULL, 0);
    ck_assert_msg(m != NULL, "%s", weft_last_error());
    gpt2_config_t want = llama_cfg();
    ck_assert_mem_eq(&m->cfg, &want, sizeof want);
    gpt2_destroy(&m);

    make_file(p, sizeof p, "kv.h5");
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(h, "n_kv_head");
    h5_attr_write_i64(h, "n_kv_head", 3);
    H5Fclose(h);
    expect_load_error(p, "n_head = 4 is not divisible by n_kv_head = 3");

    make_file(p, sizeof p, "rope.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(h, "rope_scaling_type");
    h5_attr_write_str(h, "rope_scaling_type", "yarn");
    H5Fclose(h);
    expect_load_error(p, "rope_scaling_type \"yarn\"");

    make_file(p, sizeof p, "missing.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(h, "/model/layers/1/mlp/up_proj/weight", H5P_DEFAULT);
    H5Fclose(h);
    expect_load_error(p, "/model/layers/1/mlp/up_proj/weight");

    make_file(p, sizeof p, "shape.h5");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(h, "/model/layers/0/self_attn/k_proj/weight", H5P_DEFAULT);
    float z[12 * 16] = {0};
    hsize_t dims[2] = {16, 12}; /* transposed: [in, out] instead of [out, in] */
    h5_write_f32(h, "/model/layers/0/self_attn/k_proj/weight", 2, dims, z);
    H5Fclose(h);
    expect_load_error(p, "/model/layers/0/self_attn/k_proj/weight");

    /* a LoRA target the architecture lacks */
    gpt2_config_t cfg = llama_cfg();
    m = random_model(&cfg, 1);
    unsigned t;
    ck_assert(modules_parse("self_attn.q_proj,attn.c_attn", &t) == 0);
    lora_spec_t spec = {.r = 2, .alpha = 2, .targets = t, .seed = 1};
    lora_pack_t *pk = lora_pack_for(m, 1, &spec, 16);
    ck_assert(pk == NULL);
    ck_assert(strstr(weft_last_error(), "module 0 is not a module of a llama model"));
    /* the module table names it */
    ck_assert(modules_resolve(t, m->cfg.arch, &t) == -1);
    printf("  bad llama LoRA: %s\n", weft_last_error());
    ck_assert(strstr(weft_last_error(), "'attn.c_attn' is not a module of a llama model"));
    gpt2_destroy(&m);
}
END_TEST

static void cleanup(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
    /* test_coretypes.sh runs the pack tests with 1 and 2 threads */
    const char *env = getenv("WEFT_TEST_THREADS");
    pack_threads = env && atoi(env) > 1 ? atoi(env) : 1;
    par_set_threads(pack_threads);
    h5_quiet();
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 1;
    }
    check_test_t tests[] = {CHECK_TEST(finite_differences),      CHECK_TEST(determinism),
                            CHECK_TEST(lora_finite_differences), CHECK_TEST(packing_invariance),
                            CHECK_TEST(nan_tenant_fails_alone),  CHECK_TEST(bad_input)};
    int failed =
        check_main((check_opts_t){.suite = "llama", .timeout = 120}, tests, CHECK_NTESTS(tests));
    cleanup();
    return failed ? 1 : 0;
}
