/* bench_engine.c: weft-bench engine: one full training step (forward,
 * backward, clipping + AdamW) timed per phase, its GFLOP/s and MFU against a
 * 1024³ sgemm measured in the same process, and optionally PyTorch's figure. */
#include "bench/bench.h"
#include "engine/gpt2.h"
#include "common/log.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/par.h"

#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sysexits.h>

typedef struct {
    const char *preset;
    int B, T, threads, steps;
    int packed;    /* > 0: documents of this mean length packed into each row */
    double docs;   /* documents per row (packed) */
    double flop_tok; /* FLOPs per token counted: attention as computed */
    double fwd_ms, bwd_ms, opt_ms, step_ms, tok_s, gflops, sgemm_gflops, mfu, rss_mb;
    /* the same per CPU-second of this process: immune to time-slicing when
     * the machine is shared, and what a quiet machine's wall clock would show */
    double cpu_step_ms, cpu_tok_s, cpu_gflops, cpu_sgemm_gflops, cpu_mfu;
    size_t nparams;
    double torch_tok_s, torch_fwd_ms, torch_bwd_ms, torch_opt_ms, torch_step_ms, torch_gflops;
    double torch_cpu_tok_s;
} result_t;

/* The 1024³ sgemm that MFU is measured against, sampled between training
 * steps so that both see the same machine (others' jobs, clock, caches). */
typedef struct {
    float *a, *b, *c;
    double *gflops, *cpu_gflops;
    int n;
} sgemm_probe_t;

enum { PROBE_N = 1024, PROBE_REPS = 3 };

static int probe_init(sgemm_probe_t *p, int rounds)
{
    size_t nn = (size_t)PROBE_N * PROBE_N;
    p->a = malloc(nn * sizeof(float));
    p->b = malloc(nn * sizeof(float));
    p->c = malloc(nn * sizeof(float));
    p->gflops = calloc((size_t)rounds * PROBE_REPS, sizeof(double));
    p->cpu_gflops = calloc((size_t)rounds * PROBE_REPS, sizeof(double));
    p->n = 0;
    if (!p->a || !p->b || !p->c || !p->gflops || !p->cpu_gflops)
        return weft_error("out of memory for the sgemm probe");
    weft_rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < nn; i++) {
        p->a[i] = rng_uniform(&r) - 0.5f;
        p->b[i] = rng_uniform(&r) - 0.5f;
    }
    return 0;
}

static void probe_sample(sgemm_probe_t *p)
{
    for (int i = 0; i < PROBE_REPS; i++) {
        double flop = 2.0 * PROBE_N * PROBE_N * PROBE_N, t0 = bench_now(), c0 = bench_cpu_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PROBE_N, PROBE_N, PROBE_N, 1.0f,
                    p->a, PROBE_N, p->b, PROBE_N, 0.0f, p->c, PROBE_N);
        p->cpu_gflops[p->n] = flop / (bench_cpu_now() - c0) / 1e9;
        p->gflops[p->n++] = flop / (bench_now() - t0) / 1e9;
    }
}

static void probe_free(sgemm_probe_t *p)
{
    free(p->a), free(p->b), free(p->c), free(p->gflops), free(p->cpu_gflops);
}

