/* exec_local.c: fork/exec of mpirun in its own process group (see
 * exec_local.h). The child gets its own session so that signals to weftd's
 * terminal never reach it and one kill(-pgid) reaches every rank. */
#include "scheduler/exec_local.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_GPUS_MAX 64

struct exec_local {
    char mpirun[PATH_MAX];
    char worker[PATH_MAX];
    char endpoint[512];
    int ngpus;                      /* the pool (weftd --gpus) */
    int gpu_id[EXEC_GPUS_MAX];      /* CUDA device ids */
    int64_t gpu_run[EXEC_GPUS_MAX]; /* the run holding it, 0 when free */
};

/* Finds name in PATH; 0 and full path, or -1. */
static int which(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len + strlen(name) + 2 <= n) {
            snprintf(out, n, "%.*s/%s", (int)len, path, name);
            if (access(out, X_OK) == 0) return 0;
        }
        path += len + (colon ? 1 : 0);
    }
    return -1;
}

exec_local_t *exec_local_new(const char *mpirun, const char *worker, const char *endpoint)
{
    exec_local_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint ? endpoint : "");
    if (mpirun)
        snprintf(self->mpirun, sizeof self->mpirun, "%s", mpirun);
    else if (which("mpirun", self->mpirun, sizeof self->mpirun) < 0) {
        weft_error("mpirun not found in PATH: install openmpi-bin");
        free(self);
        return NULL;
    }
    if (worker) {
        snprintf(self->worker, sizeof self->worker, "%s", worker);
    } else {
        /* weft-worker beside this program, else in PATH. */
        char exe[PATH_MAX], dir[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        int found = 0;
        if (k > 0) {
            exe[k] = 0;
            weft_dirname(exe, dir, sizeof dir);
            found = weft_path_join(self->worker, sizeof self->worker, dir, "weft-worker") == 0 &&
                    access(self->worker, X_OK) == 0;
        }
        if (!found && which("weft-worker", self->worker, sizeof self->worker) < 0) {
            weft_error("weft-worker not found beside this program or in PATH");
            free(self);
            return NULL;
        }
    }
    if (access(self->mpirun, X_OK) < 0 || access(self->worker, X_OK) < 0) {
        weft_error("%s is not executable",
                   access(self->mpirun, X_OK) < 0 ? self->mpirun : self->worker);
        free(self);
        return NULL;
    }
    return self;
}

void exec_local_destroy(exec_local_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

void exec_local_child_signals(void)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int launch(exec_local_t *self, int64_t run, int attempt, int ranks, int threads,
                  const char *spec_path, const char *log_path, const char *gpus, pid_t *pid)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return weft_error("%s: cannot open the run log: %s", log_path, strerror(errno));
    char np[16], runs[32], att[16], thr[16];
    snprintf(np, sizeof np, "%d", ranks);
    snprintf(runs, sizeof runs, "%" PRId64, run);
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(thr, sizeof thr, "%d", threads > 0 ? threads : 1);
    char *argv[24];
    int a = 0;
    argv[a++] = self->mpirun;
    argv[a++] = "-np";
    argv[a++] = np;
    argv[a++] = "--oversubscribe";
    argv[a++] = "--bind-to";
    argv[a++] = "none";
    if (getenv("WEFT_WORKER_KEY")) { /* the run's CURVE key (weftd_worker_key) */
        argv[a++] = "-x";
        argv[a++] = "WEFT_WORKER_KEY";
    }
    argv[a++] = self->worker;
    argv[a++] = (char *)spec_path;
    if (self->endpoint[0]) {
        argv[a++] = "--endpoint";
        argv[a++] = self->endpoint;
    }
    argv[a++] = "--run";
    argv[a++] = runs;
    argv[a++] = "--attempt";
    argv[a++] = att;
    argv[a] = NULL;
    pid_t child = fork();
    if (child < 0) {
        close(fd);
        return weft_error("cannot fork: %s", strerror(errno));
    }
    if (child == 0) {
        setsid();
        exec_local_child_signals();
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("OPENBLAS_NUM_THREADS", thr, 1);
        if (gpus) setenv("CUDA_VISIBLE_DEVICES", gpus, 1);
        execv(argv[0], argv);
        dprintf(2, "weftd: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    *pid = child;
    return 0;
}

int exec_local_launch(exec_local_t *self, int64_t run, int attempt, int ranks, int threads,
                      const char *spec_path, const char *log_path, pid_t *pid)
{
    return launch(self, run, attempt, ranks, threads, spec_path, log_path, NULL, pid);
}

int exec_local_set_gpus(exec_local_t *self, const char *list)
{
    self->ngpus = 0;
    if (!list || !*list) return 0;
    const char *p = list;
    while (*p) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id > 1023 || (*end && *end != ','))
            return weft_error("--gpus %s: not a list of GPU ids (e.g. 0,1,2,3)", list);
        for (int i = 0; i < self->ngpus; i++)
            if (self->gpu_id[i] == id) return weft_error("--gpus %s: GPU %ld twice", list, id);
        if (self->ngpus == EXEC_GPUS_MAX)
            return weft_error("--gpus %s: more than %d GPUs", list, EXEC_GPUS_MAX);
        self->gpu_id[self->ngpus] = (int)id;
        self->gpu_run[self->ngpus++] = 0;
        p = *end ? end + 1 : end;
        if (*end && !*p) return weft_error("--gpus %s: not a list of GPU ids (e.g. 0,1,2,3)", list);
    }
    return 0;
}

