/* bench.h: what every weft-bench subcommand shares: a monotonic clock, this
 * process's CPU clock, medians, peak RSS, the programs beside weft-bench,
 * its work folder, and the --json convention (the last line printed is one
 * JSON object holding the same figures as the table). */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <jansson.h>
#include <stddef.h>

double bench_now(void);                      /* seconds, monotonic */
/* CPU seconds of this process (all its threads): unlike the wall clock it
 * stands still while other programs on a busy machine have the cores. */
double bench_cpu_now(void);
double bench_median(double *v, size_t n);     /* sorts v in place */
double bench_peak_rss_mb(void);               /* this process's peak RSS, MiB */

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