static int run_engine(result_t *res)
{
    gpt2_config_t cfg;
    if (gpt2_config_preset(res->preset, &cfg) < 0) return -1;
    if (res->T > cfg.n_ctx)
        return weft_error("--seq %d is longer than preset %s's context %d", res->T, res->preset,
                          cfg.n_ctx);
    par_set_threads(res->threads);
    sgemm_probe_t probe;
    if (probe_init(&probe, res->steps + 1) < 0) {
        probe_free(&probe);
        return -1;
    }
    gpt2_t *m = gpt2_new(&cfg);
    if (!m) {
        probe_free(&probe);
        return -1;
    }
    gpt2_init_weights(m, 1);
    int B = res->B, T = res->T;
    size_t N = (size_t)B * T;
    int *inp = malloc(N * sizeof *inp), *tgt = malloc(N * sizeof *tgt);
    float *mom = calloc(2 * m->nparams, sizeof *mom);
    if (!inp || !tgt || !mom || !gpt2_grads(m) || gpt2_alloc(m, B, T) < 0) {
        free(inp), free(tgt), free(mom);
        probe_free(&probe);
        gpt2_destroy(&m);
        return weft_error("out of memory for preset %s at batch %dx%d", res->preset, B, T);
    }
    weft_rng_t r;
    rng_seed(&r, 2);
    for (size_t i = 0; i < N; i++) {
        inp[i] = (int)(rng_u64(&r) % (uint64_t)cfg.vocab_size);
        tgt[i] = (int)(rng_u64(&r) % (uint64_t)cfg.vocab_size);
    }
    /* packed documents: lengths uniform in [mean/2, 3·mean/2], a row cut
     * where the next would not fit (the last document takes the rest) */
    int *pos = res->packed ? malloc(N * sizeof *pos) : NULL;
    int ndocs = 0;
    for (int b = 0; pos && b < B; b++)
        for (int t = 0; t < T;) {
            int lo = res->packed / 2 > 0 ? res->packed / 2 : 1;
            int len = lo + (int)(rng_u64(&r) % (uint64_t)(res->packed + 1));
            if (len > T - t) len = T - t;
            for (int i = 0; i < len; i++) pos[(size_t)b * T + t + i] = i;
            t += len;
            ndocs++;
        }
    m->pos = pos;
    res->docs = pos ? (double)ndocs / B : 1.0;
    res->flop_tok = gpt2_flops_docs(m, pos, B, T) / (double)N;
    adamw_hparams_t hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    int total = res->steps + 1; /* the first step warms caches and is not counted */
    double *tf = calloc(total, sizeof *tf), *tb = calloc(total, sizeof *tb),
           *to = calloc(total, sizeof *to), *ts = calloc(total, sizeof *ts),
           *tc = calloc(total, sizeof *tc);
    int rc = 0;
    for (int s = 0; s < total && rc == 0; s++) {
        float loss;
        double c0 = bench_cpu_now(), t0 = bench_now();
        rc = gpt2_forward(m, inp, tgt, B, T, &loss);
        double t1 = bench_now();
        gpt2_zero_grad(m);
        if (rc == 0) rc = gpt2_backward(m, NULL);
        double t2 = bench_now();
        grad_clip(m->grads, m->nparams, gpt2_grad_norm(m), 1.0f);
        gpt2_adamw(m, mom, mom + m->nparams, 1e-4f, &hp, GPT2_DECAY_DEFAULT, s + 1);
        double t3 = bench_now();
        tf[s] = t1 - t0, tb[s] = t2 - t1, to[s] = t3 - t2, ts[s] = t3 - t0;
        tc[s] = bench_cpu_now() - c0;
        probe_sample(&probe);
    }
    if (rc == 0) {
        res->fwd_ms = 1e3 * bench_median(tf + 1, res->steps);
        res->bwd_ms = 1e3 * bench_median(tb + 1, res->steps);
        res->opt_ms = 1e3 * bench_median(to + 1, res->steps);
        res->step_ms = 1e3 * bench_median(ts + 1, res->steps);
        res->tok_s = (double)N / (res->step_ms / 1e3);
        res->gflops = res->flop_tok * res->tok_s / 1e9;
        res->sgemm_gflops = bench_median(probe.gflops + PROBE_REPS, (size_t)probe.n - PROBE_REPS);
        res->mfu = res->gflops / res->sgemm_gflops;
        res->cpu_step_ms = 1e3 * bench_median(tc + 1, res->steps);
        res->cpu_tok_s = (double)N / (res->cpu_step_ms / 1e3);
        res->cpu_gflops = res->flop_tok * res->cpu_tok_s / 1e9;
        res->cpu_sgemm_gflops =
            bench_median(probe.cpu_gflops + PROBE_REPS, (size_t)probe.n - PROBE_REPS);
        res->cpu_mfu = res->cpu_gflops / res->cpu_sgemm_gflops;
        res->nparams = m->nparams;
    }
    res->rss_mb = bench_peak_rss_mb();
    free(tf), free(tb), free(to), free(ts), free(tc);
    free(inp), free(tgt), free(mom), free(pos);
    probe_free(&probe);
    gpt2_destroy(&m);
    return rc;
}