int exec_local_gpus_total(const exec_local_t *self)
{
    return self->ngpus;
}

int exec_local_gpus_free(const exec_local_t *self)
{
    int n = 0;
    for (int i = 0; i < self->ngpus; i++) n += self->gpu_run[i] == 0;
    return n;
}

int exec_local_launch_gpus(exec_local_t *self, int64_t run, int attempt, int ranks, int threads,
                           int ngpus, const char *spec_path, const char *log_path, pid_t *pid,
                           char *gpus, size_t gsize)
{
    if (gsize) gpus[0] = 0;
    if (ngpus <= 0 || self->ngpus == 0)
        return launch(self, run, attempt, ranks, threads, spec_path, log_path, NULL, pid);
    if (ngpus > self->ngpus)
        return weft_error("run %" PRId64 " needs %d GPUs but weftd has %d (--gpus): start weftd "
                          "with more, or ask for fewer ranks",
                          run, ngpus, self->ngpus);
    exec_local_release_gpus(self, run); /* a new attempt of the run */
    if (exec_local_gpus_free(self) < ngpus) return 1;
    int take[EXEC_GPUS_MAX], n = 0;
    size_t used = 0;
    for (int i = 0; i < self->ngpus && n < ngpus; i++)
        if (self->gpu_run[i] == 0) {
            int k = snprintf(gpus + used, gsize > used ? gsize - used : 0, "%s%d", n ? "," : "",
                             self->gpu_id[i]);
            if (k < 0 || used + (size_t)k >= gsize) return weft_error("GPU list too long");
            used += (size_t)k;
            take[n++] = i;
        }
    if (launch(self, run, attempt, ranks, threads, spec_path, log_path, gpus, pid) < 0) return -1;
    for (int i = 0; i < n; i++) self->gpu_run[take[i]] = run;
    return 0;
}

void exec_local_release_gpus(exec_local_t *self, int64_t run)
{
    for (int i = 0; i < self->ngpus; i++)
        if (self->gpu_run[i] == run) self->gpu_run[i] = 0;
}

void exec_local_claim_gpus(exec_local_t *self, int64_t run, const char *list)
{
    const char *p = list;
    while (p && *p) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p) break;
        for (int i = 0; i < self->ngpus; i++)
            if (self->gpu_id[i] == id) self->gpu_run[i] = run;
        p = *end == ',' ? end + 1 : end;
    }
}

static int code_of(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

int exec_local_reap(pid_t *pid, int *exit_code)
{
    int status;
    pid_t p = waitpid(-1, &status, WNOHANG);
    if (p <= 0) return 0;
    *pid = p;
    *exit_code = code_of(status);
    return 1;
}

int exec_local_reap_pid(pid_t pid, int *exit_code)
{
    int status;
    if (pid <= 1 || waitpid(pid, &status, WNOHANG) != pid) return 0;
    *exit_code = code_of(status);
    return 1;
}

/* Session id of a process from /proc/<pid>/stat (field 6), or -1. */
static pid_t session_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    int ppid, pgrp, session;
    char state;
    if (!rp || sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4) return -1;
    return (pid_t)session;
}

int exec_local_signal(pid_t pid, int sig)
{
    if (pid <= 1) return weft_error("refusing to signal process group %d", (int)pid);
    if (kill(-pid, sig) < 0 && errno != ESRCH)
        return weft_error("cannot signal run group %d: %s", (int)pid, strerror(errno));
    /* mpirun puts ranks in process groups of their own, but they keep the
     * session the launch made: signal every process of that session too,
     * so that no rank outlives a killed mpirun. */
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t p = (pid_t)atoi(e->d_name);
        if (p > 1 && p != pid && session_of(p) == pid) kill(p, sig);
    }
    closedir(d);
    return 0;
}

int exec_local_alive(pid_t pid)
{
    if (pid <= 1) return 0;
    if (kill(pid, 0) == 0) {
        /* A zombie child counts as gone; it is reaped by exec_local_reap. */
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f) return 1;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *rp = strrchr(buf, ')');
        return !(rp && rp[1] == ' ' && rp[2] == 'Z');
    }
    return errno == EPERM;
}

int exec_local_ended(pid_t pid, int *exit_code)
{
    if (exec_local_reap_pid(pid, exit_code)) return 1;
    if (exec_local_alive(pid)) return 0;
    /* It may have exited between the two looks: a child's code is kept. */
    if (!exec_local_reap_pid(pid, exit_code)) *exit_code = -1;
    return 1;
}
