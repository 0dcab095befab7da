/* bench_lora.c: weft-bench lora: packed multi-tenant LoRA steps on one frozen
 * backbone against one tenant with the same total rows and against a full
 * fine-tuning step of the same shape; tokens/s, ms/step, peak RSS per run. */
#include "bench/bench.h"
#include "engine/gpt2.h"
#include "common/log.h"
#include "engine/lora.h"
#include "engine/lora_train.h"
#include "engine/optim.h"
#include "engine/par.h"
#include "model/modules.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    gpt2_config_t cfg;
    const char *preset;
    int T, n_per, r, steps, threads;
    float alpha, dropout;
    unsigned targets;
} setup_t;

typedef struct {
    double ms, cpu_ms, tok_s, rss_mb; /* wall and CPU medians per step */
    double state_bytes;               /* per tenant */
    int ok;
} result_t;

/* Random tokens for sequences [0, B) of length T. */
static void fill_tokens(int *x, size_t n, int V, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (int)((s >> 33) % (uint64_t)V);
    }
}

/* A LoRA configuration on model m: `tenants` tenants sharing Bsum sequences
 * of the batch, with their pack and trainer. */
typedef struct {
    lora_pack_t *pack;
    lora_trainer_t *tr;
    lora_batch_t *batch;
    float *loss;
} lora_run_t;

static int lora_run_new(lora_run_t *run, const setup_t *S, gpt2_t *m, int tenants, int Bsum,
                        int *inputs, int *targets)
{
    lora_spec_t *specs = calloc((size_t)tenants, sizeof *specs);
    lora_hparams_t *hp = calloc((size_t)tenants, sizeof *hp);
    run->batch = calloc((size_t)tenants, sizeof *run->batch);
    run->loss = calloc((size_t)tenants, sizeof *run->loss);
    if (!specs || !hp || !run->batch || !run->loss) return weft_error("out of memory");
    int per = Bsum / tenants, T = S->T;
    for (int k = 0; k < tenants; k++) {
        specs[k] = (lora_spec_t){.r = S->r,
                                 .alpha = S->alpha,
                                 .targets = S->targets,
                                 .dropout = S->dropout,
                                 .seed = (uint64_t)k + 1};
        hp[k] = (lora_hparams_t){.sched = {.kind = SCHED_CONSTANT, .lr = 1e-3f, .total = 1000},
                                 .grad_clip = 1.0f,
                                 .adam = {0.9f, 0.999f, 1e-8f, 0.0f}};
        run->batch[k] =
            (lora_batch_t){inputs + (size_t)k * per * T, targets + (size_t)k * per * T, per};
    }
    run->pack = lora_pack_for(m, tenants, specs, (size_t)Bsum * T);
    run->tr = run->pack ? lora_trainer_new(m, run->pack, hp, Bsum, T) : NULL;
    if (run->tr) lora_trainer_set_threads(run->tr, S->threads);
    free(specs);
    free(hp);
    return run->tr ? 0 : -1;
}

static void lora_run_destroy(lora_run_t *run)
{
    lora_trainer_destroy(&run->tr);
    lora_pack_destroy(&run->pack);
    free(run->batch);
    free(run->loss);
}

static int lora_run_step(lora_run_t *run, gpt2_t *m)
{
    lora_attach(m, run->pack); /* two packs take turns on one backbone */
    return lora_trainer_step(run->tr, run->batch, run->loss) < 0 ? -1 : 0;
}

/* The frozen backbone's forward and backward with no adapter at all: what
 * a LoRA step costs before its own branch (the bench's diagnosis). */
static int base_step(gpt2_t *m, const int *inputs, const int *targets, int B, int T)
{
    lora_detach(m);
    m->frozen = 1;
    return gpt2_forward(m, inputs, targets, B, T, NULL) < 0 || gpt2_backward(m, NULL) < 0 ? -1 : 0;
}

/* One full fine-tuning step: forward, backward, clipping, AdamW (mom: 2N). */
static int full_step(gpt2_t *m, float *mom, const int *inputs, const int *targets, int B, int T,
                     long t)
{
    adamw_hparams_t adam = {0.9f, 0.999f, 1e-8f, 0.0f};
    float loss;
    gpt2_zero_grad(m);
    if (gpt2_forward(m, inputs, targets, B, T, &loss) < 0 || gpt2_backward(m, NULL) < 0) return -1;
    double norm = sqrt(grad_sumsq(m->grads, m->nparams));
    grad_clip(m->grads, m->nparams, norm, 1.0f);
    adamw_update(m->params, m->grads, mom, mom + m->nparams, m->nparams, 1e-3f, 0.0f, &adam, t);
    return 0;
}