/* Runs scripts/bench-torch.py with the same shape and reads its JSON line. */
static int run_torch(result_t *res, const char *script)
{
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd,
                     "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d /usr/bin/python3 '%s' "
                     "--preset %s --batch %d --seq %d --threads %d --steps %d --json",
                     res->threads, res->threads, script, res->preset, res->B, res->T, res->threads,
                     res->steps);
    if (n < 0 || n >= (int)sizeof cmd) return weft_error("torch script path too long");
    FILE *p = popen(cmd, "r");
    if (!p) return weft_error("cannot run %s", script);
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, p))
        if (line[0] == '{') snprintf(last, sizeof last, "%s", line);
    int st = pclose(p);
    if (st != 0 || !last[0])
        return weft_error("%s failed (exit status %d); is python3-torch installed?", script, st);
    json_error_t err;
    json_t *j = json_loads(last, 0, &err);
    if (!j) return weft_error("%s printed bad JSON: %s", script, err.text);
    res->torch_tok_s = json_number_value(json_object_get(j, "tokens_per_s"));
    res->torch_fwd_ms = json_number_value(json_object_get(j, "fwd_ms"));
    res->torch_bwd_ms = json_number_value(json_object_get(j, "bwd_ms"));
    res->torch_opt_ms = json_number_value(json_object_get(j, "opt_ms"));
    res->torch_step_ms = json_number_value(json_object_get(j, "step_ms"));
    res->torch_gflops = json_number_value(json_object_get(j, "gflops"));
    res->torch_cpu_tok_s = json_number_value(json_object_get(j, "cpu_tokens_per_s"));
    json_decref(j);
    return res->torch_tok_s > 0 ? 0 : weft_error("%s reported no tokens_per_s", script);
}

/* The torch script: --torch-script, else $top_srcdir/scripts, else ./scripts. */
static const char *find_torch_script(const char *given, char *buf, size_t size)
{
    if (given) return given;
    const char *src = getenv("top_srcdir");
    if (src && snprintf(buf, size, "%s/scripts/bench-torch.py", src) < (int)size &&
        access(buf, R_OK) == 0)
        return buf;
    return "scripts/bench-torch.py";
}

static void usage(FILE *out)
{
    fprintf(out, "usage: weft-bench engine [--preset small|gpt2|tiny] [--batch B] [--seq T]\n"
                 "         [--threads N] [--steps S] [--vs-torch] [--torch-script PATH] [--json]\n"
                 "         [--device cpu|cuda] [--precision bf16|tf32|fp32]\n"
                 "Times a full training step (forward, backward, clip + AdamW), medians over\n"
                 "S steps after one warm-up step; a 1024^3 sgemm is timed after every step\n"
                 "and MFU is the step's GFLOP/s over its median rate. Default: small, 4x256,\n"
                 "1 thread, 5 steps. --device cuda: the CUDA engine on GPU 0 (default gpt2,\n"
                 "16x1024, bf16, 10 steps; --vs-torch runs engine/cuda/bench_torch_cuda.py\n"
                 "on the same shape in the same call).\n"
                 "  --packed L  also run rows of packed documents of mean length L (block-\n"
                 "              diagonal attention) and print their tokens/s against the\n"
                 "              unpacked full-length rows, attention FLOPs counted as computed\n");
}

