/* weftd.h: the coordinator's one global state (Redis style): the store, the
 * ROUTER socket, the live runs it follows, the watchers it streams to, and
 * the replies of the current poll round, sent only after its COMMIT. */
#ifndef WEFT_WEFTD_H
#define WEFT_WEFTD_H

#include "scheduler/exec_local.h"
#include "scheduler/exec_slurm.h"
#include "jobs/spec.h"
#include "scheduler/store.h"
#include "common/wire.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

/* A run weftd has launched and follows: its process, its current attempt's
 * message stream and its tenants (job ids by name). */
typedef struct live_run {
    int64_t id;
    int attempt;
    pid_t pid;       /* process group of mpirun (local executor) */
    pid_t session;   /* the session it started, kept after mpirun is reaped */
    char job_id[32]; /* Slurm job id (slurm executor), "" once it has ended */
    int ranks;
    double launched;  /* monotonic seconds */
    double last_seen; /* last message from the current attempt */
    int64_t acked;    /* highest seq stored from the current attempt */
    int hello;        /* HELLO seen from the current attempt */
    int ending;       /* 1 once weftd has asked the group to stop */
    double ending_since;
    int admit_owed; /* the group may not know every member: ADMIT them all (admit_run.c) */
    int njobs;
    int64_t *jobs;
    char **names;
    struct live_run *next;
} live_run_t;

/* A client following a job's events (WATCH). */
typedef struct watcher {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    int64_t job;
    int64_t last;    /* last event id sent */
    int stalled;     /* the last send did not go out */
    int gone;        /* the client is no longer connected */
    char owner[256]; /* the client's role (per-client limit) */
    json_t *req;     /* the WATCH's "req", echoed in each EVENT (owned), or NULL */
    struct watcher *next;
} watcher_t;

/* A reply waiting for the commit of its round. */
typedef struct {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    wire_cmd_t cmd;
    json_t *body;
} reply_t;

typedef struct {
    char home[PATH_MAX];
    char endpoint[600];
    char runs_dir[PATH_MAX];
    char data_dir[PATH_MAX];
    int slots;        /* ranks weftd may run at once */
    int pack_size;    /* tenants training at once in a LoRA run */
    int no_refill;    /* runs of at most pack_size jobs (planner_pack) */
    double liveness;  /* seconds without a message before a run is lost */
    int max_watchers; /* open WATCH streams */
    /* Security (docs/PROTOCOL.md, "Authentication and roles"). */
    struct zap *zap;            /* ZAP handler; NULL without a CURVE endpoint */
    char server_key[41];        /* weftd's public key (Z85), "" without CURVE */
    int max_watch_client;       /* open WATCH streams per client */
    size_t max_json;            /* JSON frame of a message */
    size_t max_spec;            /* spec text of a SUBMIT */
    int max_tenants;            /* tenants per spec */
    int max_trials;             /* trials per sweep */
    char tenants_dir[PATH_MAX]; /* HOME/tenants: each tenant's files, 0700 */
    store_t *store;
    void *zctx, *router;
    exec_local_t *exec;
    exec_slurm_t *slurm; /* the slurm executor; NULL with the local one */
    live_run_t *runs;
    watcher_t *watchers;
    int nwatchers;
    reply_t *replies;
    size_t nreplies, capreplies;
    int64_t rejected[WIRE_REJ_COUNT];
    int64_t handled;
    int64_t stale;       /* worker messages of an old attempt, dropped */
    int64_t disconnects; /* connections closed (by peers, or by ZeroMQ for size) */
    void *mon;           /* PAIR receiving the ROUTER's disconnect events */
    /* The client request being handled: its "req" (borrowed, NULL if none)
     * is echoed in every REPLY or ERROR queued for its sender. */
    json_t *req;
    uint8_t req_rid[WIRE_RID_MAX];
    size_t req_rid_len;
    int lock_fd;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reload; /* SIGHUP: read the clients folder again */
    char clients[4096];           /* that folder (CURVE only) */
} weftd_t;

extern weftd_t server;

