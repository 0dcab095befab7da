/* bench_sched.c: `weft-bench sched`: the real weftd on a temporary home,
 * through its real socket: (a) durable submissions per second, as many
 * one-job SUBMITs in flight on one DEALER and as single 10,000-trial sweeps;
 * (b) LIST latency with 100,000 jobs stored, on the socket and through the
 * `weft ls` program; (c) time from SUBMIT to the worker program's start,
 * beside mpirun's own start. Jobs stay queued during (a) and (b) because a
 * first job holds every slot (its stand-in worker sleeps). */
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <sysexits.h>

#define SWEEP_TRIALS  10000 /* 100 lr values x 100 seeds: the per-sweep limit */
#define REPLY_WAIT_MS 60000
#define MAX_SAMPLES   1000

typedef struct {
    int jobs;      /* one-job SUBMITs per flood */
    int floods;    /* how many floods */
    int inflight;  /* SUBMITs in flight at once */
    int stored;    /* jobs stored before (b) */
    int lists;     /* LIST requests timed */
    int ls_runs;   /* `weft ls` programs timed */
    int launches;  /* (c) samples */
    int keep;
    char dir[PATH_MAX];
    char weftd[PATH_MAX], weft[PATH_MAX];
    char standin[PATH_MAX], starts[PATH_MAX], hold[PATH_MAX];
    char bindir[PATH_MAX], mpirun_starts[PATH_MAX];
} sched_setup_t;

typedef struct {
    pid_t pid;
    char home[PATH_MAX];
    char endpoint[PATH_MAX + 16];
    void *ctx, *sock;
} daemon_t;

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* CPU seconds (user + system) a process has used so far, from /proc. */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* fields 3.. after the command: state ppid pgrp session tty tpgid flags
     * minflt cminflt majflt cmajflt utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The first name in PATH that is executable: 0, or -1. */
static int which(const char *name, char *out, size_t n)
{
    const char *p = getenv("PATH");
    for (p = p ? p : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0 && (size_t)snprintf(out, n, "%.*s/%s", (int)len, p, name) < n &&
            access(out, X_OK) == 0)
            return 0;
        p += len + (p[len] == ':');
    }
    return -1;
}

/* Runs `weft ARGS...` in dir, its output to setup.log; 0 when it succeeds. */
static int run_weft(const sched_setup_t *S, char *const args[])
{
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(S->dir) < 0) _exit(127);
        int fd = open("setup.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 1), dup2(fd, 2);
        execv(S->weft, args);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return weft_error("%s %s failed; see %s/setup.log", S->weft, args[1], S->dir);
    return 0;
}

/* The model and data every spec names: weftd checks them at SUBMIT (the
 * stand-in worker never reads them). */
static int write_inputs(const sched_setup_t *S)
{
    char text[PATH_MAX];
    if (weft_path_join(text, sizeof text, S->dir, "corpus.txt") < 0) return -1;
    FILE *f = fopen(text, "w");
    if (!f) return weft_error("%s: %s", text, strerror(errno));
    for (int i = 0; i < 400; i++)
        fprintf(f, "%sline %d of a corpus the scheduler benchmark never trains on.\n",
                i % 40 == 0 && i ? "---\n" : "", i);
    if (fclose(f) != 0) return weft_error("%s: %s", text, strerror(errno));
    char *init[] = {(char *)S->weft, "init-model", "--preset", "tiny", "-o", "base.h5", NULL};
    char *shard[] = {(char *)S->weft, "shard", "--quiet", "--val-fraction", "0.1",
                     "-o", "corpus.h5", "corpus.txt", NULL};
    return run_weft(S, init) < 0 || run_weft(S, shard) < 0 ? -1 : 0;
}

/* The stand-in worker: appends "<epoch seconds> <pid>" to the starts file,
 * then sleeps while the hold file exists (the slot-holding job), else exits
 * 65 at once, which weftd records as a failed run with no retry. */
