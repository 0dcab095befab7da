/* exec_slurm.h: the Slurm executor. Submits a run's worker group as a batch
 * job (scripts/weft.sbatch, built into the program) with `sbatch --parsable`
 * and follows it with `scontrol show job` (no accounting daemon needed);
 * `scancel` ends it. Also the small helpers `weft sbatch` shares with it. */
#ifndef WEFT_EXEC_SLURM_H
#define WEFT_EXEC_SLURM_H

#include <stddef.h>
#include <stdint.h>

typedef struct exec_slurm exec_slurm_t;

/* What Slurm says of a job. */
typedef enum {
    EXEC_SLURM_WAITING = 0, /* PENDING, CONFIGURING, REQUEUED, PREEMPTED, ...: not started */
    EXEC_SLURM_RUNNING,     /* RUNNING, COMPLETING, SUSPENDED, ...: not finished */
    EXEC_SLURM_ENDED,       /* a final state; the exit code is known */
    EXEC_SLURM_GONE,        /* Slurm no longer knows the job */
    EXEC_SLURM_UNKNOWN      /* Slurm did not answer: assume nothing */
} exec_slurm_state_t;

/* worker: weft-worker's path (NULL: beside this program, else PATH); the
 * batch script is written to <home>/weft.sbatch. Checks that sbatch runs. */
exec_slurm_t *exec_slurm_new(const char *worker, const char *endpoint, const char *home);
void exec_slurm_destroy(exec_slurm_t **self_p);

/* Submits the group (`weft.sbatch --no-requeue SPEC --endpoint EP --run ID
 * --attempt N`, R tasks of T cpus, with gpus > 0 one GPU per task
 * (--gpus-per-task=1), output appended to log_path); fills the Slurm job id.
 * Partition, account and time come from SBATCH_* variables. */
int exec_slurm_launch(exec_slurm_t *self, int64_t run, int attempt, int ranks, int threads,
                      int gpus, const char *spec_path, const char *log_path, char *job_id,
                      size_t idsize);
/* Refreshes the view of every job (one `scontrol show job -o`) when the last
 * one is older than a second; then looks job_id up in it. For an ended job
 * exit_code is its code (128+signal when killed). */
exec_slurm_state_t exec_slurm_state(exec_slurm_t *self, const char *job_id, int *exit_code);
/* scancel of a job (quietly nothing when it is already gone). */
int exec_slurm_cancel(exec_slurm_t *self, const char *job_id);

/* Helpers. */
/* Writes the batch script (mode 0755) to path. */
int exec_slurm_script_write(const char *path);
/* Finds a program beside the running one, else in PATH; 0 and its path. */
int exec_slurm_find_program(const char *name, char *out, size_t outsize);
/* Runs argv[0] (from PATH) with stdin from /dev/null, its stdout into out
 * (NUL-terminated, cut to outsize) and stderr into err when err is not NULL.
 * Returns its exit code (128+signal), or -1 when it could not run. */
int exec_slurm_command(char *const argv[], char *out, size_t outsize, char *err, size_t errsize);

#endif