/* Monotonic seconds. */
double weftd_now(void);
/* Queues a reply for after the commit of this round (takes body). */
void weftd_reply(const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, json_t *body);
/* A fresh worker key for run's next launch (weftd.c; nothing without CURVE). */
int weftd_worker_key(int64_t run);
/* Queues an ERROR reply {"error": kind, "message": text}. */
void weftd_reply_error(const uint8_t *rid, size_t rid_len, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* admit.c: wire_rx_t.admit of weftd's ROUTER: per-command size limits and
 * each client's budget of large requests, judged before the JSON is read. */
int weftd_admit(void *ctx, const wire_msg_t *m, size_t json_len, char *why, size_t whysize);

/* api.c: client commands. Return 0, or -1 for a store failure (the round is
 * rolled back). */
int api_handle(const wire_msg_t *msg);
/* Sends watchers the events committed since their last one, at most a
 * batch per watcher; returns 1 when some have more waiting. */
int api_watch_cron(void);
void api_watchers_drop_all(void);

/* monitor.c: the live runs and the life of their groups. */
/* Reaps exits, times out silent runs, retries, plans and launches. */
int monitor_cron(void);
/* Rebuilds the live-run table from the store after a restart. */
int monitor_recover(void);
/* A job of a live run was cancelled: tell its group; end the run when none
 * of its jobs is left running. */
int monitor_job_cancelled(int64_t job, int64_t run);
void monitor_free_all(void);
/* The live run of that id, or NULL. */
live_run_t *monitor_find_run(int64_t id);
/* Adds r (calloc'ed and filled in) to the live runs with its jobs; frees it
 * and returns -1 on an error. */
int monitor_follow(live_run_t *r);

/* monitor_msg.c: worker messages, their ACKs, CANCEL to groups. */
int monitor_handle(const wire_msg_t *msg);
/* After a rolled-back round: reload what memory holds ahead of the store. */
void monitor_reload(void);
/* Tells a group to drop these tenants (takes the array; sent after the
 * round's commit). */
void monitor_send_cancel(const live_run_t *r, json_t *tenants);

/* launch.c: relaunches pending runs and plans new ones while slots last. */
int plan_and_launch(void);

/* publish.c: a succeeded or stopped tenant's result, where its spec said.
 * 0 when it is there; -1 with weft_error set when it cannot be (the job
 * fails); -2 when the job's output event could not be stored. */
int publish_result(const live_run_t *r, int64_t job, const char *name, const json_t *done);

/* early_stop.c: ASHA. A trial's new evaluation at one of its rungs is
 * judged and the decision stored; a stop goes to its group as STOP. */
int early_stop_on_eval(const live_run_t *r, int64_t job, const char *name, int64_t step,
                       const json_t *body);
/* A new attempt said HELLO: STOP again the tenants stopped early. */
void early_stop_hello(const live_run_t *r);

/* admit_run.c: continuous packing across submissions (docs/PROTOCOL.md,
 * ADMIT). A job's unit as a run's spec takes it: parsed with relative
 * paths against the run's folder dir, its current version resolved (NULL
 * with weft_error when its stored spec does not parse). */
spec_t *admit_run_unit(int64_t job, const char *dir);
/* Live LoRA runs with free slots take queued jobs of their pack key. */
int admit_run_cron(void);
/* The group may have missed an ADMIT (a restart, a send that failed): it is
 * sent again for every member running, then CANCEL for those cancelled. */
void admit_run_sync(live_run_t *r);
/* The group's DONE (its tenants array): a member it never took is queued
 * again. -1 on a store failure. */
int admit_run_done(const live_run_t *r, const json_t *tenants);
/* After a restart, for a run carried over: its spec file lists no tenant the
 * store does not give it, and an ADMIT is owed. */
int admit_run_recover(live_run_t *r, const char *spec_path);

/* prepare.c: sharding of raw data for PREPARING jobs. */
int prepare_cron(void);
/* A unit's data against its run (plan_check_unit_data, without reading
 * every token): -1 with weft_error when it cannot train. */
int prepare_check_unit(const spec_t *unit);
/* 1 when pid was a preparation child (and is handled), else 0. */
int prepare_reaped(pid_t pid, int code);

#endif
