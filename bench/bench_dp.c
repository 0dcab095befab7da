/* bench_dp.c: `weft-bench dp`: data-parallel training speed of the real
 * weft-worker under real mpirun on a weft-shards file made in a temporary
 * folder: tokens/s of 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
 * thread on one global batch, and the share of step time inside
 * MPI_Allreduce (the worker's result.json: step_s, allreduce_s). */
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "shards/shard_writer.h"
#include "engine/gpt2.h"
#include "model/model_file.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sysexits.h>

typedef struct {
    int ranks, threads;
} dp_config_t;

static const dp_config_t configs[] = {{1, 1}, {1, 2}, {2, 1}};
#define NCONFIGS (sizeof configs / sizeof configs[0])
#define MAX_REPEATS 16

typedef struct {
    const char *preset, *mode, *worker;
    int steps, batch, seq, repeats, warmup, keep;
    char dir[PATH_MAX];
} dp_setup_t;

/* What one run of one configuration gave. */
typedef struct {
    double tok_s;       /* median over the steps after the warm-up */
    double step_ms;     /* median step time */
    double ar_ms;       /* median time in MPI_Allreduce per step (rank 0) */
    double ar_min_ms;   /* least of it over the steps: the transfer without waiting */
    double allreduce_s; /* rank 0, whole run */
    double step_s;      /* rank 0, whole run */
    double step_cpu_s;  /* rank 0's CPU seconds (all its threads) in steps */
    double wall_s;      /* mpirun start to exit */
    double cpu_s;       /* CPU seconds of mpirun and its ranks */
    int ok;
} dp_run_t;

/* A synthetic corpus: documents of made-up words, "---" lines between. */
static int write_corpus(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "w");
    if (!f) return weft_error("%s: %s", path, strerror(errno));
    uint64_t s = 0x2545F4914F6CDD1Dull;
    size_t n = 0, doc = 0;
    while (n < bytes) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int len = 2 + (int)(s % 7);
        for (int k = 0; k < len; k++) fputc('a' + (int)((s >> (8 + 5 * k)) % 26), f);
        fputc((s >> 50) % 11 == 0 ? '\n' : ' ', f);
        n += (size_t)len + 1;
        if (n / 4096 > doc) {
            fputs("\n---\n", f);
            doc = n / 4096;
        }
    }
    return fclose(f) == 0 ? 0 : weft_error("%s: %s", path, strerror(errno));
}

static int make_inputs(const dp_setup_t *S, char *model, char *data)
{
    char corpus[PATH_MAX];
    if (weft_path_join(model, PATH_MAX, S->dir, "base.h5") < 0 ||
        weft_path_join(data, PATH_MAX, S->dir, "corpus.h5") < 0 ||
        weft_path_join(corpus, sizeof corpus, S->dir, "corpus.txt") < 0)
        return -1;
    gpt2_config_t cfg;
    if (gpt2_config_preset(S->preset, &cfg) < 0) return -1;
    if (S->seq > cfg.n_ctx)
        return weft_error("--seq %d exceeds the %s preset's n_ctx %d", S->seq, S->preset,
                          cfg.n_ctx);
    gpt2_t *m = gpt2_new(&cfg);
    if (!m) return -1;
    gpt2_init_weights(m, 1);
    int rc = model_file_save(m, cfg.vocab_size == 50257 ? "gpt2" : "byte", model);
    gpt2_destroy(&m);
    if (rc < 0 || write_corpus(corpus, 8u << 20) < 0) return -1;
    char *inputs[1] = {corpus};
    shard_opts_t o = {.format = SHARD_INPUT_TEXT,
                      .shards = 4,
                      .val_fraction = 0.02,
                      .seed = 1,
                      .force = 1,
                      .output = data,
                      .ninputs = 1,
                      .inputs = inputs};
    return shard_write(&o, NULL);
}