/* Timing of K tenants of n_per sequences packed, one tenant of the same
 * K*n_per sequences, a full step of them, and the frozen backbone alone:
 * the four take turns step by step so that a busy machine slows them alike
 * (medians of S steps). */
static int run_timing(const setup_t *S, int K, result_t res[4])
{
    int T = S->T, V = S->cfg.vocab_size, Bsum = K * S->n_per;
    size_t N = (size_t)Bsum * T;
    gpt2_t *m = gpt2_new(&S->cfg), *full = gpt2_new(&S->cfg);
    int *inputs = malloc(N * sizeof *inputs), *targets = malloc(N * sizeof *targets);
    float *mom = full ? calloc(2 * full->nparams, sizeof *mom) : NULL;
    double *ms = calloc(8 * (size_t)S->steps, sizeof *ms), *cpu = ms ? ms + 4 * S->steps : NULL;
    if (!m || !full || !inputs || !targets || !mom || !ms || !gpt2_grads(full) ||
        gpt2_alloc(full, Bsum, T) < 0)
        return weft_error("out of memory for K=%d", K);
    gpt2_init_weights(m, 1);
    memcpy(full->params, m->params, m->nparams * sizeof(float));
    fill_tokens(inputs, N, V, 1);
    fill_tokens(targets, N, V, 2);
    lora_run_t packed = {0}, one = {0};
    if (lora_run_new(&packed, S, m, K, Bsum, inputs, targets) < 0 ||
        lora_run_new(&one, S, m, 1, Bsum, inputs, targets) < 0)
        return -1;
    for (int s = -1; s < S->steps; s++) { /* step -1 warms up */
        double t[5], c[5];
        t[0] = bench_now(), c[0] = bench_cpu_now();
        if (lora_run_step(&packed, m) < 0) return -1;
        t[1] = bench_now(), c[1] = bench_cpu_now();
        if (lora_run_step(&one, m) < 0) return -1;
        t[2] = bench_now(), c[2] = bench_cpu_now();
        if (full_step(full, mom, inputs, targets, Bsum, T, s + 2) < 0) return -1;
        t[3] = bench_now(), c[3] = bench_cpu_now();
        if (base_step(m, inputs, targets, Bsum, T) < 0) return -1;
        t[4] = bench_now(), c[4] = bench_cpu_now();
        if (s < 0) continue;
        for (int i = 0; i < 4; i++) {
            ms[i * S->steps + s] = 1e3 * (t[i + 1] - t[i]);
            cpu[i * S->steps + s] = 1e3 * (c[i + 1] - c[i]);
        }
    }
    for (int i = 0; i < 4; i++) {
        res[i].ms = bench_median(ms + (size_t)i * S->steps, (size_t)S->steps);
        res[i].cpu_ms = bench_median(cpu + (size_t)i * S->steps, (size_t)S->steps);
        res[i].tok_s = (double)N / (res[i].ms / 1e3);
        res[i].ok = 1;
    }
    res[0].state_bytes = (double)lora_pack_tenant_state_bytes(packed.pack, 0);
    res[1].state_bytes = (double)lora_pack_tenant_state_bytes(one.pack, 0);
    lora_run_destroy(&packed);
    lora_run_destroy(&one);
    free(ms), free(mom), free(inputs), free(targets);
    gpt2_destroy(&m);
    gpt2_destroy(&full);
    return 0;
}

/* Peak RSS of a process that holds one backbone and `tenants` tenants over
 * K*n_per sequences and takes two steps. */
static int run_rss(const setup_t *S, int K, int tenants, result_t *res)
{
    int T = S->T, Bsum = K * S->n_per;
    size_t N = (size_t)Bsum * T;
    gpt2_t *m = gpt2_new(&S->cfg);
    int *inputs = malloc(N * sizeof *inputs), *targets = malloc(N * sizeof *targets);
    if (!m || !inputs || !targets) return weft_error("out of memory for K=%d", K);
    gpt2_init_weights(m, 1);
    fill_tokens(inputs, N, S->cfg.vocab_size, 1);
    fill_tokens(targets, N, S->cfg.vocab_size, 2);
    lora_run_t run = {0};
    if (lora_run_new(&run, S, m, tenants, Bsum, inputs, targets) < 0) return -1;
    for (int s = 0; s < 2; s++)
        if (lora_run_step(&run, m) < 0) return -1;
    res->rss_mb = bench_peak_rss_mb();
    res->ok = 1;
    lora_run_destroy(&run);
    free(inputs), free(targets);
    gpt2_destroy(&m);
    return 0;
}

enum { JOB_TIMING, JOB_RSS_PACKED, JOB_RSS_ONE };

/* Runs one job in a child process (its own peak RSS, its own memory); the
 * results come back on a pipe. */
