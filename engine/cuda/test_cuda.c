/* test_cuda.c: the CUDA engine against the CPU engine (engine/gpt2.c): loss,
 * logits and every gradient in fp32 to 1e-4 relative on the reference models
 * of tests/engine and on wider random models, AdamW and clipping over
 * several steps; same bits run to run; a 200-step bf16 (and tf32) loss curve
 * within 2% of fp32; bad input refused in one line. Exits 1 on any failure.
 * Usage: test_cuda [DIR]   (DIR holds tiny.raw, l3h3.raw from h5_to_raw.py;
 * without it the reference-model checks are skipped, and say so). */
#include "engine/cuda/gpt2_cuda.h"
#include "common/log.h"
#include "engine/optim.h"
#include "engine/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

#define MUST(x)                                                                                    \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #x, weft_last_error());            \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != a[i]) return INFINITY;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    MUST(p);
    return p;
}

/* Per-tensor comparison; prints the worst tensor. */
static void compare_tensors(const char *what, const gpt2_t *m, const float *got, const float *want,
                            double tol)
{
    double worst = 0;
    const char *wname = "";
    for (size_t i = 0; i < m->ntensors; i++) {
        const gpt2_tensor_t *t = &m->tensors[i];
        double r = rel_diff(got + t->offset, want + t->offset, t->numel);
        CHECK(r <= tol, "%s: %s differs by %.3g relative (tolerance %.0e)", what, t->name, r, tol);
        if (!(r <= worst)) {
            worst = r;
            wname = t->name;
        }
    }
    printf("  %-34s worst tensor %-26s %.3g\n", what, wname, worst);
}

/* ---------------------------------------------------------------------------
 * GPU (fp32) against CPU on one model and batch: forward, backward, then
 * `steps` training steps (norm, clip at 1.0, AdamW). */
static void vs_cpu(const char *label, gpt2_t *cpu, const int *inp, const int *tgt, int B, int T,
                   const float *scale, double tol)
{
    printf("%s: L%d NH%d C%d V%d, B%d T%d\n", label, cpu->cfg.n_layer, cpu->cfg.n_head,
           cpu->cfg.n_embd, cpu->cfg.vocab_size, B, T);
    size_t np = cpu->nparams, NV = (size_t)B * T * cpu->cfg.vocab_size;
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, GPT2_CUDA_FP32, 0);
    MUST(g);
    MUST(gpt2_grads(cpu));
    gpt2_zero_grad(cpu);
    float lc, lg;
    MUST(gpt2_forward(cpu, inp, tgt, B, T, &lc) == 0);
    MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &lg) == 0);
    float *logits = xmalloc(NV * sizeof(float));
    MUST(gpt2_cuda_logits(g, logits) == 0);
    double rl = rel_diff(logits, gpt2_logits(cpu), NV);
    CHECK(fabsf(lg - lc) <= tol * fabsf(lc), "%s: loss %.8g on the GPU, %.8g on the CPU", label, lg,
          lc);
    CHECK(rl <= tol, "%s: logits differ by %.3g relative", label, rl);
    CHECK(gpt2_cuda_valid_targets(g) == gpt2_valid_targets(cpu), "%s: valid targets differ", label);
    printf("  loss gpu %.8f cpu %.8f; logits rel %.3g\n", lg, lc, rl);
    MUST(gpt2_backward(cpu, scale) == 0);
    MUST(gpt2_cuda_backward(g, scale) == 0);
    float *gg = xmalloc(np * sizeof(float)), *pg = xmalloc(np * sizeof(float));
    MUST(gpt2_cuda_get_grads(g, gg, np) == 0);
    compare_tensors("gradients", cpu, gg, cpu->grads, tol);

    /* training steps: the CPU engine's optimizer path, step for step */
    float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
    MUST(m && v);
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (long t = 1; t <= 3; t++) {
        double nc = gpt2_grad_norm(cpu), ng = gpt2_cuda_grad_norm(g);
        CHECK(fabs(ng - nc) <= tol * nc, "%s step %ld: grad norm %.8g on the GPU, %.8g on the CPU",
              label, t, ng, nc);
        float max_norm = (float)(nc * 0.5); /* make the clip bite */
        grad_clip(cpu->grads, np, nc, max_norm);
        MUST(gpt2_cuda_grad_clip(g, nc, max_norm) > 0);
        gpt2_adamw(cpu, m, v, 1e-3f, &hp, GPT2_DECAY_DEFAULT, t);
        MUST(gpt2_cuda_adamw(g, 1e-3f, &hp, GPT2_DECAY_DEFAULT, t) == 0);
        gpt2_zero_grad(cpu);
        MUST(gpt2_cuda_zero_grad(g) == 0);
        MUST(gpt2_forward(cpu, inp, tgt, B, T, &lc) == 0);
        MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &lg) == 0);
        CHECK(fabsf(lg - lc) <= tol * fabsf(lc), "%s step %ld: loss %.8g on the GPU, %.8g on the CPU",
              label, t, lg, lc);
        MUST(gpt2_backward(cpu, scale) == 0);
        MUST(gpt2_cuda_backward(g, scale) == 0);
    }
    MUST(gpt2_cuda_get_params(g, pg, np) == 0);
    compare_tensors("params after 3 AdamW steps", cpu, pg, cpu->params, tol);
    MUST(gpt2_cuda_get_grads(g, gg, np) == 0);
    compare_tensors("gradients after 3 steps", cpu, gg, cpu->grads, tol);
    printf("  loss after 3 steps gpu %.8f cpu %.8f\n", lg, lc);
    free(m), free(v), free(gg), free(pg), free(logits);
    gpt2_cuda_destroy(&g);
    CHECK(g == NULL, "destroy NULLs the caller's pointer");
}