/* --packed L: unpacked full-length rows, then packed documents, same
 * shapes and process; tokens/s of both and their ratio. */
static int bench_packed(const result_t *base, int json)
{
    result_t full = *base, packed = *base;
    full.packed = 0;
    if (run_engine(&full) < 0 || run_engine(&packed) < 0) {
        weft_report();
        return 1;
    }
    printf("weft-bench engine: preset %s (%zu parameters), batch %dx%d, %d thread(s), median of "
           "%d steps\n",
           base->preset, full.nparams, base->B, base->T, base->threads, base->steps);
    printf("  %-22s %8s %9s %10s %12s %9s %6s\n", "", "docs/row", "step ms", "tokens/s",
           "GFLOP/token", "GFLOP/s", "MFU");
    const result_t *r[2] = {&full, &packed};
    for (int i = 0; i < 2; i++)
        printf("  %-22s %8.1f %9.1f %10.0f %12.4f %9.1f %5.1f%%\n",
               i ? "packed, mean length" : "unpacked, full length", r[i]->docs, r[i]->step_ms,
               r[i]->tok_s, r[i]->flop_tok / 1e9, r[i]->gflops, 100 * r[i]->mfu);
    printf("  packed / unpacked tokens/s: %.3f wall clock, %.3f per CPU-second\n",
           packed.tok_s / full.tok_s, packed.cpu_tok_s / full.cpu_tok_s);
    if (json)
        printf("{\"bench\":\"engine-packed\",\"preset\":\"%s\",\"batch\":%d,\"seq\":%d,"
               "\"mean_doc\":%d,\"docs_per_row\":%.2f,\"tokens_per_s\":%.1f,"
               "\"packed_tokens_per_s\":%.1f,\"ratio\":%.4f,\"cpu_ratio\":%.4f,"
               "\"flop_per_token\":%.0f,\"packed_flop_per_token\":%.0f}\n",
               base->preset, base->B, base->T, base->packed, packed.docs, full.tok_s, packed.tok_s,
               packed.tok_s / full.tok_s, packed.cpu_tok_s / full.cpu_tok_s, full.flop_tok,
               packed.flop_tok);
    return 0;
}

int bench_engine_cuda(int argc, char **argv); /* bench_engine_cuda.c */

