/* store.h: weftd's durable store: SQLite (WAL) tables of submissions, jobs,
 * runs, attempts, metrics and events, and the job and run life cycles as
 * guarded transitions. The daemon groups the work of one poll round into
 * one transaction (store_begin/store_commit) and acknowledges only after it. */
#ifndef WEFT_STORE_H
#define WEFT_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef enum {
    JOB_PREPARING, /* waiting for its data to be sharded */
    JOB_QUEUED,    /* ready, not in a run */
    JOB_RUNNING,   /* packed into a live run */
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_STOPPED, /* stopped early (ASHA); its adapter kept and published */
    JOB_NSTATES
} job_state_t;

typedef enum {
    RUN_PENDING,  /* created (or to be relaunched), not launched */
    RUN_LAUNCHED, /* process started, no HELLO yet */
    RUN_RUNNING,  /* HELLO received for the current attempt */
    RUN_DONE,
    RUN_FAILED,
    RUN_CANCELLED,
    RUN_NSTATES
} run_state_t;

const char *job_state_name(job_state_t s);
const char *run_state_name(run_state_t s);
/* -1 when name is not a state. */
int job_state_parse(const char *name);
int job_state_final(job_state_t s);

/* What a submission contributes per job (one tenant or one trial). */
typedef struct {
    const char *name;     /* tenant or trial id */
    const char *tenant;   /* owning tenant ("" for a full job) */
    const char *mode;     /* "full" | "lora" */
    const char *pack_key; /* jobs with equal keys may share a run */
    const char *unit;     /* canonical single-job spec text */
    const char *params;   /* JSON object of sweep parameters ("{}" if none) */
    int priority;
    int max_attempts;
    int ranks;     /* MPI ranks the job's run needs */
    int preparing; /* 1: starts PREPARING (its data must be sharded first) */
} store_job_spec_t;

typedef struct {
    int64_t id, submission, run;
    char name[128], tenant[128], mode[8], pack_key[160];
    job_state_t state;
    int priority, max_attempts, ranks;
    double submitted, finished;
    char *unit;   /* malloc'ed; store_job_row_free */
    char *params; /* malloc'ed */
    char *error;  /* malloc'ed, NULL when none */
} store_job_row_t;

typedef struct {
    int64_t id, acked_seq;
    run_state_t state;
    int attempt, max_attempts, ranks;
    char executor_id[64];
    char spec_path[512];
} store_run_row_t;

/* Opens (creating when missing) the store at path: WAL, foreign keys,
 * synchronous=FULL, schema version checked. NULL with weft_error on failure. */
store_t *store_open(const char *path);
void store_destroy(store_t **self_p);

int store_begin(store_t *self);
int store_commit(store_t *self);
void store_rollback(store_t *self);

/* Inserts a submission and its n jobs; returns the submission id (> 0) and
 * the first job id (ids are consecutive), -1 on error. */
int64_t store_submit(store_t *self, const char *name, const char *spec_text, const char *folder,
                     const char *owner, const store_job_spec_t *jobs, size_t n, int64_t *first_job);

int store_job_get(store_t *self, int64_t id, store_job_row_t *row);
void store_job_row_free(store_job_row_t *row);
/* Guarded transition: fails (naming both states) when `to` is not allowed
 * from the job's current state. Records an event. */
int store_job_transition(store_t *self, int64_t id, job_state_t to, const char *detail);
/* Up to max QUEUED jobs, highest priority first, then oldest. */
int store_jobs_queued(store_t *self, size_t max, store_job_row_t **rows, size_t *n);
void store_job_rows_free(store_job_row_t *rows, size_t n);
/* The same, of one pack key only. */
int store_jobs_queued_key(store_t *self, const char *pack_key, size_t max, store_job_row_t **rows,
                          size_t *n);
/* Jobs of a run. */
int store_run_jobs(store_t *self, int64_t run, store_job_row_t **rows, size_t *n);

/* Creates a PENDING run holding the given QUEUED jobs (which become RUNNING). */
int64_t store_run_create(store_t *self, const int64_t *jobs, size_t n, int ranks, int max_attempts);
/* A QUEUED job joins a LAUNCHED or RUNNING run (continuous packing): it
 * becomes RUNNING in it, with a state event that says "admitted". */