/* bf16 and tf32 against the CPU's fp32, loosely: one forward and backward,
 * loss within 2%, every gradient tensor within 10% (catches a wrong kernel
 * in the reduced-precision paths, which fp32 never runs). */
static void loose_vs_cpu(const char *label, gpt2_t *cpu, gpt2_cuda_precision_t prec, const int *inp,
                         const int *tgt, int B, int T)
{
    size_t np = cpu->nparams;
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, prec, 0);
    MUST(g);
    MUST(gpt2_grads(cpu));
    gpt2_zero_grad(cpu);
    float lc, lg;
    MUST(gpt2_forward(cpu, inp, tgt, B, T, &lc) == 0);
    MUST(gpt2_backward(cpu, NULL) == 0);
    MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &lg) == 0);
    MUST(gpt2_cuda_backward(g, NULL) == 0);
    float *gg = xmalloc(np * sizeof(float));
    MUST(gpt2_cuda_get_grads(g, gg, np) == 0);
    char what[96];
    snprintf(what, sizeof what, "%s %s gradients", label, gpt2_cuda_precision_name(prec));
    printf("%s %s: loss gpu %.6f cpu fp32 %.6f\n", label, gpt2_cuda_precision_name(prec), lg, lc);
    CHECK(fabsf(lg - lc) <= 0.02f * lc, "%s: loss %.6g, CPU fp32 %.6g", what, lg, lc);
    compare_tensors(what, cpu, gg, cpu->grads, 0.1);
    free(gg);
    gpt2_cuda_destroy(&g);
}

/* ---------------------------------------------------------------------------
 * Reference models (tiny, l3h3) from tests/engine/data via h5_to_raw.py. */