static int write_standin(sched_setup_t *S)
{
    if (weft_path_join(S->standin, sizeof S->standin, S->dir, "standin.sh") < 0 ||
        weft_path_join(S->starts, sizeof S->starts, S->dir, "starts") < 0 ||
        weft_path_join(S->hold, sizeof S->hold, S->dir, "hold") < 0)
        return -1;
    FILE *f = fopen(S->standin, "w");
    if (!f) return weft_error("%s: %s", S->standin, strerror(errno));
    fprintf(f,
            "#!/bin/bash\n"
            "echo \"$EPOCHREALTIME $$\" >> '%s'\n"
            "[ -e '%s' ] && exec sleep 3600\n"
            "exit 65\n",
            S->starts, S->hold);
    if (fclose(f) != 0 || chmod(S->standin, 0755) < 0)
        return weft_error("%s: %s", S->standin, strerror(errno));
    /* An mpirun first in weftd's PATH during (c): notes when weftd has
     * started it, then becomes the real one. */
    char real[PATH_MAX], wrap[PATH_MAX];
    if (which("mpirun", real, sizeof real) < 0) return weft_error("mpirun is not in PATH");
    if (weft_path_join(S->bindir, sizeof S->bindir, S->dir, "bin") < 0 ||
        weft_mkdir_p(S->bindir, 0755) < 0 ||
        weft_path_join(wrap, sizeof wrap, S->bindir, "mpirun") < 0 ||
        weft_path_join(S->mpirun_starts, sizeof S->mpirun_starts, S->dir, "mpirun-starts") < 0)
        return -1;
    if (!(f = fopen(wrap, "w"))) return weft_error("%s: %s", wrap, strerror(errno));
    fprintf(f, "#!/bin/bash\necho \"$EPOCHREALTIME $$\" >> '%s'\nexec '%s' \"$@\"\n",
            S->mpirun_starts, real);
    if (fclose(f) != 0 || chmod(wrap, 0755) < 0) return weft_error("%s: %s", wrap, strerror(errno));
    return 0;
}

/* Lines in a starts file so far, and the time and pid of the last. */
static int starts_read(const char *path, double *last_t, pid_t *last_pid)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        double t;
        int pid;
        if (sscanf(line, "%lf %d", &t, &pid) == 2) {
            n++;
            if (last_t) *last_t = t;
            if (last_pid) *last_pid = (pid_t)pid;
        }
    }
    fclose(f);
    return n;
}

/* Waits for the starts file to pass `count` lines; 0, or -1 after timeout_s. */
static int starts_wait(const sched_setup_t *S, int count, double timeout_s, double *t, pid_t *pid)
{
    double end = bench_now() + timeout_s;
    while (bench_now() < end) {
        if (starts_read(S->starts, t, pid) > count) return 0;
        sleep_ms(1);
    }
    return weft_error("the stand-in worker did not start within %.0f s", timeout_s);
}

/* ---- weftd and its socket ---- */

static json_t *request(daemon_t *d, wire_cmd_t cmd, json_t *body, int *is_error);

static int daemon_start(const sched_setup_t *S, daemon_t *d, const char *name, int slots,
                        int wrap_mpirun)
{
    memset(d, 0, sizeof *d);
    char log[PATH_MAX + 8], slots_s[16];
    if (weft_path_join(d->home, sizeof d->home, S->dir, name) < 0) return -1;
    snprintf(log, sizeof log, "%s.log", d->home);
    snprintf(slots_s, sizeof slots_s, "%d", slots);
    if (snprintf(d->endpoint, sizeof d->endpoint, "ipc://%s/weftd.sock", d->home) >=
        (int)sizeof d->endpoint)
        return weft_error("home path too long: %s", d->home);
    d->pid = fork();
    if (d->pid < 0) return weft_error("fork: %s", strerror(errno));
    if (d->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        setenv("WEFT_WORKER", S->standin, 1);
        if (wrap_mpirun) {
            const char *path = getenv("PATH");
            size_t n = strlen(S->bindir) + (path ? strlen(path) : 0) + 2;
            char *np = malloc(n);
            if (np) snprintf(np, n, "%s:%s", S->bindir, path ? path : "/usr/bin:/bin");
            if (np) setenv("PATH", np, 1);
        }
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        execl(S->weftd, S->weftd, "--home", d->home, "--slots", slots_s, "--liveness", "3600",
              "--foreground", (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", S->weftd, strerror(errno));
        _exit(127);
    }
    /* Ready when it answers a STATUS. */
    char sockpath[PATH_MAX + 16];
    snprintf(sockpath, sizeof sockpath, "%s/weftd.sock", d->home);
    double end = bench_now() + 20;
    while (access(sockpath, F_OK) < 0) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return weft_error("weftd exited at start; see %s", log);
        }
        if (bench_now() > end) return weft_error("weftd made no socket in 20 s; see %s", log);
        sleep_ms(5);
    }
    d->ctx = zmq_ctx_new();
    wire_opts_t o = wire_opts_default();
    o.immediate = 0;
    o.sndhwm = o.rcvhwm = 100000;
    d->sock = wire_dealer_new(d->ctx, d->endpoint, NULL, &o);
    if (!d->sock) return -1;
    int err = 0;
    json_t *r = request(d, WIRE_STATUS, json_object(), &err);
    if (!r || err) return weft_error("weftd did not answer STATUS; see %s", log);
    json_decref(r);
    return 0;
}

