/* exec_local.h: the local executor. Launches a run's worker group as
 * `mpirun -np R weft-worker RUN.cfg --endpoint EP --run ID --attempt N` in
 * its own process group with output to a per-attempt log, reaps it, and
 * kills the whole group when asked. */
#ifndef WEFT_EXEC_LOCAL_H
#define WEFT_EXEC_LOCAL_H

#include <stdint.h>
#include <sys/types.h>

typedef struct exec_local exec_local_t;

/* mpirun and worker: paths of the programs (NULL: mpirun from PATH, and
 * weft-worker beside the running program, else from PATH). */
exec_local_t *exec_local_new(const char *mpirun, const char *worker, const char *endpoint);
void exec_local_destroy(exec_local_t **self_p);

/* Starts the group; fills pid (also its process-group id). */
int exec_local_launch(exec_local_t *self, int64_t run, int attempt, int ranks, int threads,
                      const char *spec_path, const char *log_path, pid_t *pid);
/* In a child before exec: every signal back to its default action and none
 * blocked (weftd's handlers and its ignored SIGPIPE must not carry over). */
void exec_local_child_signals(void);
/* Reaps one ended child without blocking: 1 and pid/exit code (128+signal
 * for a signal) when one ended, 0 when none did. */
int exec_local_reap(pid_t *pid, int *exit_code);
/* Reaps one given child if it has ended: 1 and its exit code, 0 while it
 * runs or when it is not our child. */
int exec_local_reap_pid(pid_t pid, int *exit_code);
/* Signals the whole process group of a launched run. */
int exec_local_signal(pid_t pid, int sig);
/* 1 while a process (our child or one from before a restart) still exists. */
int exec_local_alive(pid_t pid);
/* 1 when pid has ended, with *exit_code its code when it was our child
 * (reaped here, so a group that exits between two checks keeps its code)
 * or -1 when it was not (a group carried over from before a restart);
 * 0 while it runs. */
int exec_local_ended(pid_t pid, int *exit_code);

/* GPUs (weftd --gpus 0,1,...): the device ids this executor hands out to
 * the runs it launches, each to one run at a time. "" or NULL: none (GPUs are
 * then not managed: a run sees every GPU). -1 and one line on a bad list. */
int exec_local_set_gpus(exec_local_t *self, const char *list);
int exec_local_gpus_total(const exec_local_t *self);
int exec_local_gpus_free(const exec_local_t *self);
/* As exec_local_launch, holding ngpus GPUs of the pool for run `run` (the
 * lowest free ids); the group's CUDA_VISIBLE_DEVICES lists them, and so does
 * *gpus (e.g. "0,2"; "" when ngpus is 0). Returns 1 without launching while
 * fewer are free, -1 and an error when the pool is smaller than ngpus. */
int exec_local_launch_gpus(exec_local_t *self, int64_t run, int attempt, int ranks, int threads,
                           int ngpus, const char *spec_path, const char *log_path, pid_t *pid,
                           char *gpus, size_t gsize);
/* The GPUs held by run go back to the pool (its group ended). */
void exec_local_release_gpus(exec_local_t *self, int64_t run);
/* After a restart: run holds the GPUs of list (as its launch gave them);
 * ids outside the pool are ignored. */
void exec_local_claim_gpus(exec_local_t *self, int64_t run, const char *list);

#endif
