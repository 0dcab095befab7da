/* bench_sweep.c: weft-bench sweep: one 27-trial LoRA sweep (3 lr x 3 r x
 * 3 alpha) on the `small` preset and text from /usr/share/common-licenses,
 * run by a real weftd three ways: (a) every trial to its end in packs,
 * (b) ASHA with packs that refill, (c) ASHA with one worker per trial. */
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sysexits.h>

typedef struct {
    int steps, min_steps, batch, seq, slots, pack_size, eval_windows, keep, json;
    char dir[PATH_MAX], bindir[PATH_MAX];
} sweep_opts_t;

typedef struct {
    const char *name, *what;
    int asha, pack_size, refill;
    double wall, cpu, best;
    int stopped, succeeded, others;
} sweep_mode_t;

/* Runs argv[0] from bindir (stdout and stderr to `log`, appended), waits:
 * its exit status, or -1. */
static int run_prog(const sweep_opts_t *o, char *const argv[], const char *log)
{
    char prog[PATH_MAX];
    if (weft_path_join(prog, sizeof prog, o->bindir, argv[0]) < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        execv(prog, argv);
        fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return weft_error("waitpid: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return bench_ru_cpu_s(&ru);
}

/* The corpus: licence texts, one document per paragraph. */
static int write_corpus(const char *path)
{
    static const char *names[] = {"GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "Artistic",
                                  "LGPL-2.1"};
    FILE *out = fopen(path, "w");
    if (!out) return weft_error("%s: %s", path, strerror(errno));
    int found = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char src[PATH_MAX];
        snprintf(src, sizeof src, "/usr/share/common-licenses/%s", names[i]);
        FILE *in = fopen(src, "r");
        if (!in) continue;
        found++;
        char line[4096];
        int blank = 1;
        while (fgets(line, sizeof line, in)) {
            int empty = strspn(line, " \t\r\n") == strlen(line);
            if (empty && !blank) fputs("---\n", out);
            if (!empty) fputs(line, out);
            blank = empty;
        }
        if (!blank) fputs("---\n", out);
        fclose(in);
    }
    if (fclose(out) != 0 || !found)
        return weft_error("no text in /usr/share/common-licenses: install base-files");
    return 0;
}

static int write_spec(const sweep_opts_t *o, const char *path, int asha)
{
    FILE *f = fopen(path, "w");
    if (!f) return weft_error("%s: %s", path, strerror(errno));
    fprintf(f,
            "name = \"sw\"; mode = \"lora\"; model = \"base.h5\"; output = \"out\";\n"
            "train = { steps = %d; batch_size = %d; seq_len = %d; lr = 0.01; eval_every = 0;\n"
            "          checkpoint_every = 100000; eval_windows = %d; seed = 1; };\n"
            "lora = { r = 4; alpha = 8.0; };\n"
            "resources = { ranks = 1; threads = 1; };\n"
            "tenants = ( { name = \"t\"; data = \"data.h5\"; } );\n"
            "sweep = { train = { lr = [0.003, 0.01, 0.03]; };\n"
            "          lora = { r = [2, 4, 8]; alpha = [4.0, 8.0, 16.0]; };\n",
            o->steps, o->batch, o->seq, o->eval_windows);
    if (asha)
        fprintf(f,
                "          early_stop = { policy = \"asha\"; eta = 3; min_steps = %d;"
                " metric = \"val_loss\"; };\n",
                o->min_steps);
    fprintf(f, "};\n");
    return fclose(f) == 0 ? 0 : weft_error("%s: %s", path, strerror(errno));
}

/* One way of running the sweep: a fresh weftd (in the foreground, our
 * child, so its workers' CPU time comes back to us when it is reaped). */
static int run_mode(const sweep_opts_t *o, sweep_mode_t *m)
{
    char home[PATH_MAX], log[PATH_MAX], spec[PATH_MAX], res[PATH_MAX], sock[PATH_MAX + 16];
    char slots[16], pack[16];
    char wlog[PATH_MAX], prog[PATH_MAX];
    if (weft_path_join(home, sizeof home, o->dir, m->name) < 0 ||
        snprintf(log, sizeof log, "%s.log", home) >= (int)sizeof log ||
        snprintf(spec, sizeof spec, "%s.cfg", home) >= (int)sizeof spec ||
        snprintf(res, sizeof res, "%s.json", home) >= (int)sizeof res ||
        snprintf(wlog, sizeof wlog, "%s.submit.log", home) >= (int)sizeof wlog ||
        snprintf(sock, sizeof sock, "%s/weftd.sock", home) >= (int)sizeof sock ||
        weft_path_join(prog, sizeof prog, o->bindir, "weftd") < 0)
        return weft_error("path too long under %s", o->dir);
    snprintf(slots, sizeof slots, "%d", o->slots);
    snprintf(pack, sizeof pack, "%d", m->pack_size);
    if (write_spec(o, spec, m->asha) < 0) return -1;
    double cpu0 = children_cpu();
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        char *argv[] = {prog,     "--home", home, "--slots",      slots,
                        "--pack-size", pack, "--max-watch-per-client", "64", "--foreground",
                        m->refill ? NULL : "--no-refill", NULL};
        execv(prog, argv);
        fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    int rc = 0;
    while (access(sock, F_OK) < 0) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return weft_error("weftd exited at start; see %s", log);
        if (bench_now() - t0 > 30) {
            rc = weft_error("weftd made no socket in 30 s; see %s", log);
            break;
        }
        usleep(5000);
    }
    if (rc == 0) {
        char *argv[] = {"weft", "--home", home, "submit", spec, "--wait", NULL};
        int st = run_prog(o, argv, wlog);
        if (st != 0) rc = weft_error("sweep (%s) ended with %d; see %s and %s", m->name, st, wlog, log);
    }
    m->wall = bench_now() - t0;
    if (rc == 0) {
        char *argv[] = {"weft", "--home", home, "results", "1", "--json", NULL};
        unlink(res);
        if (run_prog(o, argv, res) != 0) rc = weft_error("weft results failed; see %s", res);
    }
    kill(pid, SIGTERM);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) continue;
    m->cpu = children_cpu() - cpu0;
    if (rc < 0) return -1;
    json_error_t jerr;
    json_t *r = json_load_file(res, 0, &jerr);
    json_t *jobs = json_object_get(r, "jobs");
    if (!json_is_array(jobs) || json_array_size(jobs) != 27) {
        json_decref(r);
        return weft_error("%s: not the 27 trials' results", res);
    }
    m->best = INFINITY;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        const char *state = json_string_value(json_object_get(j, "state"));
        json_t *b = json_object_get(j, "best_val_loss");
        if (json_is_number(b) && json_number_value(b) < m->best) m->best = json_number_value(b);
        if (state && !strcmp(state, "stopped"))
            m->stopped++;
        else if (state && !strcmp(state, "succeeded"))
            m->succeeded++;
        else
            m->others++;
    }
    json_decref(r);
    if (m->others) return weft_error("%s: %d trial(s) neither succeeded nor stopped", m->name, m->others);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-bench sweep [--steps N] [--min-steps M] [--batch B] [--seq T]\n"
            "                        [--slots S] [--pack-size K] [--dir DIR] [--keep] [--json]\n\n"
            "A 27-trial LoRA sweep (lr x r x alpha, 3 values each) of N steps (162) on the\n"
            "`small` preset over /usr/share/common-licenses text, by a real weftd with S\n"
            "slots (2), run three ways: (a) every trial to its end in packs of K (9);\n"
            "(b) ASHA (eta 3, first rung at M steps (6)) in packs of K that refill;\n"
            "(c) ASHA with one worker process per trial (the Ray Tune shape). Prints\n"
            "wall time, CPU-seconds (weftd and its workers), the best validation loss\n"
            "found, and the ratios.\n");
}