static void daemon_stop(daemon_t *d)
{
    if (d->sock) zmq_close(d->sock);
    if (d->ctx) zmq_ctx_term(d->ctx);
    d->sock = d->ctx = NULL;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st;
        while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR) continue;
        d->pid = 0;
    }
}

/* One message from weftd within REPLY_WAIT_MS; NULL on timeout or error. */
static wire_msg_t *receive(daemon_t *d)
{
    zmq_pollitem_t it = {d->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, REPLY_WAIT_MS) <= 0) {
        weft_error("weftd did not answer within %d s", REPLY_WAIT_MS / 1000);
        return NULL;
    }
    wire_rx_t rx = {.accept = WIRE_FROM_COORD, .max_json = 256u << 20};
    wire_reject_t rej;
    wire_msg_t *m = NULL;
    int rc = wire_recv(d->sock, &rx, 0, &m, &rej);
    if (rc == WIRE_REJECTED) weft_error("malformed reply: %s", rej.text);
    return rc == 0 ? m : NULL;
}

/* One request, one reply (takes body). *is_error: an ERROR reply. */
static json_t *request(daemon_t *d, wire_cmd_t cmd, json_t *body, int *is_error)
{
    json_t *out = NULL;
    *is_error = 0;
    if (wire_send(d->sock, NULL, 0, cmd, body, 0) == 0) {
        wire_msg_t *m = receive(d);
        if (m) {
            *is_error = m->cmd == WIRE_ERROR;
            if (*is_error) {
                const char *msg = wire_get_str(m->body, "message");
                weft_error("weftd: %s", msg ? msg : "error");
            }
            out = json_incref(m->body);
            wire_msg_destroy(&m);
        }
    }
    json_decref(body);
    return out;
}

/* ---- specs ---- */