static int ref_model(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.raw", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP %s: %s not found (run h5_to_raw.py)\n", name, path);
        return -1;
    }
    int h[7];
    MUST(fread(h, sizeof(int), 7, f) == 7);
    gpt2_config_t cfg = {h[0], h[1], h[2], h[3], h[4], ARCH_GPT2, {0}};
    int B = h[5], T = h[6];
    gpt2_t *cpu = gpt2_new(&cfg);
    MUST(cpu);
    size_t np = cpu->nparams, N = (size_t)B * T, NV = N * cfg.vocab_size;
    int *inp = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    float loss, *logits = xmalloc(NV * sizeof(float)), *grads = xmalloc(np * sizeof(float));
    MUST(fread(cpu->params, sizeof(float), np, f) == np);
    MUST(fread(inp, sizeof(int), N, f) == N);
    MUST(fread(tgt, sizeof(int), N, f) == N);
    MUST(fread(&loss, sizeof(float), 1, f) == 1);
    MUST(fread(logits, sizeof(float), NV, f) == NV);
    MUST(fread(grads, sizeof(float), np, f) == np);
    fclose(f);

    /* the GPU against PyTorch's own numbers too */
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, GPT2_CUDA_FP32, 0);
    MUST(g);
    float lg;
    MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &lg) == 0);
    float *lgpu = xmalloc(NV * sizeof(float)), *ggpu = xmalloc(np * sizeof(float));
    MUST(gpt2_cuda_logits(g, lgpu) == 0);
    MUST(gpt2_cuda_backward(g, NULL) == 0);
    MUST(gpt2_cuda_get_grads(g, ggpu, np) == 0);
    double rl = rel_diff(lgpu, logits, NV);
    printf("%s vs PyTorch: loss %.8f (torch %.8f), logits rel %.3g\n", name, lg, loss, rl);
    CHECK(fabsf(lg - loss) <= 1e-4f * loss, "%s: loss %.8g, PyTorch %.8g", name, lg, loss);
    CHECK(rl <= 1e-4, "%s: logits differ from PyTorch's by %.3g", name, rl);
    compare_tensors("gradients vs PyTorch", cpu, ggpu, grads, 1e-4);
    gpt2_cuda_destroy(&g);

    char label[64];
    snprintf(label, sizeof label, "%s vs CPU engine", name);
    vs_cpu(label, cpu, inp, tgt, B, T, NULL, 1e-4);
    free(inp), free(tgt), free(logits), free(grads), free(lgpu), free(ggpu);
    gpt2_destroy(&cpu);
    return 0;
}

static void random_tokens(int *x, size_t n, int V, uint64_t seed)
{
    weft_rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (int)(rng_u64(&r) % (uint64_t)V);
}

/* A random model wider than the references: head sizes 64 and 32, several
 * attention tiles, T not a multiple of the tile, ignored targets and a
 * per-row loss scale. */
static void random_model(const char *label, gpt2_config_t cfg, int B, int T)
{
    gpt2_t *cpu = gpt2_new(&cfg);
    MUST(cpu);
    gpt2_init_weights(cpu, 7);
    size_t N = (size_t)B * T;
    int *inp = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    random_tokens(inp, N, cfg.vocab_size, 11);
    random_tokens(tgt, N, cfg.vocab_size, 12);
    for (size_t i = 0; i < N; i += 7) tgt[i] = -1;
    float *scale = xmalloc(B * sizeof(float));
    for (int b = 0; b < B; b++) scale[b] = (float)(b + 1) / (float)N;
    loose_vs_cpu(label, cpu, GPT2_CUDA_BF16, inp, tgt, B, T);
    loose_vs_cpu(label, cpu, GPT2_CUDA_TF32, inp, tgt, B, T);
    vs_cpu(label, cpu, inp, tgt, B, T, scale, 1e-4);
    free(inp), free(tgt), free(scale);
    gpt2_destroy(&cpu);
}

/* ---------------------------------------------------------------------------
 * Same bits run to run: two fresh engines, three full steps each. */