int bench_engine(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--device") && !strcmp(argv[i + 1], "cuda"))
            return bench_engine_cuda(argc, argv);
    result_t res = {.preset = "small", .B = 4, .T = 256, .threads = 1, .steps = 5};
    int json = 0, vs_torch = 0;
    const char *script_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int *num = NULL;
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--vs-torch"))
            vs_torch = 1;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (i + 1 >= argc) {
            usage(stderr);
            fprintf(stderr, "weft-bench engine: %s needs a value\n", a);
            return EX_USAGE;
        } else if (!strcmp(a, "--preset"))
            res.preset = argv[++i];
        else if (!strcmp(a, "--torch-script"))
            script_arg = argv[++i];
        else if (!strcmp(a, "--device") && !strcmp(argv[i + 1], "cpu"))
            i++;
        else if (!strcmp(a, "--batch"))
            num = &res.B;
        else if (!strcmp(a, "--seq"))
            num = &res.T;
        else if (!strcmp(a, "--threads"))
            num = &res.threads;
        else if (!strcmp(a, "--steps"))
            num = &res.steps;
        else if (!strcmp(a, "--packed"))
            num = &res.packed;
        else {
            usage(stderr);
            fprintf(stderr, "weft-bench engine: unknown option '%s'\n", a);
            return EX_USAGE;
        }
        if (num) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "weft-bench engine: %s: '%s' is not a positive number\n", a,
                        argv[i]);
                return EX_USAGE;
            }
            *num = (int)v;
        }
    }
    if (res.packed) return bench_packed(&res, json);
    if (run_engine(&res) < 0) {
        weft_report();
        return 1;
    }
    char buf[4096];
    if (vs_torch && run_torch(&res, find_torch_script(script_arg, buf, sizeof buf)) < 0) {
        weft_report();
        return 1;
    }
    printf("weft-bench engine: preset %s (%zu parameters), batch %dx%d, %d thread(s), "
           "median of %d steps\n",
           res.preset, res.nparams, res.B, res.T, res.threads, res.steps);
    printf("  %-10s %9s %9s %9s %9s %10s %9s %9s %6s %8s\n", "", "fwd ms", "bwd ms", "opt ms",
           "step ms", "tokens/s", "GFLOP/s", "sgemm", "MFU", "RSS MB");
    printf("  %-10s %9.1f %9.1f %9.1f %9.1f %10.0f %9.1f %9.1f %5.1f%% %8.0f\n", "weft", res.fwd_ms,
           res.bwd_ms, res.opt_ms, res.step_ms, res.tok_s, res.gflops, res.sgemm_gflops,
           100 * res.mfu, res.rss_mb);
    printf("  %-10s %9s %9s %9s %9.1f %10.0f %9.1f %9.1f %5.1f%%   (per CPU-second)\n", "weft cpu",
           "", "", "", res.cpu_step_ms, res.cpu_tok_s, res.cpu_gflops, res.cpu_sgemm_gflops,
           100 * res.cpu_mfu);
    if (vs_torch) {
        printf("  %-10s %9.1f %9.1f %9.1f %9.1f %10.0f %9.1f\n", "pytorch", res.torch_fwd_ms,
               res.torch_bwd_ms, res.torch_opt_ms, res.torch_step_ms, res.torch_tok_s,
               res.torch_gflops);
        printf("  %-10s %9s %9s %9s %9.1f %10.0f   (per CPU-second)\n", "torch cpu", "", "", "",
               1e3 * res.B * res.T / res.torch_cpu_tok_s, res.torch_cpu_tok_s);
        printf("  weft / pytorch tokens/s: %.2fx wall clock, %.2fx per CPU-second\n",
               res.tok_s / res.torch_tok_s, res.cpu_tok_s / res.torch_cpu_tok_s);
    }
    if (json) {
        printf("{\"bench\":\"engine\",\"preset\":\"%s\",\"params\":%zu,\"batch\":%d,\"seq\":%d,"
               "\"threads\":%d,\"steps\":%d,\"fwd_ms\":%.3f,\"bwd_ms\":%.3f,\"opt_ms\":%.3f,"
               "\"step_ms\":%.3f,\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"sgemm_gflops\":%.2f,"
               "\"mfu\":%.4f,\"cpu_step_ms\":%.3f,\"cpu_tokens_per_s\":%.1f,"
               "\"cpu_gflops\":%.2f,\"cpu_sgemm_gflops\":%.2f,\"cpu_mfu\":%.4f,"
               "\"peak_rss_mb\":%.1f",
               res.preset, res.nparams, res.B, res.T, res.threads, res.steps, res.fwd_ms,
               res.bwd_ms, res.opt_ms, res.step_ms, res.tok_s, res.gflops, res.sgemm_gflops,
               res.mfu, res.cpu_step_ms, res.cpu_tok_s, res.cpu_gflops, res.cpu_sgemm_gflops,
               res.cpu_mfu, res.rss_mb);
        if (vs_torch)
            printf(",\"torch_tokens_per_s\":%.1f,\"torch_step_ms\":%.3f,\"speedup\":%.3f,"
                   "\"torch_cpu_tokens_per_s\":%.1f,\"cpu_speedup\":%.3f",
                   res.torch_tok_s, res.torch_step_ms, res.tok_s / res.torch_tok_s,
                   res.torch_cpu_tok_s, res.cpu_tok_s / res.torch_cpu_tok_s);
        printf("}\n");
    }
    return 0;
}