static char *job_spec(const sched_setup_t *S, const char *name, int sweep)
{
    char *t = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&t, &len);
    if (!f) return NULL;
    fprintf(f,
            "name = \"%s\";\nmode = \"full\";\nmodel = \"%s/base.h5\";\n"
            "data = \"%s/corpus.h5\";\noutput = \"%s/out/%s\";\n"
            "train = { steps = 100; batch_size = 4; seq_len = 64; lr = 1e-4; max_attempts = 1; };\n"
            "resources = { ranks = 1; threads = 1; };\n",
            name, S->dir, S->dir, S->dir, name);
    if (sweep) {
        /* 100 x 100: floats keep 3 significant digits, so 1.00e-5 .. 1.99e-5 */
        fprintf(f, "sweep = { method = \"grid\"; train = { lr = [");
        for (int i = 0; i < 100; i++) fprintf(f, "%s%.2fe-5", i ? ", " : "", 1.0 + 0.01 * i);
        fprintf(f, "]; seed = [");
        for (int i = 0; i < 100; i++) fprintf(f, "%s%d", i ? ", " : "", i + 1);
        fprintf(f, "]; }; };\n");
    }
    if (fclose(f) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

/* The SUBMIT body of job_spec's job `name`, or NULL. */
static json_t *submit_body(const sched_setup_t *S, const char *name, int sweep)
{
    char *text = job_spec(S, name, sweep);
    json_t *body =
        text ? json_pack("{s:s, s:s, s:s}", "spec", text, "folder", S->dir, "file", "bench.cfg")
             : NULL;
    free(text);
    return body;
}

/* ---- (a) submissions ---- */

/* n one-job SUBMITs with up to `inflight` unanswered; jobs/s, or -1. */
static double flood(const sched_setup_t *S, daemon_t *d, int round, int *errors)
{
    char name[64];
    snprintf(name, sizeof name, "flood%d", round);
    /* one serialised body, sent n times: the client's own cost stays out */
    json_t *body = submit_body(S, name, 0);
    if (!body) return -1;
    char *raw = json_dumps(body, JSON_COMPACT);
    size_t rawlen = strlen(raw);
    json_decref(body);
    int sent = 0, got = 0;
    *errors = 0;
    double t0 = bench_now();
    while (got < S->jobs) {
        while (sent < S->jobs && sent - got < S->inflight) {
            if (wire_send_raw(d->sock, NULL, 0, WIRE_SUBMIT, raw, rawlen, 0) != 0) {
                free(raw);
                return -1;
            }
            sent++;
        }
        wire_msg_t *m = receive(d);
        if (!m) {
            free(raw);
            return -1;
        }
        if (m->cmd != WIRE_REPLY) {
            if (*errors == 0) {
                const char *msg = wire_get_str(m->body, "message");
                fprintf(stderr, "weft-bench sched: SUBMIT refused: %s\n", msg ? msg : "?");
            }
            (*errors)++;
        }
        wire_msg_destroy(&m);
        got++;
    }
    double dt = bench_now() - t0;
    free(raw);
    return S->jobs / dt;
}

/* One SUBMIT of a 10,000-trial sweep: seconds, or -1. */
static double sweep_once(const sched_setup_t *S, daemon_t *d, int round)
{
    char name[64];
    snprintf(name, sizeof name, "sweep%d", round);
    json_t *body = submit_body(S, name, 1);
    if (!body) return -1;
    int err = 0;
    double t0 = bench_now();
    json_t *r = request(d, WIRE_SUBMIT, body, &err);
    double dt = bench_now() - t0;
    size_t n = json_array_size(json_object_get(r, "jobs"));
    json_decref(r);
    if (!r || err) return -1;
    if (n != SWEEP_TRIALS)
        return weft_error("the sweep gave %zu jobs, not %d", n, SWEEP_TRIALS), -1;
    return dt;
}

/* ---- (b) listing ---- */

/* Median and 90th percentile of `count` LIST round trips with body. */
static int list_latency(daemon_t *d, int count, const char *state, const char *name,
                        int64_t before, double *med, double *p90, double *cpu)
{
    static double v[MAX_SAMPLES];
    if (count > MAX_SAMPLES) count = MAX_SAMPLES;
    double c0 = proc_cpu(d->pid);
    for (int i = 0; i < count; i++) {
        json_t *body = json_object();
        if (state) json_object_set_new(body, "state", json_string(state));
        if (name) json_object_set_new(body, "name", json_string(name));
        if (before > 0) json_object_set_new(body, "before", json_integer(before));
        int err = 0;
        double t0 = bench_now();
        json_t *r = request(d, WIRE_LIST, body, &err);
        v[i] = bench_now() - t0;
        size_t n = json_array_size(json_object_get(r, "jobs"));
        json_decref(r);
        if (!r || err) return -1;
        if (n == 0) return weft_error("LIST returned no jobs");
    }
    *cpu = (proc_cpu(d->pid) - c0) / count;
    *med = bench_median(v, (size_t)count);
    *p90 = v[(size_t)(0.9 * (count - 1))];
    return 0;
}

/* Median wall time of the `weft ls` program (output thrown away); state
 * "help" runs `weft --help` instead: the program's start-up alone. */
static double weft_ls(const sched_setup_t *S, const daemon_t *d, int runs, const char *state,
                      double *cpu_med)
{
    static double v[MAX_SAMPLES], cpu[MAX_SAMPLES];
    if (runs > MAX_SAMPLES) runs = MAX_SAMPLES;
    for (int i = 0; i < runs; i++) {
        double t0 = bench_now();
        pid_t pid = fork();
        if (pid < 0) return -1;
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) dup2(fd, 1), close(fd);
            if (state && !strcmp(state, "help"))
                execl(S->weft, S->weft, "--help", (char *)NULL);
            else if (state)
                execl(S->weft, S->weft, "--home", d->home, "ls", "--state", state, (char *)NULL);
            else
                execl(S->weft, S->weft, "--home", d->home, "ls", (char *)NULL);
            _exit(127);
        }
        int st;
        struct rusage ru;
        while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) continue;
        v[i] = bench_now() - t0;
        cpu[i] = bench_ru_cpu_s(&ru);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return weft_error("%s ls exited %d", S->weft, WIFEXITED(st) ? WEXITSTATUS(st) : -1),
                   -1;
    }
    *cpu_med = bench_median(cpu, (size_t)runs);
    return bench_median(v, (size_t)runs);
}