static int write_spec(const dp_setup_t *S, const dp_config_t *c, int rep, const char *model,
                      const char *data, char *spec, char *out)
{
    char name[64];
    snprintf(name, sizeof name, "dp-%dx%d-%d", c->ranks, c->threads, rep);
    char file[80];
    snprintf(file, sizeof file, "%s.cfg", name);
    if (weft_path_join(spec, PATH_MAX, S->dir, file) < 0 ||
        weft_path_join(out, PATH_MAX, S->dir, name) < 0)
        return -1;
    FILE *f = fopen(spec, "w");
    if (!f) return weft_error("%s: %s", spec, strerror(errno));
    fprintf(f, "name = \"%s\";\nmode = \"%s\";\nmodel = \"%s\";\noutput = \"%s\";\n", name, S->mode,
            model, out);
    if (!strcmp(S->mode, "full"))
        fprintf(f, "data = \"%s\";\n", data);
    else
        fprintf(f, "lora = { r = 8; alpha = 16.0; targets = [\"attn.c_attn\", \"attn.c_proj\", "
                   "\"mlp.c_fc\", \"mlp.c_proj\"]; };\n"
                   "tenants = ( { name = \"t0\"; data = \"%s\"; } );\n",
                data);
    fprintf(f,
            "train = { steps = %d; batch_size = %d; seq_len = %d; lr = 1e-4; warmup = 0;\n"
            "          eval_every = 0; eval_windows = 1; checkpoint_every = 0;\n"
            "          keep_checkpoints = 1; seed = 1; };\n"
            "resources = { ranks = %d; threads = %d; };\n",
            S->steps, S->batch, S->seq, c->ranks, c->threads);
    return fclose(f) == 0 ? 0 : weft_error("%s: %s", spec, strerror(errno));
}

/* mpirun -np R weft-worker SPEC, output to LOG; the exit code or -1. */
static int run_mpirun(const dp_setup_t *S, const dp_config_t *c, const char *spec, const char *log,
                      double *cpu_s)
{
    char np[16], thr[16];
    snprintf(np, sizeof np, "%d", c->ranks);
    snprintf(thr, sizeof thr, "%d", c->threads);
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f) dup2(1, 2);
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        setenv("OPENBLAS_NUM_THREADS", thr, 1);
        /* --bind-to none: Open MPI would otherwise pin a lone rank and its
         * second BLAS thread to one core. */
        execlp("mpirun", "mpirun", "-np", np, "--oversubscribe", "--bind-to", "none", S->worker,
               spec, "--resume", "never", (char *)NULL);
        fprintf(stderr, "cannot run mpirun: %s\n", strerror(errno));
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) return weft_error("wait4: %s", strerror(errno));
    /* mpirun waited for its ranks: their CPU time is in its usage. */
    *cpu_s = bench_ru_cpu_s(&ru);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Reads OUT/metrics.jsonl (train lines after the warm-up) and OUT/result.json. */
static int read_run(const dp_setup_t *S, const char *out, dp_run_t *r)
{
    char path[PATH_MAX];
    if (weft_path_join(path, sizeof path, out, "metrics.jsonl") < 0) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return weft_error("%s: %s", path, strerror(errno));
    double *tok = calloc((size_t)S->steps + 1, sizeof *tok);
    double *ms = calloc((size_t)S->steps + 1, sizeof *ms);
    double *ar = calloc((size_t)S->steps + 1, sizeof *ar);
    size_t n = 0;
    char line[4096];
    while (tok && ms && ar && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(j, "kind"));
        json_int_t step = json_integer_value(json_object_get(j, "step"));
        double ts = json_number_value(json_object_get(j, "tokens_per_s"));
        if (kind && !strcmp(kind, "train") && step > S->warmup && ts > 0 &&
            n < (size_t)S->steps + 1) {
            tok[n] = ts;
            ar[n] = 1e3 * json_number_value(json_object_get(j, "allreduce_s"));
            ms[n++] = 1e3 * (double)S->batch * S->seq / ts;
        }
        json_decref(j);
    }
    fclose(f);
    int rc = n > 0 ? 0 : weft_error("%s: no train steps after the warm-up", path);
    r->tok_s = bench_median(tok, n);
    r->step_ms = bench_median(ms, n);
    r->ar_ms = bench_median(ar, n);
    r->ar_min_ms = n ? ar[0] : 0; /* sorted by the median */
    free(tok);
    free(ms);
    free(ar);
    if (rc < 0 || weft_path_join(path, sizeof path, out, "result.json") < 0) return -1;
    json_error_t e;
    json_t *res = json_load_file(path, 0, &e);
    if (!res) return weft_error("%s: %s", path, e.text);
    json_t *ars = json_object_get(res, "allreduce_s"), *st = json_object_get(res, "step_s");
    if (!json_is_number(ars) || !json_is_number(st))
        rc = weft_error("%s has no allreduce_s/step_s: is weft-worker older than weft-bench?",
                        path);
    r->allreduce_s = json_number_value(ars);
    r->step_s = json_number_value(st);
    r->step_cpu_s = json_number_value(json_object_get(res, "step_cpu_s"));
    json_decref(res);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-bench dp [--preset P] [--mode full|lora] [--steps N] [--batch B]\n"
            "                     [--seq T] [--repeats R] [--warmup W] [--worker PATH]\n"
            "                     [--keep] [--json]\n\n"
            "Runs `mpirun -np R weft-worker` (full fine-tuning by default) as 1 rank x 1\n"
            "thread, 1 rank x 2 threads and 2 ranks x 1 thread on one global batch, R\n"
            "times each in turn, and prints tokens/s (median step after W warm-up steps,\n"
            "then median over repeats) and the share of step time in MPI_Allreduce.\n"
            "Defaults: small preset, 30 steps, batch 8, seq 128, 3 repeats, 3 warm-up.\n");
}

