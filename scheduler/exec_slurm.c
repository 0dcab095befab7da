/* exec_slurm.c: sbatch, scontrol and scancel for weftd's Slurm executor and
 * for `weft sbatch` (see exec_slurm.h). Job states come from one
 * `scontrol show job -o` snapshot a second, whatever the number of runs. */
#include "common/clock.h"
#include "scheduler/exec_slurm.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char script_text[] =
#include "scheduler/weft_sbatch.h"
    ;

#define SNAPSHOT_EVERY 1.0         /* seconds between two scontrol calls */
#define SNAPSHOT_MAX   (256 << 20) /* bytes of `scontrol show job -o` read at most */

typedef struct {
    char id[32];
    exec_slurm_state_t state;
    int exit_code;
} job_view_t;

struct exec_slurm {
    char worker[PATH_MAX];
    char endpoint[512];
    char script[PATH_MAX];
    job_view_t *jobs;
    size_t njobs;
    int snapshot_ok;
    double snapshot_at;
};

/* Appends what is readable on fd to buf (keeping a NUL); 0 at EOF. */
static int drain(int fd, char *buf, size_t size, size_t *len)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) return 1;
    if (n <= 0) return 0;
    if (buf && size > 0) {
        size_t room = size - 1 - *len;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(buf + *len, tmp, k);
        *len += k;
        buf[*len] = 0;
    }
    return 1;
}

int exec_slurm_command(char *const argv[], char *out, size_t outsize, char *err, size_t errsize)
{
    int po[2], pe[2];
    if (out && outsize) out[0] = 0;
    if (err && errsize) err[0] = 0;
    if (pipe(po) < 0) return weft_error("pipe: %s", strerror(errno));
    if (pipe(pe) < 0) {
        close(po[0]), close(po[1]);
        return weft_error("pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return weft_error("cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(pe[0]);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    size_t lo = 0, le = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int more =
                i == 0 ? drain(fds[i].fd, out, outsize, &lo) : drain(fds[i].fd, err, errsize, &le);
            if (!more) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return weft_error("waitpid %s: %s", argv[0], strerror(errno));
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 127)
            return weft_error("cannot run %s: not found in PATH (is Slurm installed?)", argv[0]);
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

int exec_slurm_find_program(const char *name, char *out, size_t outsize)
{
    char exe[PATH_MAX], dir[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        weft_dirname(exe, dir, sizeof dir);
        if (weft_path_join(out, outsize, dir, name) == 0 && access(out, X_OK) == 0) return 0;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < sizeof dir) {
            memcpy(dir, path, len);
            dir[len] = 0;
            if (weft_path_join(out, outsize, dir, name) == 0 && access(out, X_OK) == 0) return 0;
        }
        path += len + (colon ? 1 : 0);
    }
    return weft_error("%s not found beside this program or in PATH", name);
}

int exec_slurm_script_write(const char *path)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return weft_error("path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return weft_error("%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(script_text, 1, sizeof script_text - 1, f) != sizeof script_text - 1;
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return weft_error("%s: cannot write the batch script", tmp);
    }
    if (chmod(tmp, 0755) < 0 || weft_fsync_path(tmp) < 0 || weft_rename_durable(tmp, path) < 0)
        return weft_error_prefix("batch script %s", path);
    return 0;
}

exec_slurm_t *exec_slurm_new(const char *worker, const char *endpoint, const char *home)
{
    exec_slurm_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint ? endpoint : "");
    int rc = 0;
    if (worker) {
        snprintf(self->worker, sizeof self->worker, "%s", worker);
        if (access(worker, X_OK) < 0) rc = weft_error("%s is not executable", worker);
    } else {
        rc = exec_slurm_find_program("weft-worker", self->worker, sizeof self->worker);
    }
    char *const probe[] = {"sbatch", "--version", NULL};
    char out[256];
    if (rc == 0 && exec_slurm_command(probe, out, sizeof out, NULL, 0) != 0)
        rc = weft_error("sbatch does not run here: install Slurm's client commands "
                        "(slurm-client) or use --executor local");
    if (rc == 0 && (weft_path_join(self->script, sizeof self->script, home, "weft.sbatch") < 0 ||
                    exec_slurm_script_write(self->script) < 0))
        rc = -1;
    if (rc < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void exec_slurm_destroy(exec_slurm_t **self_p)
{
    if (!*self_p) return;
    free((*self_p)->jobs);
    free(*self_p);
    *self_p = NULL;
}

int exec_slurm_launch(exec_slurm_t *self, int64_t run, int attempt, int ranks, int threads,
                      int gpus, const char *spec_path, const char *log_path, char *job_id,
                      size_t idsize)
{
    char name[48], ntasks[32], cpus[32], out[PATH_MAX + 8], runs[32], att[16];
    snprintf(name, sizeof name, "--job-name=weft-run-%" PRId64, run);
    snprintf(ntasks, sizeof ntasks, "--ntasks=%d", ranks);
    snprintf(cpus, sizeof cpus, "--cpus-per-task=%d", threads > 0 ? threads : 1);
    snprintf(runs, sizeof runs, "%" PRId64, run);
    snprintf(att, sizeof att, "%d", attempt);
    if (snprintf(out, sizeof out, "--output=%s", log_path) >= (int)sizeof out)
        return weft_error("log path too long: %s", log_path);
    /* weftd retries with a new attempt itself: Slurm must not requeue. */
    char *argv[24];
    int a = 0;
    argv[a++] = "sbatch";
    argv[a++] = "--parsable";
    argv[a++] = name;
    argv[a++] = ntasks;
    argv[a++] = cpus;
    if (gpus > 0) argv[a++] = "--gpus-per-task=1"; /* one rank drives one GPU */
    argv[a++] = "--no-requeue";
    argv[a++] = "--open-mode=append";
    argv[a++] = out;
    argv[a++] = self->script;
    argv[a++] = "--no-requeue";
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
    setenv("WEFT_WORKER", self->worker, 1);
    char got[256], err[512];
    int rc = exec_slurm_command(argv, got, sizeof got, err, sizeof err);
    if (rc < 0) return -1;
    err[strcspn(err, "\n")] = 0;
    if (rc != 0) return weft_error("sbatch refused run %" PRId64 ": %s", run, err);
    /* --parsable prints "JOBID" or "JOBID;CLUSTER". */
    size_t n = strspn(got, "0123456789");
    if (n == 0 || n >= idsize) return weft_error("sbatch printed no job id: '%s'", got);
    memcpy(job_id, got, n);
    job_id[n] = 0;
    self->snapshot_at = 0; /* the next look sees the new job */
    return 0;
}

/* The value of KEY= in one `scontrol show job -o` line (fields are separated
 * by spaces), copied into out; 0 when found. */
static int field(const char *line, const char *key, char *out, size_t outsize)
{
    size_t klen = strlen(key);
    for (const char *p = line; (p = strstr(p, key));) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, " \n");
            if (n >= outsize) n = outsize - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return 0;
        }
        p += klen;
    }
    return -1;
}