int bench_sweep(int argc, char **argv)
{
    sweep_opts_t o = {.steps = 162, .min_steps = 6, .batch = 4, .seq = 32, .slots = 2,
                      .pack_size = 9, .eval_windows = 16};
    const bench_opt_t opts[] = {
        BENCH_INT_OPT("steps", &o.steps), BENCH_INT_OPT("min-steps", &o.min_steps),
        BENCH_INT_OPT("batch", &o.batch), BENCH_INT_OPT("seq", &o.seq),
        BENCH_INT_OPT("slots", &o.slots), BENCH_INT_OPT("pack-size", &o.pack_size),
        BENCH_PATH_OPT("dir", o.dir),
        BENCH_FLAG_OPT("keep", &o.keep),  BENCH_FLAG_OPT("json", &o.json)};
    int p = bench_options(argc, argv, opts, BENCH_NOPTS(opts), usage);
    if (p) return p > 0 ? 0 : EX_USAGE;
    if (o.steps < 2 || o.min_steps < 1 || o.min_steps >= o.steps || o.batch < 1 || o.seq < 2 ||
        o.slots < 1 || o.pack_size < 1 || o.pack_size > 256) {
        fprintf(stderr, "weft-bench sweep: --min-steps must be below --steps, and every size "
                        "positive (--pack-size at most 256)\n");
        return EX_USAGE;
    }
    if (bench_dir(o.bindir, sizeof o.bindir) < 0) return 1;
    if (!o.dir[0]) {
        snprintf(o.dir, sizeof o.dir, "/tmp/weft-bench-sweep-XXXXXX");
        if (!mkdtemp(o.dir)) return weft_error("mkdtemp: %s", strerror(errno)), 1;
    } else if (weft_mkdir_p(o.dir, 0755) < 0) {
        return 1;
    }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    if (chdir(o.dir) < 0) return weft_error("%s: %s", o.dir, strerror(errno)), 1;
    int rc = write_corpus("corpus.txt");
    char *shard[] = {"weft", "shard", "--quiet", "--force", "--shards", "4", "--val-fraction",
                     "0.1", "--seed", "1", "-o", "data.h5", "corpus.txt", NULL};
    char *init[] = {"weft", "init-model", "--preset", "small", "--seed", "5", "-o", "base.h5",
                    NULL};
    if (rc == 0 && run_prog(&o, shard, "setup.log") != 0)
        rc = weft_error("weft shard failed; see %s/setup.log", o.dir);
    if (rc == 0 && run_prog(&o, init, "setup.log") != 0)
        rc = weft_error("weft init-model failed; see %s/setup.log", o.dir);
    sweep_mode_t modes[3] = {
        {"a", "all trials to the end, packs", 0, o.pack_size, 0, 0, 0, 0, 0, 0, 0},
        {"b", "ASHA, refilling packs", 1, o.pack_size, 1, 0, 0, 0, 0, 0, 0},
        {"c", "ASHA, a process per trial", 1, 1, 0, 0, 0, 0, 0, 0, 0},
    };
    printf("weft-bench sweep: 27 trials x %d steps, small preset, B%d T%d, %d slots, packs of %d, "
           "ASHA eta 3 from %d steps (%s)\n",
           o.steps, o.batch, o.seq, o.slots, o.pack_size, o.min_steps, o.dir);
    fflush(stdout);
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = run_mode(&o, &modes[i]);
        if (rc == 0)
            printf("  (%s) %-32s wall %7.1f s  cpu %7.1f s  best val %.4f  (%d stopped)\n",
                   modes[i].name, modes[i].what, modes[i].wall, modes[i].cpu, modes[i].best,
                   modes[i].stopped),
                fflush(stdout);
    }
    if (rc < 0) {
        fprintf(stderr, "weft-bench sweep: %s\n", weft_last_error());
        return 1;
    }
    sweep_mode_t *a = &modes[0], *b = &modes[1], *cc = &modes[2];
    double speed_ab = a->wall / b->wall, speed_cb = cc->wall / b->wall;
    double gap = (b->best - a->best) / a->best;
    printf("\n  (a)/(b) wall %.2fx  cpu %.2fx   (c)/(b) wall %.2fx  cpu %.2fx\n", speed_ab,
           a->cpu / b->cpu, speed_cb, cc->cpu / b->cpu);
    printf("  best val loss (b) vs (a): %+.2f%%   (c) vs (a): %+.2f%%\n", 100 * gap,
           100 * (cc->best - a->best) / a->best);
    printf("  targets: (b) >= 3x faster than (a): %s; within 1%% of (a)'s best: %s; "
           "faster than (c): %s\n",
           speed_ab >= 3 ? "met" : "MISSED", gap <= 0.01 ? "met" : "MISSED",
           speed_cb > 1 ? "met" : "MISSED");
    if (o.json) {
        json_t *j = json_object();
        for (int i = 0; i < 3; i++)
            json_object_set_new(j, modes[i].name,
                                json_pack("{s:f, s:f, s:f, s:i}", "wall_s", modes[i].wall,
                                          "cpu_s", modes[i].cpu, "best_val_loss", modes[i].best,
                                          "stopped", modes[i].stopped));
        json_object_set_new(j, "wall_a_over_b", json_real(speed_ab));
        json_object_set_new(j, "wall_c_over_b", json_real(speed_cb));
        json_object_set_new(j, "best_gap_b_vs_a", json_real(gap));
        bench_json_print(j);
    }
    bench_dir_done(o.dir, o.keep);
    return 0;
}