int bench_dp(int argc, char **argv)
{
    dp_setup_t S = {.preset = "small",
                    .mode = "full",
                    .steps = 30,
                    .batch = 8,
                    .seq = 128,
                    .repeats = 3,
                    .warmup = 3};
    int json = 0;
    char worker[PATH_MAX] = "";
    const bench_opt_t opts[] = {
        BENCH_STR_OPT("preset", &S.preset),   BENCH_STR_OPT("mode", &S.mode),
        BENCH_INT_OPT("steps", &S.steps),     BENCH_INT_OPT("batch", &S.batch),
        BENCH_INT_OPT("seq", &S.seq),         BENCH_INT_OPT("repeats", &S.repeats),
        BENCH_INT_OPT("warmup", &S.warmup),   BENCH_PATH_OPT("worker", worker),
        BENCH_FLAG_OPT("keep", &S.keep),      BENCH_FLAG_OPT("json", &json)};
    int p = bench_options(argc, argv, opts, BENCH_NOPTS(opts), usage);
    if (p) return p > 0 ? 0 : EX_USAGE;
    if (S.steps <= S.warmup || S.batch < 2 || S.batch % 2 || S.seq < 2 ||
        S.repeats < 1 || S.repeats > MAX_REPEATS || S.warmup < 0 ||
        (strcmp(S.mode, "full") && strcmp(S.mode, "lora"))) {
        fprintf(stderr, "weft-bench dp: --steps must exceed --warmup, --batch be even (it splits "
                        "over 2 ranks), --repeats 1..%d, --mode full or lora\n",
                MAX_REPEATS);
        return EX_USAGE;
    }
    if (!worker[0]) bench_prog("weft-worker", worker, sizeof worker);
    S.worker = worker;
    snprintf(S.dir, sizeof S.dir, "/tmp/weft-bench-dp-XXXXXX");
    if (!mkdtemp(S.dir)) {
        fprintf(stderr, "weft-bench dp: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char model[PATH_MAX], data[PATH_MAX];
    double t_in = bench_now();
    if (make_inputs(&S, model, data) < 0) {
        weft_report();
        return 1;
    }
    fprintf(stderr, "inputs: %s preset and an 8 MiB corpus in %s (%.1f s)\n", S.preset, S.dir,
            bench_now() - t_in);
    static dp_run_t runs[NCONFIGS][MAX_REPEATS];
    int bad = 0;
    for (int rep = 0; rep < S.repeats; rep++)
        for (size_t k = 0; k < NCONFIGS; k++) {
            char spec[PATH_MAX], out[PATH_MAX], log[PATH_MAX + 8];
            dp_run_t *r = &runs[k][rep];
            if (write_spec(&S, &configs[k], rep, model, data, spec, out) < 0) {
                weft_report();
                return 1;
            }
            snprintf(log, sizeof log, "%s.log", out);
            double t = bench_now();
            int code = run_mpirun(&S, &configs[k], spec, log, &r->cpu_s);
            r->wall_s = bench_now() - t;
            if (code != 0) {
                fprintf(stderr, "weft-bench dp: %dx%d exited %d; see %s\n", configs[k].ranks,
                        configs[k].threads, code, log);
                bad = 1;
                continue;
            }
            if (read_run(&S, out, r) < 0) {
                weft_report();
                bad = 1;
                continue;
            }
            r->ok = 1;
            fprintf(stderr, "  %d rank(s) x %d thread(s), repeat %d: %.0f tok/s, %.1f%% in "
                            "MPI_Allreduce, %.1f s\n",
                    configs[k].ranks, configs[k].threads, rep + 1, r->tok_s,
                    100 * r->allreduce_s / r->step_s, r->wall_s);
        }
    /* Medians over repeats, and how far the repeats' tokens/s spread. */
    enum { M_TOK, M_MS, M_AR, M_ARMIN, M_PCT, M_TOKCPU, M_CPU, M_WALL, M_SPREAD, M_N };
    double med[NCONFIGS][M_N];
    for (size_t k = 0; k < NCONFIGS; k++) {
        double v[M_N][MAX_REPEATS];
        size_t n = 0;
        for (int rep = 0; rep < S.repeats; rep++) {
            dp_run_t *r = &runs[k][rep];
            if (!r->ok) continue;
            v[M_TOK][n] = r->tok_s;
            v[M_MS][n] = r->step_ms;
            v[M_AR][n] = r->ar_ms;
            v[M_ARMIN][n] = r->ar_min_ms;
            v[M_PCT][n] = 100 * r->allreduce_s / r->step_s;
            /* every rank is taken to use what rank 0 used */
            v[M_TOKCPU][n] = r->step_cpu_s > 0 ? (double)S.batch * S.seq * S.steps /
                                                     (r->step_cpu_s * configs[k].ranks)
                                               : 0;
            v[M_CPU][n] = r->cpu_s;
            v[M_WALL][n++] = r->wall_s;
        }
        for (int i = 0; i < M_SPREAD; i++) med[k][i] = bench_median(v[i], n);
        /* v[M_TOK] is sorted now */
        med[k][M_SPREAD] = n && med[k][M_TOK] > 0
                               ? 100 * (v[M_TOK][n - 1] - v[M_TOK][0]) / med[k][M_TOK]
                               : 0;
    }
    printf("weft-bench dp: %s preset, %s fine-tuning, global batch %d x seq %d = %d tokens/step,"
           " %d steps (first %d not counted), median of %d repeat(s)\n",
           S.preset, S.mode, S.batch, S.seq, S.batch * S.seq, S.steps, S.warmup, S.repeats);
    printf("%-9s %9s %7s %8s %8s %7s %9s %7s %9s %7s %7s\n", "ranks x T", "tokens/s", "spread",
           "ms/step", "speedup", "AR ms", "AR min ms", "AR %", "tok/CPU-s", "CPU s", "wall s");
    for (size_t k = 0; k < NCONFIGS; k++) {
        char label[32];
        snprintf(label, sizeof label, "%d x %d", configs[k].ranks, configs[k].threads);
        printf("%-9s %9.0f %6.0f%% %8.1f %7.2fx %7.1f %9.1f %6.1f%% %9.0f %7.1f %7.1f\n", label,
               med[k][M_TOK], med[k][M_SPREAD], med[k][M_MS],
               med[0][M_TOK] > 0 ? med[k][M_TOK] / med[0][M_TOK] : 0, med[k][M_AR],
               med[k][M_ARMIN], med[k][M_PCT], med[k][M_TOKCPU], med[k][M_CPU], med[k][M_WALL]);
    }
    printf("AR: rank 0's time inside the gradient and control MPI_Allreduce of a step (median\n"
           "step; waiting for the other rank included), its least over the steps, and its\n"
           "share of all step time. spread: (max - min) / median of the repeats' tokens/s.\n"
           "tok/CPU-s: tokens per CPU second spent in steps (rank 0's CPU, all its threads,\n"
           "times the ranks): the load-independent efficiency. CPU s: mpirun and every rank,\n"
           "whole run (start-up and final checkpoint included).\n");
    if (json) {
        json_t *arr = json_array();
        for (size_t k = 0; k < NCONFIGS; k++)
            json_array_append_new(
                arr, json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "ranks",
                               configs[k].ranks, "threads", configs[k].threads, "tokens_per_s",
                               med[k][M_TOK], "spread_pct", med[k][M_SPREAD], "step_ms",
                               med[k][M_MS], "speedup",
                               med[0][M_TOK] > 0 ? med[k][M_TOK] / med[0][M_TOK] : 0.0,
                               "allreduce_ms", med[k][M_AR], "allreduce_min_ms", med[k][M_ARMIN],
                               "allreduce_pct", med[k][M_PCT], "tokens_per_cpu_s",
                               med[k][M_TOKCPU], "cpu_s", med[k][M_CPU], "wall_s",
                               med[k][M_WALL]));
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:o}", "bench", "dp", "preset",
                              S.preset, "mode", S.mode, "batch", S.batch, "seq", S.seq, "steps",
                              S.steps, "repeats", S.repeats, "configs", arr);
        bench_json_print(o);
    }
    bench_dir_done(S.dir, S.keep);
    return bad;
}