static int run_child(const setup_t *S, int job, int K, result_t res[4])
{
    int fd[2];
    if (pipe(fd) < 0) return weft_error("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        par_set_threads(S->threads);
        result_t r[4] = {{0}};
        int rc = job == JOB_TIMING ? run_timing(S, K, r)
                                   : run_rss(S, K, job == JOB_RSS_PACKED ? K : 1, r);
        if (rc < 0) weft_report();
        ssize_t w = write(fd[1], r, sizeof r);
        _exit(rc == 0 && w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    result_t r[4];
    ssize_t got = read(fd[0], r, sizeof r);
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status))
        return weft_error("the K=%d run failed", K);
    memcpy(res, r, sizeof r);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-bench lora [--preset NAME] [--tenants K] [--rows-per-tenant n]\n"
            "         [--r 8] [--alpha 16] [--seq T] [--targets LIST] [--dropout p] [--steps S]\n"
            "         [--threads N] [--rss-only] [--json]\n"
            "For K = 1, 4, 16, 64 (or the given K): K tenants of n sequences of T tokens packed\n"
            "in one step, one tenant with the same K*n sequences, and a full fine-tuning step\n"
            "of the same shape, each in its own process (median of S steps, peak RSS).\n"
            "Presets: tiny, small, gpt2, llama-tiny, smollm2-135m, qwen2.5-0.5b; targets:\n"
            "all-linear by default. --rss-only: peak RSS of the pack and of one tenant only.\n");
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return weft_error("%s: '%s' is not a whole number in [%d, %d]", opt, v, lo, hi);
    *out = (int)x;
    return 0;
}

