/* bench_cuda.c: one full training step of the CUDA engine (forward,
 * backward, norm + clip + AdamW) timed per phase, tokens/s and MFU against
 * the card's dense bf16 peak; with --torch-json FILE, PyTorch's figures for
 * the same shape (bench_torch_cuda.py) are printed beside it as a ratio.
 * Usage: bench_cuda [--preset gpt2] [-B 16] [-T 1024] [--precision bf16]
 *                   [--steps 10] [--peak-tflops 989] [--torch-json FILE] */
#include "engine/cuda/gpt2_cuda.h"
#include "common/log.h"
#include "engine/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, n, sizeof *x, cmp_d);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Reads "key": number from a one-line JSON object (our own script's). */
static double json_num(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    return p ? atof(p + strlen(pat)) : 0.0;
}

#ifdef WEFT_BENCH_CUDA_LIB /* inside weft-bench: `weft-bench engine --device cuda` */
int bench_cuda_main(int argc, char **argv);
int bench_cuda_main(int argc, char **argv)
#else
int main(int argc, char **argv)
#endif
{
    const char *preset = "gpt2", *prec_name = "bf16", *torch_json = NULL;
    int B = 16, T = 1024, steps = 10;
    double peak = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_cuda: %s needs a value\n", a);
            return 64;
        }
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "-B")) B = atoi(v);
        else if (!strcmp(a, "-T")) T = atoi(v);
        else if (!strcmp(a, "--precision")) prec_name = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--peak-tflops")) peak = atof(v);
        else if (!strcmp(a, "--torch-json")) torch_json = v;
        else {
            fprintf(stderr, "bench_cuda: unknown option %s\n", a);
            return 64;
        }
        i++;
    }
    gpt2_config_t cfg;
    gpt2_cuda_precision_t prec;
    if (gpt2_config_preset(preset, &cfg) < 0 || gpt2_cuda_precision_parse(prec_name, &prec) < 0 ||
        steps < 1) {
        fprintf(stderr, "bench_cuda: %s\n", steps < 1 ? "--steps must be >= 1" : weft_last_error());
        return 64;
    }
    gpt2_t *cpu = gpt2_new(&cfg);
    if (!cpu) return fprintf(stderr, "bench_cuda: %s\n", weft_last_error()), 1;
    gpt2_init_weights(cpu, 1);
    gpt2_cuda_t *g = gpt2_cuda_new(cpu, prec, 0);
    if (!g || gpt2_cuda_alloc(g, B, T) < 0) {
        fprintf(stderr, "bench_cuda: %s\n", weft_last_error());
        return 1;
    }
    if (peak <= 0) /* dense bf16, SXM datasheet: H100 and H200 share it */
        peak = strstr(gpt2_cuda_device_name(g), "H100") || strstr(gpt2_cuda_device_name(g), "H200")
                   ? 989.4
                   : 0;
    size_t N = (size_t)B * T;
    int *inp = malloc(N * sizeof(int)), *tgt = malloc(N * sizeof(int));
    weft_rng_t r;
    rng_seed(&r, 2);
    for (size_t i = 0; i < N; i++) {
        inp[i] = (int)(rng_u64(&r) % (uint64_t)cfg.vocab_size);
        tgt[i] = (int)(rng_u64(&r) % (uint64_t)cfg.vocab_size);
    }
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    int warm = 3, total = warm + steps;
    double *f = calloc(steps, sizeof(double)), *b = calloc(steps, sizeof(double)),
           *o = calloc(steps, sizeof(double)), *s = calloc(steps, sizeof(double));
    float loss = 0;
    for (int it = 0; it < total; it++) {
        double t0 = now();
        if (gpt2_cuda_zero_grad(g) < 0 || gpt2_cuda_forward(g, inp, tgt, B, T, &loss) < 0) break;
        double t1 = now();
        if (gpt2_cuda_backward(g, NULL) < 0 || gpt2_cuda_sync(g) < 0) break;
        double t2 = now();
        double norm = gpt2_cuda_grad_norm(g);
        if (norm < 0 || gpt2_cuda_grad_clip(g, norm, 1.0f) < 0 ||
            gpt2_cuda_adamw(g, 1e-4f, &hp, GPT2_DECAY_DEFAULT, it + 1) < 0 || gpt2_cuda_sync(g) < 0)
            break;
        double t3 = now();
        if (it >= warm) {
            f[it - warm] = (t1 - t0) * 1e3;
            b[it - warm] = (t2 - t1) * 1e3;
            o[it - warm] = (t3 - t2) * 1e3;
            s[it - warm] = (t3 - t0) * 1e3;
        }
        if (it == total - 1) printf("last loss %.4f\n", loss);
    }
    if (gpt2_cuda_sync(g) < 0) {
        fprintf(stderr, "bench_cuda: %s\n", weft_last_error());
        return 1;
    }
    double fm = median(f, steps), bm = median(b, steps), om = median(o, steps),
           sm = median(s, steps);
    double tok_s = (double)N / (sm * 1e-3);
    double fpt = gpt2_flops_per_token(cpu, T);
    double tflops = fpt * tok_s * 1e-12;
    printf("device: %s, precision %s, %s B%d T%d, %zu params, %d timed steps (median)\n",
           gpt2_cuda_device_name(g), prec_name, preset, B, T, cpu->nparams, steps);
    printf("| engine | fwd ms | bwd ms | opt ms | step ms | tokens/s | TFLOP/s | MFU |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    printf("| weft cuda %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.1f | %.1f%% |\n", prec_name, fm, bm,
           om, sm, tok_s, tflops, peak > 0 ? 100.0 * tflops / peak : 0.0);
    if (torch_json) {
        FILE *jf = fopen(torch_json, "r");
        char line[4096] = "";
        if (jf) {
            while (fgets(line, sizeof line, jf) && line[0] != '{') {}
            fclose(jf);
        }
        double tt = json_num(line, "tokens_per_s");
        if (tt > 0) {
            double ttf = fpt * tt * 1e-12;
            printf("| pytorch eager bf16 (SDPA, fused AdamW) | %.2f | %.2f | %.2f | %.2f | %.0f | "
                   "%.1f | %.1f%% |\n",
                   json_num(line, "fwd_ms"), json_num(line, "bwd_ms"), json_num(line, "opt_ms"),
                   json_num(line, "step_ms"), tt, ttf, peak > 0 ? 100.0 * ttf / peak : 0.0);
            printf("ratio weft/pytorch tokens/s: %.3f\n", tok_s / tt);
        } else {
            printf("pytorch figures unreadable in %s\n", torch_json);
        }
    }
    printf("{\"tokens_per_s\":%.1f,\"step_ms\":%.3f,\"fwd_ms\":%.3f,\"bwd_ms\":%.3f,\"opt_ms\":%.3f,"
           "\"tflops\":%.2f,\"mfu\":%.4f}\n",
           tok_s, sm, fm, bm, om, tflops, peak > 0 ? tflops / peak : 0.0);
    free(inp), free(tgt), free(f), free(b), free(o), free(s);
    gpt2_cuda_destroy(&g);
    gpt2_destroy(&cpu);
    return 0;
}