int store_run_admit(store_t *self, int64_t run, int64_t job);
/* A RUNNING job admitted into a run whose group ended without taking it
 * goes back to the queue, in no run. */
int store_job_requeue(store_t *self, int64_t job, const char *reason);
/* The run a job was last admitted into while that run trained, 0 when it
 * never was, -1 on an error. */
int64_t store_job_admitted(store_t *self, int64_t job);
int store_run_set_spec(store_t *self, int64_t run, const char *spec_path);
int store_run_get(store_t *self, int64_t run, store_run_row_t *row);
/* PENDING -> LAUNCHED, recording how the executor names it (pid, Slurm id). */
int store_run_launched(store_t *self, int64_t run, const char *executor_id);
/* LAUNCHED|RUNNING -> RUNNING on HELLO from the current attempt; 0 when the
 * attempt is stale (the message must be dropped), 1 when accepted. */
int store_run_hello(store_t *self, int64_t run, int attempt);
/* The run's process is gone without DONE. counts=1: a failure (the attempt
 * counts against max_attempts), counts=0: preempted. Goes back to PENDING as
 * attempt+1, or to FAILED (its live jobs FAILED too) when attempts are used
 * up. Returns the new state or -1. */
int store_run_lost(store_t *self, int64_t run, int counts, const char *reason);
/* A live run ends: DONE, FAILED or CANCELLED. Jobs still RUNNING in it take
 * the matching final state. */
int store_run_finish(store_t *self, int64_t run, run_state_t to, const char *reason);
/* Highest worker sequence number stored from the run's current attempt
 * (never decreases within an attempt; a new attempt starts again at 0). */
int store_run_ack(store_t *self, int64_t run, int64_t seq);
/* Runs in the given state (ids into a malloc'ed array). */
int store_runs_in_state(store_t *self, run_state_t s, int64_t **ids, size_t *n);

/* Stores one metric row (JSON object text) for (job, step, kind) unless it
 * is already there: 1 stored, 0 duplicate, -1 error. Stored rows become
 * events for watchers. kind: "train" or "eval". */
int store_metric_add(store_t *self, int64_t job, int64_t step, const char *kind, const char *json);
/* Validation losses at step `step` of every job of a submission and tenant
 * (the trials of one sweep that reached that rung), malloc'ed into *out. */
int store_rung_losses(store_t *self, int64_t submission, const char *tenant, int64_t step,
                      double **out, size_t *n);
/* 1 when a rung decision stopped the job (a "rung" metric with decision
 * "stop"), 0 when none did, -1 on error. */
int store_job_stop_ordered(store_t *self, int64_t job);
/* The highest early-stopping rung a job reached (-1: none) and whether it
 * was stopped there; the step of its lowest validation loss (-1: none). */
int store_job_rungs(store_t *self, int64_t job, int *rung, int *stopped, int64_t *best_step);
int64_t store_metric_count(store_t *self, int64_t job);

/* What a job's metrics say so far: the lowest val_loss of its eval rows and
 * the first one (step 0: the untrained point), the loss, step and tokens of
 * its last train row, and its published output. */
typedef struct {
    double best_val, first_val, last_loss; /* NAN when not measured */
    int64_t step, tokens;
    char output[1024]; /* where its result was published, "" if not yet */
    char peft[1024];   /* the adapter's PEFT folder beside it, "" if none */
    char published[4096]; /* the output event's JSON (version, promotion), "" if none */
} store_summary_t;
int store_job_summary(store_t *self, int64_t job, store_summary_t *out);
/* Replaces a PREPARING job's unit text (its data now points at shards). */
int store_job_set_unit(store_t *self, int64_t job, const char *unit);

/* Records an event of a job for its watchers (kind: "checkpoint", ...). */
int store_job_event(store_t *self, int64_t job, const char *kind, const char *detail);

/* Calls fn for each event of a job with id > after, in order (id, kind,
 * JSON detail); stops early when fn returns non-zero. */
int store_events(store_t *self, int64_t job, int64_t after,
                 int (*fn)(void *ctx, int64_t id, const char *kind, const char *detail), void *ctx);

/* A page of jobs, newest first: state < 0 for any state, name/submission
 * filters when non-NULL/non-zero, ids below `before` (0: from the newest). */
int store_list(store_t *self, int state, const char *name, int64_t submission, int64_t before,
               size_t limit, store_job_row_t **rows, size_t *n);

#endif
