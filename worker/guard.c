/* guard.c: signals, the watchdog thread and fault injection (see guard.h). */
#include "common/clock.h"
#include "worker/guard.h"
#include "common/log.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

void guard_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int guard_stop_requested(void)
{
    return stop_signal;
}

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    double limit;
    double last; /* monotonic time of the last progress */
    int64_t step;
    int rank, multiple, running, quit;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.lock);
    while (!wd.quit) {
        double idle = weft_clock() - wd.last;
        if (idle > wd.limit) {
            fprintf(stderr,
                    "weft-worker: rank %d: watchdog: no progress for %.0f s after step %lld "
                    "(limit %.0f s); aborting the group so it does not hold its allocation\n",
                    wd.rank, idle, (long long)wd.step, wd.limit);
            fflush(stderr);
            if (wd.multiple) MPI_Abort(MPI_COMM_WORLD, 1);
            raise(SIGKILL);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&wd.cond, &wd.lock, &until);
    }
    pthread_mutex_unlock(&wd.lock);
    return NULL;
}

int guard_watchdog_start(double seconds, int rank, int mpi_thread_multiple)
{
    if (seconds <= 0) return 0;
    wd.limit = seconds;
    wd.last = weft_clock();
    wd.rank = rank;
    wd.multiple = mpi_thread_multiple;
    wd.quit = 0;
    if (pthread_create(&wd.thread, NULL, watch, NULL) != 0)
        return weft_error("cannot start the watchdog thread");
    wd.running = 1;
    return 0;
}

void guard_progress(int64_t step)
{
    pthread_mutex_lock(&wd.lock);
    wd.last = weft_clock();
    wd.step = step;
    pthread_mutex_unlock(&wd.lock);
}

void guard_watchdog_stop(void)
{
    if (!wd.running) return;
    pthread_mutex_lock(&wd.lock);
    wd.quit = 1;
    pthread_cond_signal(&wd.cond);
    pthread_mutex_unlock(&wd.lock);
    pthread_join(wd.thread, NULL);
    wd.running = 0;
}

static struct {
    int on, rank;
    int64_t step;
    char action[8];
} fault;

int guard_fault_parse(const char *text, int attempt)
{
    fault.on = 0;
    if (!text || !*text) return 0;
    int rank, only = 1, n = 0;
    long long step;
    char action[8] = "";
    int got = sscanf(text, "%d:%lld:%7[a-z]%n", &rank, &step, action, &n);
    if (got == 3 && text[n] == ':' && sscanf(text + n + 1, "%d", &only) != 1) got = 0;
    if (got != 3 || rank < 0 || step < 0 ||
        (strcmp(action, "kill") && strcmp(action, "exit") && strcmp(action, "hang") &&
         strcmp(action, "wait")))
        return weft_error("WEFT_FAULT='%s': expected rank:step:kill|exit|hang|wait[:attempt]",
                          text);
    /* By default a fault strikes the first attempt only, so a retry heals. */
    if (only != attempt) return 0;
    fault.on = 1;
    fault.rank = rank;
    fault.step = step;
    snprintf(fault.action, sizeof fault.action, "%s", action);
    return 0;
}

void guard_fault_point(int rank, int64_t step)
{
    if (!fault.on || rank != fault.rank || step != fault.step) return;
    fprintf(stderr, "weft-worker: rank %d: WEFT_FAULT %s at step %lld\n", rank, fault.action,
            (long long)step);
    fflush(stderr);
    if (!strcmp(fault.action, "kill")) raise(SIGKILL);
    if (!strcmp(fault.action, "exit")) _exit(1);
    if (!strcmp(fault.action, "wait")) { /* until a stop signal: preemption at a known step */
        while (!stop_signal) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        return;
    }
    for (;;) pause();
}
