/* bench.h: what every weft-bench subcommand shares: a monotonic clock, this
 * process's CPU clock, medians, peak RSS, options, the programs beside weft-bench,
 * its work folder, and the --json convention (the last line printed is one
 * JSON object holding the same figures as the table). */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

double bench_now(void);                      /* seconds, monotonic */
/* CPU seconds of this process (all its threads): unlike the wall clock it
 * stands still while other programs on a busy machine have the cores. */
double bench_cpu_now(void);
double bench_median(double *v, size_t n);     /* sorts v in place */
double bench_peak_rss_mb(void);               /* this process's peak RSS, MiB */
/* From a process's resource usage (wait4, getrusage): its CPU seconds, user
 * and system, and its peak RSS in MiB. */
struct rusage;
double bench_ru_cpu_s(const struct rusage *ru);
double bench_ru_rss_mb(const struct rusage *ru);

/* One option of a subcommand, --name VALUE: an int (atoi), a double (atof),
 * a string (the argument itself) or a copy into a char buffer of size; or
 * --name alone, a flag that sets an int to 1. */
typedef enum { BENCH_INT, BENCH_DOUBLE, BENCH_STR, BENCH_PATH, BENCH_FLAG } bench_opt_kind_t;
typedef struct {
    const char *name;
    bench_opt_kind_t kind;
    void *dst;   /* int *, double *, const char **, char [size] or int * */
    size_t size; /* BENCH_PATH only */
} bench_opt_t;
/* The entries of a table, each checked against its destination's type. */
#define BENCH_INT_OPT(name, p)    {(name), BENCH_INT, (int *){(p)}, 0}
#define BENCH_DOUBLE_OPT(name, p) {(name), BENCH_DOUBLE, (double *){(p)}, 0}
#define BENCH_STR_OPT(name, p)    {(name), BENCH_STR, (const char **){(p)}, 0}
#define BENCH_PATH_OPT(name, buf) {(name), BENCH_PATH, (buf), sizeof(buf)}
#define BENCH_FLAG_OPT(name, p)   {(name), BENCH_FLAG, (int *){(p)}, 0}
#define BENCH_NOPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Parses argv[1..] against opts and --help (-h): 0 to run; 1 after --help
 * printed the usage on stdout (exit 0); -1 after an unknown option, a
 * missing value or an argument left over printed it on stderr (exit
 * EX_USAGE). At most 32 options. */
int bench_options(int argc, char **argv, const bench_opt_t *opts, int nopts, void (*usage)(FILE *));

/* The folder weft-bench runs from, where the build puts weft, weftd and
 * weft-worker beside it: 0, or -1 and one line. */
int bench_dir(char *out, size_t n);
/* The program `name` beside weft-bench where it is there and executable,
 * else the bare name (found in PATH). */
void bench_prog(const char *name, char *out, size_t n);
/* Prints o as one line of compact JSON (the --json line) and frees it. */
void bench_json_print(json_t *o);
/* The end of a run in the work folder dir: removed, or kept (and said). */
void bench_dir_done(const char *dir, int keep);

int bench_shard(int argc, char **argv);  /* bench/bench_shard.c */
int bench_engine(int argc, char **argv); /* bench/bench_engine.c */
int bench_lora(int argc, char **argv);   /* bench/bench_lora.c */
int bench_dp(int argc, char **argv);     /* bench/bench_dp.c */
int bench_sched(int argc, char **argv);  /* bench/bench_sched.c */
int bench_import(int argc, char **argv); /* bench/bench_import.c */
int bench_tokenize(int argc, char **argv); /* bench/bench_tokenize.c */
int bench_sweep(int argc, char **argv);    /* bench/bench_sweep.c */

#endif
