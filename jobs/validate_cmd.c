/* validate_cmd.c: `weft validate JOB.cfg`: parses and expands a spec, checks
 * the files it names, and prints the plan (jobs, steps, tokens, resources,
 * memory per rank); or prints every problem and exits 78. */
#include "jobs/plan.h"
#include "jobs/spec.h"

#include "common/log.h"
#include "common/weft_cmds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define EXIT_BAD_SPEC EX_CONFIG
#define PACK_SIZE     16 /* weftd's default pack size, for the memory estimate */

static int problems;
static const char *spec_file;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", spec_file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    problems++;
}

static const char *human_bytes(double b, char *buf, size_t n)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
    return buf;
}

static const char *human_count(double x, char *buf, size_t n)
{
    if (x >= 1e9)
        snprintf(buf, n, "%.2fG", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e4)
        snprintf(buf, n, "%.1fk", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
    return buf;
}

/* The setting path of a unit's data or adapter for messages. */
static void unit_where(const spec_t *s, const spec_unit_t *u, const char *what, char *buf, size_t n)
{
    if (s->mode == SPEC_FULL) {
        snprintf(buf, n, "%s", what);
        return;
    }
    int ti = 0;
    while (ti < s->ntenants && strcmp(s->tenants[ti].name, u->tenant)) ti++;
    snprintf(buf, n, "tenants[%d].%s", ti, what);
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: weft validate JOB.cfg\n"
                 "Checks a job spec and the files it names, then prints the plan: jobs, steps,\n"
                 "tokens, resources and estimated memory per rank. Exit 0 when valid; else every\n"
                 "problem on stderr and exit 78. The language: docs/JOBSPEC.md.\n");
}

