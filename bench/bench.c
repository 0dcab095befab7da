/* bench.c: weft-bench: one program, one subcommand per benchmark. */
#include "common/clock.h"
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <getopt.h>
#include <limits.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <sysexits.h>

double bench_now(void)
{
    return weft_clock();
}

double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_ru_cpu_s(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + 1e-6 * (double)ru->ru_utime.tv_usec +
           (double)ru->ru_stime.tv_sec + 1e-6 * (double)ru->ru_stime.tv_usec;
}

double bench_ru_rss_mb(const struct rusage *ru)
{
    return (double)ru->ru_maxrss / 1024.0;
}

double bench_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return bench_ru_rss_mb(&ru);
}

int bench_options(int argc, char **argv, const bench_opt_t *opts, int nopts, void (*usage)(FILE *))
{
    enum { MAX_OPTS = 32, FIRST = 256 }; /* getopt's values for opts[i]: FIRST + i */
    struct option lo[MAX_OPTS + 2];
    if (nopts > MAX_OPTS) nopts = MAX_OPTS;
    for (int i = 0; i < nopts; i++)
        lo[i] = (struct option){opts[i].name,
                                opts[i].kind == BENCH_FLAG ? no_argument : required_argument, 0,
                                FIRST + i};
    lo[nopts] = (struct option){"help", no_argument, 0, 'h'};
    lo[nopts + 1] = (struct option){0, 0, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c < FIRST) break;
        const bench_opt_t *o = &opts[c - FIRST];
        switch (o->kind) {
        case BENCH_INT:
            *(int *)o->dst = atoi(optarg);
            break;
        case BENCH_DOUBLE:
            *(double *)o->dst = atof(optarg);
            break;
        case BENCH_STR:
            *(const char **)o->dst = optarg;
            break;
        case BENCH_PATH:
            snprintf(o->dst, o->size, "%s", optarg);
            break;
        case BENCH_FLAG:
            *(int *)o->dst = 1;
            break;
        }
    }
    if (c != -1 || optind < argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int bench_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return weft_error("cannot find weft-bench's own folder");
    exe[k] = 0;
    weft_dirname(exe, out, n);
    return 0;
}

void bench_prog(const char *name, char *out, size_t n)
{
    char dir[PATH_MAX];
    if (bench_dir(dir, sizeof dir) == 0 && weft_path_join(out, n, dir, name) == 0 &&
        access(out, X_OK) == 0)
        return;
    snprintf(out, n, "%s", name);
}

void bench_json_print(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

void bench_dir_done(const char *dir, int keep)
{
    if (keep)
        fprintf(stderr, "kept %s\n", dir);
    else if (weft_rm_rf(dir) < 0)
        weft_report();
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} benches[] = {
    {"shard", bench_shard, "weft shard throughput (MB/s) and peak RSS"},
    {"engine", bench_engine, "training step speed, GFLOP/s and MFU against sgemm"},
    {"lora", bench_lora, "packed multi-tenant LoRA steps against one tenant and full steps"},
    {"dp", bench_dp, "weft-worker under mpirun: tokens/s by ranks x threads, MPI_Allreduce share"},
    {"sched", bench_sched, "weftd: durable SUBMITs/s, LIST latency at 100k jobs, launch latency"},
    {"import", bench_import, "weft import of a BF16 Hugging Face checkpoint: MB/s and peak RSS"},
    {"tokenize", bench_tokenize, "GPT-2 BPE encoding MB/s beside the JavaScript encoder"},
    {"sweep", bench_sweep, "a 27-trial LoRA sweep: all trials, ASHA in refilling packs, ASHA a process per trial"},
};

int main(int argc, char **argv)
{
    weft_log_init("weft-bench");
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout, "usage: weft-bench BENCH [ARGS] [--json]\n\n");
        for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
            fprintf(argc < 2 ? stderr : stdout, "  %-8s %s\n", benches[i].name, benches[i].help);
        return argc < 2 ? EX_USAGE : 0;
    }
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        if (!strcmp(argv[1], benches[i].name)) {
            char prog[64];
            snprintf(prog, sizeof prog, "weft-bench %s", benches[i].name);
            weft_log_init(prog);
            return benches[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "weft-bench: unknown benchmark '%s'; see weft-bench --help\n", argv[1]);
    return EX_USAGE;
}