/* ---- (c) launching ---- */

/* Job state of id by STATUS ("" on error). */
static void job_state(daemon_t *d, int64_t id, char *out, size_t n)
{
    int err = 0;
    json_t *r = request(d, WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)id), &err);
    const char *s = err ? NULL : wire_get_str(r, "state");
    snprintf(out, n, "%s", s ? s : "");
    json_decref(r);
}

/* One launch: seconds from SUBMIT to the stand-in's start, to the ACK, and
 * to weftd's start of mpirun. */
static int launch_once(const sched_setup_t *S, daemon_t *d, int i, double *start_s, double *ack_s,
                       double *mpirun_s)
{
    char name[64];
    snprintf(name, sizeof name, "launch%d", i);
    json_t *body = submit_body(S, name, 0);
    if (!body) return -1;
    int before = starts_read(S->starts, NULL, NULL), err = 0;
    int mp_before = starts_read(S->mpirun_starts, NULL, NULL);
    double t0 = wall_now();
    json_t *r = request(d, WIRE_SUBMIT, body, &err);
    *ack_s = wall_now() - t0;
    int64_t id = json_integer_value(json_object_get(json_array_get(json_object_get(r, "jobs"), 0),
                                                    "id"));
    json_decref(r);
    if (!r || err || id <= 0) return -1;
    double t_start;
    if (starts_wait(S, before, 20, &t_start, NULL) < 0) return -1;
    *start_s = t_start - t0;
    double t_mp = 0;
    if (starts_read(S->mpirun_starts, &t_mp, NULL) <= mp_before)
        return weft_error("weftd did not start mpirun through %s/mpirun", S->bindir);
    *mpirun_s = t_mp - t0;
    /* Let this run end (its stand-in exits 65) before the next one. */
    double end = bench_now() + 20;
    char st[32] = "";
    while (bench_now() < end) {
        job_state(d, id, st, sizeof st);
        if (!strcmp(st, "failed") || !strcmp(st, "succeeded") || !strcmp(st, "cancelled")) break;
        sleep_ms(10);
    }
    return 0;
}

/* Seconds from fork of `mpirun -np 1 PROGRAM` to the program's start, and
 * the whole `mpirun -np 1 true`. */
static int mpirun_start(const sched_setup_t *S, int standin, double *out)
{
    int before = starts_read(S->starts, NULL, NULL);
    double t0 = wall_now(), b0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2), close(fd);
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        execlp("mpirun", "mpirun", "-np", "1", "--oversubscribe", "--bind-to", "none",
               standin ? S->standin : "true", (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) continue;
    if (!standin) {
        *out = bench_now() - b0;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : weft_error("mpirun -np 1 true failed");
    }
    double t;
    if (starts_wait(S, before, 5, &t, NULL) < 0) return -1;
    *out = t - t0;
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-bench sched [--jobs N] [--floods F] [--inflight K] [--stored M]\n"
            "                        [--lists L] [--ls-runs R] [--launches C] [--weftd PATH]\n"
            "                        [--weft PATH] [--keep] [--json]\n\n"
            "Runs the real weftd on a temporary home and measures, through its socket:\n"
            "(a) durable SUBMITs per second: F floods of N one-job SUBMITs with K in flight,\n"
            "    then 10,000-trial sweeps (one SUBMIT each) until M jobs are stored;\n"
            "(b) LIST of one page (median of L) with M jobs stored, and `weft ls` (R runs);\n"
            "(c) SUBMIT to worker start (C launches of a stand-in worker under mpirun),\n"
            "    beside mpirun's own start.\n"
            "Defaults: N 10000, F 2, K 500, M 100000, L 200, R 20, C 20.\n");
}