static exec_slurm_state_t state_of(const char *s)
{
    static const char *const final[] = {"COMPLETED", "FAILED",        "CANCELLED", "TIMEOUT",
                                        "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"};
    static const char *const waiting[] = {"PENDING",   "CONFIGURING",  "REQUEUED",
                                          "PREEMPTED", "REQUEUE_HOLD", "REQUEUE_FED"};
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        if (!strcmp(s, final[i])) return EXEC_SLURM_ENDED;
    for (size_t i = 0; i < sizeof waiting / sizeof waiting[0]; i++)
        if (!strcmp(s, waiting[i])) return EXEC_SLURM_WAITING;
    return EXEC_SLURM_RUNNING; /* RUNNING, COMPLETING, SUSPENDED, SIGNALING, ... */
}

/* One `scontrol show job -o`: every job the controller still knows. */
static void snapshot(exec_slurm_t *self)
{
    char err[512];
    char *const argv[] = {"scontrol", "show", "job", "-o", NULL};
    self->snapshot_at = weft_clock();
    self->snapshot_ok = 0;
    /* A busy cluster lists many jobs: a cut-off list would lose ours, so
     * the buffer grows until the whole list fits. */
    char *text = NULL;
    int rc = -1;
    for (size_t cap = 1 << 20; cap <= SNAPSHOT_MAX; cap *= 4) {
        free(text);
        if (!(text = malloc(cap))) break;
        rc = exec_slurm_command(argv, text, cap, err, sizeof err);
        if (rc != 0 || strlen(text) < cap - 1) break;
        rc = weft_error("the job list is over %d MiB", SNAPSHOT_MAX >> 20);
    }
    if (!text) return;
    if (rc != 0) {
        err[strcspn(err, "\n")] = 0;
        weft_warn("scontrol show job failed (%s); job states unknown until it answers",
                  rc < 0 ? weft_last_error() : err);
        free(text);
        return;
    }
    self->njobs = 0;
    size_t capjobs = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        job_view_t v = {.exit_code = -1};
        char st[64], code[64];
        if (field(line, "JobId", v.id, sizeof v.id) < 0 ||
            field(line, "JobState", st, sizeof st) < 0)
            continue;
        v.state = state_of(st);
        if (field(line, "ExitCode", code, sizeof code) == 0) {
            int c = 0, sig = 0;
            if (sscanf(code, "%d:%d", &c, &sig) >= 1) v.exit_code = sig ? 128 + sig : c;
        }
        if (self->njobs == capjobs) {
            capjobs = capjobs ? 2 * capjobs : 64;
            job_view_t *j = realloc(self->jobs, capjobs * sizeof *j);
            if (!j) break;
            self->jobs = j;
        }
        self->jobs[self->njobs++] = v;
    }
    self->snapshot_ok = 1;
    free(text);
}

exec_slurm_state_t exec_slurm_state(exec_slurm_t *self, const char *job_id, int *exit_code)
{
    if (weft_clock() - self->snapshot_at >= SNAPSHOT_EVERY) snapshot(self);
    if (!self->snapshot_ok) return EXEC_SLURM_UNKNOWN;
    for (size_t i = 0; i < self->njobs; i++) {
        if (strcmp(self->jobs[i].id, job_id)) continue;
        *exit_code = self->jobs[i].exit_code;
        return self->jobs[i].state;
    }
    return EXEC_SLURM_GONE;
}

int exec_slurm_cancel(exec_slurm_t *self, const char *job_id)
{
    char *const argv[] = {"scancel", (char *)job_id, NULL};
    char err[512];
    int rc = exec_slurm_command(argv, NULL, 0, err, sizeof err);
    self->snapshot_at = 0;
    if (rc < 0) return -1;
    err[strcspn(err, "\n")] = 0;
    if (rc != 0 && !strstr(err, "Invalid job id") && !strstr(err, "already completing"))
        return weft_error("scancel %s: %s", job_id, err);
    return 0;
}