static void determinism(gpt2_cuda_precision_t prec)
{
    gpt2_config_t cfg = {2, 4, 256, 1000, 128, ARCH_GPT2, {0}};
    int B = 4, T = 128;
    gpt2_t *cpu = gpt2_new(&cfg);
    MUST(cpu);
    gpt2_init_weights(cpu, 3);
    size_t N = (size_t)B * T, np = cpu->nparams;
    int *inp = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    random_tokens(inp, N, cfg.vocab_size, 21);
    random_tokens(tgt, N, cfg.vocab_size, 22);
    float *p[2], loss[2][3];
    double norm[2][3];
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int run = 0; run < 2; run++) {
        gpt2_cuda_t *g = gpt2_cuda_new(cpu, prec, 0);
        MUST(g);
        for (int t = 0; t < 3; t++) {
            MUST(gpt2_cuda_zero_grad(g) == 0);
            MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &loss[run][t]) == 0);
            MUST(gpt2_cuda_backward(g, NULL) == 0);
            norm[run][t] = gpt2_cuda_grad_norm(g);
            MUST(gpt2_cuda_grad_clip(g, norm[run][t], 1.0f) > 0);
            MUST(gpt2_cuda_adamw(g, 1e-3f, &hp, GPT2_DECAY_DEFAULT, t + 1) == 0);
        }
        p[run] = xmalloc(np * sizeof(float));
        MUST(gpt2_cuda_get_params(g, p[run], np) == 0);
        gpt2_cuda_destroy(&g);
    }
    int same = !memcmp(p[0], p[1], np * sizeof(float)) && !memcmp(loss[0], loss[1], sizeof loss[0]) &&
               !memcmp(norm[0], norm[1], sizeof norm[0]);
    CHECK(same, "%s: two runs of the same three steps differ", gpt2_cuda_precision_name(prec));
    printf("determinism %s: losses %.8f %.8f %.8f, params and norms %s\n",
           gpt2_cuda_precision_name(prec), loss[0][0], loss[0][1], loss[0][2],
           same ? "bitwise equal" : "DIFFER");
    free(p[0]), free(p[1]), free(inp), free(tgt);
    gpt2_destroy(&cpu);
}

/* ---------------------------------------------------------------------------
 * 200 steps on a learnable stream (next = 7·prev + 11 + noise in 0..3, mod
 * V: the loss falls from ln V toward ln 4) in each precision; bf16 and tf32
 * must stay within 2% of fp32 at every step. */
#define CURVE_STEPS 200
static void curve(gpt2_cuda_precision_t prec, float *losses)
{
    gpt2_config_t cfg = {2, 4, 128, 128, 64, ARCH_GPT2, {0}};
    int B = 8, T = 64, V = cfg.vocab_size;
    gpt2_t *cpu = gpt2_new(&cfg);
    MUST(cpu);
    gpt2_init_weights(cpu, 5);
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, prec, 0);
    MUST(g);
    size_t N = (size_t)B * T;
    int *seq = xmalloc((N + B) * sizeof(int)), *inp = xmalloc(N * sizeof(int)),
        *tgt = xmalloc(N * sizeof(int));
    weft_rng_t r;
    rng_seed(&r, 99);
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.0f};
    schedule_t s = {SCHED_COSINE, 3e-3f, 3e-4f, 10, CURVE_STEPS};
    for (int step = 0; step < CURVE_STEPS; step++) {
        for (int b = 0; b < B; b++) {
            int x = (int)(rng_u64(&r) % (uint64_t)V);
            for (int t = 0; t <= T; t++) {
                seq[b * (T + 1) + t] = x;
                x = (7 * x + 11 + (int)(rng_u64(&r) % 4)) % V;
            }
            for (int t = 0; t < T; t++) {
                inp[b * T + t] = seq[b * (T + 1) + t];
                tgt[b * T + t] = seq[b * (T + 1) + t + 1];
            }
        }
        MUST(gpt2_cuda_zero_grad(g) == 0);
        MUST(gpt2_cuda_forward(g, inp, tgt, B, T, &losses[step]) == 0);
        MUST(gpt2_cuda_backward(g, NULL) == 0);
        double n = gpt2_cuda_grad_norm(g);
        MUST(gpt2_cuda_grad_clip(g, n, 1.0f) > 0);
        MUST(gpt2_cuda_adamw(g, schedule_lr(&s, step), &hp, GPT2_DECAY_DEFAULT, step + 1) == 0);
    }
    gpt2_cuda_destroy(&g);
    gpt2_destroy(&cpu);
    free(seq), free(inp), free(tgt);
}