int cmd_validate(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        print_usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        print_usage(stderr);
        return EX_USAGE;
    }
    spec_file = argv[1];
    spec_diag_t *diag = spec_diag_new();
    spec_t *s = spec_load(spec_file, NULL, diag);
    if (!s) {
        for (int i = 0; i < spec_diag_count(diag); i++)
            fprintf(stderr, "%s\n", spec_diag_get(diag, i));
        if (!spec_diag_count(diag)) fprintf(stderr, "%s\n", weft_last_error());
        fprintf(stderr, "%s: %d problem%s; see docs/JOBSPEC.md\n", spec_file, spec_diag_count(diag),
                spec_diag_count(diag) == 1 ? "" : "s");
        spec_diag_destroy(&diag);
        return EXIT_BAD_SPEC;
    }

    spec_unit_t *units = NULL;
    int nunits = 0;
    if (spec_expand(s, NULL, &units, &nunits, diag))
        for (int i = 0; i < spec_diag_count(diag); i++) problem("%s", spec_diag_get(diag, i));
    spec_diag_destroy(&diag);

    plan_model_t m;
    bool have_model = plan_model_read(s->model, &m) == 0;
    if (!have_model) problem("model: %s", weft_last_error());

    /* per unit: files, seq_len against the model, steps and tokens */
    int64_t *steps = calloc((size_t)nunits + 1, sizeof *steps);
    double total_steps = 0, total_tokens = 0;
    int unknown = 0; /* jobs counted in epochs of data not sharded yet */
    for (int i = 0; i < nunits && steps; i++) {
        const spec_t *us = units[i].spec;
        const spec_train_t *t = &us->tenants[0].train;
        const char *data = us->tenants[0].data;
        spec_data_kind_t kind = us->tenants[0].data_kind;
        char where[64];
        if (have_model && t->seq_len > m.cfg.n_ctx)
            problem("%s%s%strain.seq_len: %d exceeds the model's n_ctx %d; use at most %d",
                    units[i].trial[0] ? "trial " : "", units[i].trial,
                    units[i].trial[0] ? ": " : "", t->seq_len, m.cfg.n_ctx, m.cfg.n_ctx);
        else if (have_model && m.cfg.llama.sliding_window &&
                 t->seq_len > m.cfg.llama.sliding_window)
            problem("%s%s%strain.seq_len: %d exceeds the model's sliding_window %d (Mistral); "
                    "weft runs it only while a sequence fits in the window: use at most %d",
                    units[i].trial[0] ? "trial " : "", units[i].trial,
                    units[i].trial[0] ? ": " : "", t->seq_len, m.cfg.llama.sliding_window,
                    m.cfg.llama.sliding_window);
        int64_t train_tokens = 0;
        /* each file once: a sweep repeats the same data in every trial */
        bool first = i == 0 || strcmp(data, units[i - 1].spec->tenants[0].data);
        /* then against the run: shards per rank, tokenizer, vocabulary (every
         * token read), a usable /val; a pack-mate is never failed by it */
        if ((plan_check_data(data, kind, have_model ? &m : NULL, &train_tokens) ||
             plan_check_unit_data(us, have_model ? &m : NULL, 1)) &&
            first) {
            unit_where(s, &units[i], "data", where, sizeof where);
            problem("%s: %s", where, weft_last_error());
        }
        if (us->mode == SPEC_LORA && us->tenants[0].init_adapter[0] && first &&
            plan_check_adapter(us->tenants[0].init_adapter, &us->tenants[0].lora,
                               have_model ? &m : NULL)) {
            unit_where(s, &units[i], "init_adapter", where, sizeof where);
            problem("%s: %s", where, weft_last_error());
        }
        steps[i] = plan_steps(t, train_tokens);
        unknown += steps[i] == 0;
        total_steps += (double)steps[i];
        total_tokens += (double)steps[i] * t->batch_size * t->seq_len;
    }

    if (problems) {
        fprintf(stderr, "%s: %d problem%s; see docs/JOBSPEC.md\n", spec_file, problems,
                problems == 1 ? "" : "s");
        spec_units_destroy(&units, nunits);
        free(steps);
        spec_destroy(&s);
        return EXIT_BAD_SPEC;
    }

    char a[32], b[32], c[32];
    printf("spec       %s: %s, mode %s\n", spec_file, s->name, spec_mode_name(s->mode));
    printf("model      %s\n", s->model);
    printf("           L=%d NH=%d C=%d V=%d n_ctx=%d tokenizer=%s, %s parameters\n", m.cfg.n_layer,
           m.cfg.n_head, m.cfg.n_embd, m.cfg.vocab_size, m.cfg.n_ctx,
           m.tokenizer[0] ? m.tokenizer : "?",
           human_count((double)plan_model_params(&m), a, sizeof a));
    printf("output     %s\n", s->output);
    printf("resources  %d rank%s x %d thread%s", s->resources.ranks,
           s->resources.ranks == 1 ? "" : "s", s->resources.threads,
           s->resources.threads == 1 ? "" : "s");
    if (s->resources.time_limit)
        printf(", time limit %lld:%02lld:%02lld\n", (long long)s->resources.time_limit / 3600,
               (long long)s->resources.time_limit / 60 % 60,
               (long long)s->resources.time_limit % 60);
    else
        printf(", no time limit\n");
    if (s->sweep.ndims) {
        printf("sweep      %s", s->sweep.random ? "random" : "grid");
        if (s->sweep.random)
            printf(" (%d samples, seed %lld)", s->sweep.samples, (long long)s->sweep.seed);
        printf(" over");
        for (int d = 0; d < s->sweep.ndims; d++) printf(" %s", s->sweep.dims[d].key);
        printf("\n");
    }
    int ntrials = nunits / s->ntenants;
    printf("jobs       %d", nunits);
    if (s->mode == SPEC_LORA)
        printf(" (%d tenant%s x %d trial%s)", s->ntenants, s->ntenants == 1 ? "" : "s", ntrials,
               ntrials == 1 ? "" : "s");
    printf("\n\n");

    printf("%-32s %-12s %8s %6s %10s", "job", "data", "steps", "batch", "lr");
    if (s->mode == SPEC_LORA) printf(" %5s %7s", "r", "alpha");
    printf(" %10s%s\n", "tokens", s->sweep.ndims ? "  swept" : "");
    for (int i = 0; i < nunits; i++) {
        const spec_t *us = units[i].spec;
        const spec_train_t *t = &us->tenants[0].train;
        spec_data_kind_t kind = us->tenants[0].data_kind;
        if (steps[i])
            snprintf(b, sizeof b, "%lld", (long long)steps[i]);
        else
            snprintf(b, sizeof b, "%gep", t->epochs);
        printf("%-32s %-12s %8s %6d %10g", units[i].name, spec_data_kind_name(kind), b,
               t->batch_size, t->lr);
        if (s->mode == SPEC_LORA)
            printf(" %5d %7g", us->tenants[0].lora.r, us->tenants[0].lora.alpha);
        printf(" %10s",
               steps[i] ? human_count((double)steps[i] * t->batch_size * t->seq_len, c, sizeof c)
                        : "?");
        for (int k = 0; k < units[i].nparams; k++)
            printf("%s%s=%s", k ? " " : "  ", units[i].param_key[k], units[i].param_value[k]);
        printf("\n");
    }
    printf("\ntotal      %s steps, %s tokens%s\n", human_count(total_steps, a, sizeof a),
           human_count(total_tokens, b, sizeof b),
           unknown ? " (jobs in epochs of raw data count once it is sharded)" : "");

    /* memory: one run of up to PACK_SIZE lora units, or one full job */
    int k = s->mode == SPEC_LORA ? (nunits < PACK_SIZE ? nunits : PACK_SIZE) : 1;
    const spec_t **packed = calloc((size_t)k, sizeof *packed);
    spec_t *run = NULL;
    if (packed && s->mode == SPEC_LORA) {
        for (int i = 0; i < k; i++) packed[i] = units[i].spec;
        run = spec_compose(packed, k, s->name, s->output);
    }
    plan_memory_t mem = {0};
    if (run) {
        plan_memory(run, &m, &mem);
    } else {
        /* units that cannot share a run (e.g. a seq_len sweep): the largest alone */
        k = 1;
        for (int i = 0; i < nunits; i++) {
            plan_memory_t one;
            plan_memory(units[i].spec, &m, &one);
            if (one.total > mem.total) mem = one;
        }
    }
    printf("memory     per rank, %s: %s\n",
           s->mode == SPEC_LORA ? (k > 1 ? "one pack of these jobs" : "one job alone") : "one job",
           human_bytes(mem.total, a, sizeof a));
    printf("           weights %s", human_bytes(mem.weights, a, sizeof a));
    if (s->mode == SPEC_LORA)
        printf(" (frozen), adapters %s", human_bytes(mem.adapters, b, sizeof b));
    printf(", gradients %s, AdamW %s,\n", human_bytes(mem.grads, a, sizeof a),
           human_bytes(mem.optimizer, b, sizeof b));
    printf("           activations %s (%lld sequences of %d tokens per micro-step, kept for the "
           "backward pass, plus their gradients)\n",
           human_bytes(mem.activations, c, sizeof c), (long long)mem.rows, s->train.seq_len);
    if (s->mode == SPEC_LORA && nunits > PACK_SIZE)
        printf("           (weftd packs up to %d jobs per run by default; %d jobs make %d runs)\n",
               PACK_SIZE, nunits, (nunits + PACK_SIZE - 1) / PACK_SIZE);
    spec_destroy(&run);
    free(packed);
    free(steps);
    spec_units_destroy(&units, nunits);
    spec_destroy(&s);
    return 0;
}