int bench_lora(int argc, char **argv)
{
    setup_t S = {.preset = "small",
                 .T = 64,
                 .n_per = 1,
                 .r = 8,
                 .steps = 5,
                 .threads = 1,
                 .alpha = 16,
                 .targets = LORA_ALL_LINEAR};
    int only_K = 0, json = 0, rss_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--rss-only")) {
            rss_only = 1;
            continue;
        }
        if (i + 1 >= argc) {
            weft_error("%s needs a value; see weft-bench lora --help", a);
            goto fail;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--preset"))
            S.preset = v;
        else if (!strcmp(a, "--tenants"))
            rc = parse_int(a, v, 1, 4096, &only_K);
        else if (!strcmp(a, "--rows-per-tenant"))
            rc = parse_int(a, v, 1, 4096, &S.n_per);
        else if (!strcmp(a, "--r"))
            rc = parse_int(a, v, 1, 4096, &S.r);
        else if (!strcmp(a, "--seq"))
            rc = parse_int(a, v, 1, 1 << 16, &S.T);
        else if (!strcmp(a, "--steps"))
            rc = parse_int(a, v, 1, 1000, &S.steps);
        else if (!strcmp(a, "--threads"))
            rc = parse_int(a, v, 1, 256, &S.threads);
        else if (!strcmp(a, "--alpha"))
            S.alpha = strtof(v, NULL);
        else if (!strcmp(a, "--dropout"))
            S.dropout = strtof(v, NULL);
        else if (!strcmp(a, "--targets"))
            rc = modules_parse(v, &S.targets);
        else {
            weft_error("unknown option '%s'; see weft-bench lora --help", a);
            goto fail;
        }
        if (rc < 0) goto fail;
    }
    if (gpt2_config_preset(S.preset, &S.cfg) < 0) goto fail;
    if (S.T > S.cfg.n_ctx) {
        weft_error("--seq %d is longer than the %s preset's context %d", S.T, S.preset,
                   S.cfg.n_ctx);
        goto fail;
    }
    lora_spec_t check = {.r = S.r, .alpha = S.alpha, .targets = S.targets, .dropout = S.dropout};
    if (lora_spec_check(&check) < 0) goto fail;
    char tlist[128];
    modules_format(S.targets, tlist, sizeof tlist);

    int Ks[4] = {1, 4, 16, 64}, nK = 4;
    if (only_K) Ks[0] = only_K, nK = 1;
    printf("weft-bench lora: preset %s (L%d H%d C%d V%d), T=%d, %d seq/tenant, r=%d alpha=%g, "
           "targets %s, dropout %g, %d thread%s, median of %d steps\n",
           S.preset, S.cfg.n_layer, S.cfg.n_head, S.cfg.n_embd, S.cfg.vocab_size, S.T, S.n_per, S.r,
           (double)S.alpha, tlist, (double)S.dropout, S.threads, S.threads > 1 ? "s" : "", S.steps);
    printf("%4s %6s | %9s %8s %8s %7s | %9s %8s %8s %7s | %8s %8s | %8s %9s %9s | %9s %9s\n", "K",
           "tokens", "packed/s", "wall ms", "cpu ms", "RSS MB", "1-ten./s", "wall ms", "cpu ms",
           "RSS MB", "full ms", "cpu ms", "pk/1-ten", "lora/full", "base/full", "state/ten",
           "RSS+/ten");
    result_t pk[4], one[4], full[4], base[4];
    double growth[4] = {0};
    for (int i = 0; i < nK; i++) {
        int K = Ks[i];
        result_t r[4] = {{0}}, rss_pk[4], rss_one[4];
        if ((!rss_only && run_child(&S, JOB_TIMING, K, r) < 0) ||
            run_child(&S, JOB_RSS_PACKED, K, rss_pk) < 0 ||
            run_child(&S, JOB_RSS_ONE, K, rss_one) < 0)
            goto fail;
        if (rss_only) {
            printf("K=%d, %d tokens: peak RSS %.1f MB packed, %.1f MB one tenant of the same "
                   "rows, %.0f KB per added tenant\n",
                   K, K * S.n_per * S.T, rss_pk[0].rss_mb, rss_one[0].rss_mb,
                   K > 1 ? (rss_pk[0].rss_mb - rss_one[0].rss_mb) * 1024.0 / (K - 1) : 0.0);
            continue;
        }
        pk[i] = r[0], one[i] = r[1], full[i] = r[2], base[i] = r[3];
        pk[i].rss_mb = rss_pk[0].rss_mb, one[i].rss_mb = rss_one[0].rss_mb;
        growth[i] = K > 1 ? (pk[i].rss_mb - one[i].rss_mb) * 1024.0 / (K - 1) : 0.0;
        printf("%4d %6d | %9.0f %8.1f %8.1f %7.1f | %9.0f %8.1f %8.1f %7.1f | %8.1f %8.1f | %8.3f "
               "%9.3f %9.3f | %6.0f KB %6.0f KB\n",
               K, K * S.n_per * S.T, pk[i].tok_s, pk[i].ms, pk[i].cpu_ms, pk[i].rss_mb,
               one[i].tok_s, one[i].ms, one[i].cpu_ms, one[i].rss_mb, full[i].ms, full[i].cpu_ms,
               one[i].cpu_ms / pk[i].cpu_ms, pk[i].cpu_ms / full[i].cpu_ms,
               base[i].cpu_ms / full[i].cpu_ms, pk[i].state_bytes / 1024.0, growth[i]);
    }
    printf(
        "tokens/s from wall time; ratios from CPU time (a busy machine slows the wall clock):\n"
        "pk/1-ten: packed tokens/s over one tenant with the same rows (target >= 0.95 at K=16);\n"
        "lora/full: packed LoRA step over a full fine-tuning step of the same tokens (target <= "
        "0.70, ideal 4N/6N);\nbase/full: the frozen backbone's forward and backward alone, no "
        "adapter, over a full step;\nRSS+/ten: peak RSS of the pack minus one tenant's, per "
        "added tenant (target <= state/ten).\n");
    if (json) {
        printf("{\"bench\":\"lora\",\"preset\":\"%s\",\"T\":%d,\"rows_per_tenant\":%d,\"r\":%d,"
               "\"threads\":%d,\"steps\":%d,\"runs\":[",
               S.preset, S.T, S.n_per, S.r, S.threads, S.steps);
        for (int i = 0; i < nK; i++)
            printf("%s{\"K\":%d,\"tokens\":%d,\"packed_tok_s\":%.1f,\"packed_ms\":%.2f,"
                   "\"packed_cpu_ms\":%.2f,\"packed_rss_mb\":%.1f,\"one_tok_s\":%.1f,"
                   "\"one_ms\":%.2f,\"one_cpu_ms\":%.2f,\"one_rss_mb\":%.1f,\"full_ms\":%.2f,"
                   "\"full_cpu_ms\":%.2f,\"base_cpu_ms\":%.2f,\"packed_over_one\":%.4f,"
                   "\"lora_over_full\":%.4f,\"base_over_full\":%.4f,"
                   "\"state_bytes_per_tenant\":%.0f,\"rss_growth_kb_per_tenant\":%.1f}",
                   i ? "," : "", Ks[i], Ks[i] * S.n_per * S.T, pk[i].tok_s, pk[i].ms, pk[i].cpu_ms,
                   pk[i].rss_mb, one[i].tok_s, one[i].ms, one[i].cpu_ms, one[i].rss_mb, full[i].ms,
                   full[i].cpu_ms, base[i].cpu_ms, one[i].cpu_ms / pk[i].cpu_ms,
                   pk[i].cpu_ms / full[i].cpu_ms, base[i].cpu_ms / full[i].cpu_ms,
                   pk[i].state_bytes, growth[i]);
        printf("]}\n");
    }
    return 0;
fail:
    weft_report();
    return 1;
}