static void curves(void)
{
    static float l[3][CURVE_STEPS];
    gpt2_cuda_precision_t precs[3] = {GPT2_CUDA_FP32, GPT2_CUDA_BF16, GPT2_CUDA_TF32};
    for (int i = 0; i < 3; i++) curve(precs[i], l[i]);
    double worst[3] = {0, 0, 0};
    printf("loss curve, 200 steps (L2 C128 V128, B8 T64):\n  step      fp32      bf16      tf32\n");
    for (int s = 0; s < CURVE_STEPS; s++) {
        for (int i = 1; i < 3; i++) {
            double d = fabs((double)l[i][s] - l[0][s]) / l[0][s];
            if (!(d <= worst[i])) worst[i] = d;
        }
        if (s % 20 == 0 || s == CURVE_STEPS - 1)
            printf("  %4d  %8.5f  %8.5f  %8.5f\n", s, l[0][s], l[1][s], l[2][s]);
    }
    printf("  worst relative gap to fp32: bf16 %.4f, tf32 %.4f\n", worst[1], worst[2]);
    CHECK(l[0][CURVE_STEPS - 1] < 0.6f * l[0][0], "fp32 did not learn: %.4f -> %.4f", l[0][0],
          l[0][CURVE_STEPS - 1]);
    CHECK(worst[1] <= 0.02, "bf16 curve strays %.4f from fp32 (limit 0.02)", worst[1]);
    CHECK(worst[2] <= 0.02, "tf32 curve strays %.4f from fp32 (limit 0.02)", worst[2]);
}

static void bad_input(void)
{
    gpt2_cuda_precision_t p;
    CHECK(gpt2_cuda_precision_parse("fp16", &p) < 0 && strstr(weft_last_error(), "fp16"),
          "precision fp16 refused by name");
    gpt2_config_t cfg = {1, 1, 48, 64, 16, ARCH_GPT2, {0}}; /* head size 48 */
    gpt2_t *cpu = gpt2_new(&cfg);
    MUST(cpu);
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, GPT2_CUDA_FP32, 0);
    CHECK(g == NULL && strstr(weft_last_error(), "head size 48"), "head size 48 refused: %s",
          weft_last_error());
    gpt2_cuda_destroy(&g);
    g = gpt2_cuda_new(cpu, GPT2_CUDA_FP32, 999);
    CHECK(g == NULL && strstr(weft_last_error(), "device 999"), "device 999 refused: %s",
          weft_last_error());
    gpt2_destroy(&cpu);
    cfg.n_head = 3; /* head size 16 */
    cpu = gpt2_new(&cfg);
    MUST(cpu);
    g = gpt2_cuda_new(cpu, GPT2_CUDA_FP32, 0);
    MUST(g);
    int inp[4] = {1, 2, 64, 3}, tgt[4] = {1, 1, 1, 1};
    float loss;
    CHECK(gpt2_cuda_forward(g, inp, tgt, 1, 4, &loss) < 0 && strstr(weft_last_error(), "64"),
          "token 64 outside the vocabulary refused");
    CHECK(gpt2_cuda_alloc(g, 1, 17) < 0 && strstr(weft_last_error(), "n_ctx"),
          "seq_len over n_ctx refused");
    CHECK(gpt2_cuda_backward(g, NULL) < 0, "backward before a forward refused");
    gpt2_cuda_destroy(&g);
    gpt2_destroy(&cpu);
    printf("bad input: refused in one line each\n");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL;
    if (gpt2_cuda_device_count() < 1) {
        printf("FAIL: %s\n", weft_last_error());
        return 1;
    }
    bad_input();
    if (dir) {
        ref_model(dir, "tiny");
        ref_model(dir, "l3h3");
    } else {
        printf("SKIP reference models: no data folder given\n");
    }
    random_model("hs64 model vs CPU engine", (gpt2_config_t){2, 4, 256, 1000, 160, ARCH_GPT2, {0}}, 3, 150);
    random_model("hs32 model vs CPU engine", (gpt2_config_t){1, 4, 128, 300, 80, ARCH_GPT2, {0}}, 2, 80);
    determinism(GPT2_CUDA_FP32);
    determinism(GPT2_CUDA_BF16);
    determinism(GPT2_CUDA_TF32);
    curves();
    printf("%s: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