int bench_sched(int argc, char **argv)
{
    sched_setup_t S = {.jobs = 10000,
                       .floods = 2,
                       .inflight = 500,
                       .stored = 100000,
                       .lists = 200,
                       .ls_runs = 20,
                       .launches = 20};
    int json = 0;
    const bench_opt_t opts[] = {
        BENCH_INT_OPT("jobs", &S.jobs),         BENCH_INT_OPT("floods", &S.floods),
        BENCH_INT_OPT("inflight", &S.inflight), BENCH_INT_OPT("stored", &S.stored),
        BENCH_INT_OPT("lists", &S.lists),       BENCH_INT_OPT("ls-runs", &S.ls_runs),
        BENCH_INT_OPT("launches", &S.launches), BENCH_PATH_OPT("weftd", S.weftd),
        BENCH_PATH_OPT("weft", S.weft),
        BENCH_FLAG_OPT("keep", &S.keep),        BENCH_FLAG_OPT("json", &json)};
    int p = bench_options(argc, argv, opts, BENCH_NOPTS(opts), usage);
    if (p) return p > 0 ? 0 : EX_USAGE;
    if (S.jobs < 1 || S.floods < 1 || S.inflight < 1 || S.inflight > 900 ||
        S.lists < 1 || S.ls_runs < 1 || S.launches < 1 || S.launches > MAX_SAMPLES ||
        S.floods > MAX_SAMPLES) {
        fprintf(stderr, "weft-bench sched: counts must be positive; --inflight at most 900 "
                        "(weftd's reply queue holds 1000)\n");
        return EX_USAGE;
    }
    if (!S.weftd[0]) bench_prog("weftd", S.weftd, sizeof S.weftd);
    if (!S.weft[0]) bench_prog("weft", S.weft, sizeof S.weft);
    snprintf(S.dir, sizeof S.dir, "/tmp/weft-bench-sched-XXXXXX");
    if (!mkdtemp(S.dir)) {
        fprintf(stderr, "weft-bench sched: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    int rc = 1;
    daemon_t d = {0};
    pid_t holder = 0;
    static double flood_rate[MAX_SAMPLES], flood_cpu[MAX_SAMPLES], sweep_s[MAX_SAMPLES],
        sweep_cpu[MAX_SAMPLES], launch[MAX_SAMPLES], ack[MAX_SAMPLES], mp_start[MAX_SAMPLES],
        mp_true[MAX_SAMPLES], to_mpirun[MAX_SAMPLES], in_mpirun[MAX_SAMPLES];
    int nsweeps = 0, flood_errors = 0;
    /* (b): median, p90 and weftd CPU per request of each kind of LIST */
    enum { L_NEWEST, L_QUEUED, L_NAME, L_BEFORE, L_N };
    static const char *list_what[L_N] = {"newest page", "--state queued", "--name (10,000 match)",
                                         "--before (middle)"};
    double lmed[L_N] = {0}, lp90[L_N] = {0}, lcpu[L_N] = {0};
    double ls_prog = 0, lsq_prog = 0, ls_cpu = 0, lsq_cpu = 0, help_prog = 0, help_cpu = 0;
    int64_t stored = 0;
    if (write_standin(&S) < 0 || write_inputs(&S) < 0) goto out;

    /* (a) A first job takes the only slot and holds it. */
    FILE *h = fopen(S.hold, "w");
    if (h) fclose(h);
    if (daemon_start(&S, &d, "home-a", 1, 0) < 0) goto out;
    {
        json_t *body = submit_body(&S, "holder", 0);
        int err = 0;
        json_t *r = body ? request(&d, WIRE_SUBMIT, body, &err) : NULL;
        json_decref(r);
        if (!r || err || starts_wait(&S, 0, 20, NULL, &holder) < 0) goto out;
        stored = 1;
    }
    fprintf(stderr, "(a) one job holds the only slot; %d x %d one-job SUBMITs, %d in flight\n",
            S.floods, S.jobs, S.inflight);
    for (int f = 0; f < S.floods; f++) {
        int errors = 0;
        double c0 = proc_cpu(d.pid);
        flood_rate[f] = flood(&S, &d, f, &errors);
        if (flood_rate[f] < 0) goto out;
        flood_cpu[f] = (proc_cpu(d.pid) - c0) / S.jobs;
        flood_errors += errors;
        stored += S.jobs - errors;
        fprintf(stderr, "    flood %d: %.0f jobs/s, weftd CPU %.0f us/job%s\n", f + 1,
                flood_rate[f], 1e6 * flood_cpu[f], errors ? " (with refusals)" : "");
    }
    while (stored < S.stored || nsweeps == 0) {
        double c0 = proc_cpu(d.pid);
        double t = sweep_once(&S, &d, nsweeps);
        if (t < 0) goto out;
        sweep_cpu[nsweeps] = (proc_cpu(d.pid) - c0) / SWEEP_TRIALS;
        sweep_s[nsweeps++] = t;
        stored += SWEEP_TRIALS;
        fprintf(stderr, "    sweep %d: %d trials in %.3f s (%.0f jobs/s, weftd CPU %.0f us/job); "
                        "%lld stored\n",
                nsweeps, SWEEP_TRIALS, t, SWEEP_TRIALS / t, 1e6 * sweep_cpu[nsweeps - 1],
                (long long)stored);
        if (nsweeps == MAX_SAMPLES) break;
    }

    /* (b) Listing with that many jobs stored. */
    fprintf(stderr, "(b) LIST x %d and weft ls x %d with %lld jobs stored\n", S.lists, S.ls_runs,
            (long long)stored);
    if (list_latency(&d, S.lists, NULL, NULL, 0, &lmed[L_NEWEST], &lp90[L_NEWEST],
                     &lcpu[L_NEWEST]) < 0 ||
        list_latency(&d, S.lists, "queued", NULL, 0, &lmed[L_QUEUED], &lp90[L_QUEUED],
                     &lcpu[L_QUEUED]) < 0 ||
        list_latency(&d, S.lists, NULL, "flood0", 0, &lmed[L_NAME], &lp90[L_NAME],
                     &lcpu[L_NAME]) < 0 ||
        list_latency(&d, S.lists, NULL, NULL, stored / 2, &lmed[L_BEFORE], &lp90[L_BEFORE],
                     &lcpu[L_BEFORE]) < 0 ||
        (ls_prog = weft_ls(&S, &d, S.ls_runs, NULL, &ls_cpu)) < 0 ||
        (lsq_prog = weft_ls(&S, &d, S.ls_runs, "queued", &lsq_cpu)) < 0 ||
        (help_prog = weft_ls(&S, &d, S.ls_runs, "help", &help_cpu)) < 0)
        goto out;
    daemon_stop(&d);
    if (holder > 0) kill(holder, SIGTERM);
    holder = 0;
    unlink(S.hold);

    /* (c) Launch latency on a fresh home with free slots. */
    fprintf(stderr, "(c) %d launches of a stand-in worker\n", S.launches);
    if (daemon_start(&S, &d, "home-c", 2, 1) < 0) goto out;
    for (int i = 0; i < S.launches; i++) {
        if (launch_once(&S, &d, i, &launch[i], &ack[i], &to_mpirun[i]) < 0) goto out;
        in_mpirun[i] = launch[i] - to_mpirun[i];
        if (mpirun_start(&S, 1, &mp_start[i]) < 0 || mpirun_start(&S, 0, &mp_true[i]) < 0)
            goto out;
    }
    daemon_stop(&d);
    rc = 0;

out:
    if (rc) weft_report();
    daemon_stop(&d);
    if (holder > 0) kill(holder, SIGTERM);
    if (rc) return rc;
    size_t L = (size_t)S.launches;
    double fl = bench_median(flood_rate, (size_t)S.floods);
    double fl_lo = flood_rate[0], fl_hi = flood_rate[S.floods - 1];
    double flc = bench_median(flood_cpu, (size_t)S.floods);
    double sw = bench_median(sweep_s, (size_t)nsweeps);
    double sw_lo = sweep_s[0], sw_hi = sweep_s[nsweeps - 1];
    double swc = bench_median(sweep_cpu, (size_t)nsweeps);
    double la = bench_median(launch, L), la_lo = launch[0], la_hi = launch[L - 1];
    double ak = bench_median(ack, L);
    double ms = bench_median(mp_start, L), mt = bench_median(mp_true, L);
    double own = bench_median(to_mpirun, L), own_lo = to_mpirun[0], own_hi = to_mpirun[L - 1];
    double inside = bench_median(in_mpirun, L);
    printf("weft-bench sched: weftd (WAL, synchronous=FULL, each reply after its COMMIT) "
           "through ipc; %lld jobs stored for (b)\n",
           (long long)stored);
    printf("%-38s %11s %21s %17s %9s\n", "(a) accepted submissions", "jobs/s", "range",
           "weftd CPU/job", "target");
    printf("%-38s %11.0f %10.0f .. %-7.0f %14.0f us %9s\n", "10,000 one-job SUBMITs in flight", fl,
           fl_lo, fl_hi, 1e6 * flc, ">= 5000");
    printf("%-38s %11.0f %10.0f .. %-7.0f %14.0f us %9s\n", "one SUBMIT of a 10,000-trial sweep",
           SWEEP_TRIALS / sw, SWEEP_TRIALS / sw_hi, SWEEP_TRIALS / sw_lo, 1e6 * swc, ">= 5000");
    printf("%-38s %11s %21s %17s %9s\n", "(b) one page (50 jobs) of LIST", "median ms", "p90 ms",
           "weftd CPU/LIST", "target");
    for (int i = 0; i < L_N; i++)
        printf("%-38s %11.2f %21.2f %14.2f ms %9s\n", list_what[i], 1e3 * lmed[i], 1e3 * lp90[i],
               1e3 * lcpu[i], i == L_NEWEST ? "<= 50 ms" : "");
    printf("%-38s %11.1f %21s %14.1f ms %9s\n", "`weft ls` program (CPU: its own)", 1e3 * ls_prog,
           "", 1e3 * ls_cpu, "<= 50 ms");
    printf("%-38s %11.1f %21s %14.1f ms %9s\n", "`weft ls --state queued` program", 1e3 * lsq_prog,
           "", 1e3 * lsq_cpu, "");
    printf("%-38s %11.1f %21s %14.1f ms %9s\n", "`weft --help` (the program's start-up)",
           1e3 * help_prog, "", 1e3 * help_cpu, "");
    printf("%-38s %11s %21s %17s %9s\n", "(c) launching", "median ms", "range", "", "target");
    printf("%-38s %11.1f %10.1f .. %-7.1f %17s %9s\n", "SUBMIT -> worker program starts", 1e3 * la,
           1e3 * la_lo, 1e3 * la_hi, "", "");
    printf("%-38s %11.1f %21s %17s %9s\n", "  SUBMIT -> its reply (after COMMIT)", 1e3 * ak, "",
           "", "");
    printf("%-38s %11.1f %10.1f .. %-7.1f %17s %9s\n", "  SUBMIT -> weftd has started mpirun",
           1e3 * own, 1e3 * own_lo, 1e3 * own_hi, "", "<= 50 ms");
    printf("%-38s %11.1f %21s %17s %9s\n", "  mpirun started -> worker starts", 1e3 * inside, "",
           "", "");
    printf("%-38s %11.1f %21s %17s %9s\n", "mpirun alone: fork -> worker starts", 1e3 * ms, "",
           "", "");
    printf("%-38s %11.1f %21s %17s %9s\n", "`mpirun -np 1 true`, start to exit", 1e3 * mt, "", "",
           "");
    printf("%d floods, %d sweeps, %d launches; %d SUBMITs refused\n", S.floods, nsweeps,
           S.launches, flood_errors);
    if (json) {
        json_t *o = json_pack("{s:s, s:I, s:i}", "bench", "sched", "stored", (json_int_t)stored,
                              "refused", flood_errors);
        const struct {
            const char *key;
            double v;
        } figs[] = {{"submit_jobs_per_s", fl},
                    {"submit_cpu_us_per_job", 1e6 * flc},
                    {"sweep_jobs_per_s", SWEEP_TRIALS / sw},
                    {"sweep_cpu_us_per_job", 1e6 * swc},
                    {"list_ms", 1e3 * lmed[L_NEWEST]},
                    {"list_p90_ms", 1e3 * lp90[L_NEWEST]},
                    {"list_cpu_ms", 1e3 * lcpu[L_NEWEST]},
                    {"list_queued_ms", 1e3 * lmed[L_QUEUED]},
                    {"list_name_ms", 1e3 * lmed[L_NAME]},
                    {"list_before_ms", 1e3 * lmed[L_BEFORE]},
                    {"weft_ls_ms", 1e3 * ls_prog},
                    {"weft_ls_cpu_ms", 1e3 * ls_cpu},
                    {"weft_ls_queued_ms", 1e3 * lsq_prog},
                    {"weft_help_ms", 1e3 * help_prog},
                    {"launch_ms", 1e3 * la},
                    {"submit_ack_ms", 1e3 * ak},
                    {"mpirun_start_ms", 1e3 * ms},
                    {"weftd_launch_ms", 1e3 * own},
                    {"mpirun_true_ms", 1e3 * mt}};
        for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++)
            json_object_set_new(o, figs[i].key, json_real(figs[i].v));
        bench_json_print(o);
    }
    bench_dir_done(S.dir, S.keep);
    return 0;
}
