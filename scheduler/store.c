/* store.c: weftd's SQLite store and the job and run life cycles.
 *
 * Job life cycle (each arrow names the function that performs it):
 *
 *   store_submit --> PREPARING --store_job_transition--> QUEUED
 *   store_submit -----------------------------------------> QUEUED
 *   QUEUED  --store_run_create--> RUNNING --store_run_finish(DONE)--> SUCCEEDED
 *   QUEUED  --store_run_admit--> RUNNING   (joins a run whose group already trains)
 *   RUNNING --store_job_requeue--> QUEUED  (admitted, but its group ended without it)
 *   RUNNING --store_run_lost (attempts left)--> RUNNING (same run, next attempt)
 *   RUNNING --store_run_lost (attempts used up) | store_run_finish(FAILED)--> FAILED
 *   RUNNING --store_job_transition--> SUCCEEDED | FAILED   (a tenant's own DONE/FAIL)
 *   PREPARING|QUEUED|RUNNING --store_job_transition--> CANCELLED | FAILED
 *
 * Run life cycle:
 *
 *   store_run_create --> PENDING --store_run_launched--> LAUNCHED --store_run_hello--> RUNNING
 *   LAUNCHED|RUNNING --store_run_lost--> PENDING (attempt + 1) | FAILED
 *   LAUNCHED|RUNNING --store_run_finish--> DONE | FAILED | CANCELLED
 *   PENDING --store_run_finish--> CANCELLED | FAILED
 *
 * Invariants (tests/scheduler/test_store.c checks each by number):
 *  I1. A run's attempt only grows.
 *  I2. A job in a final state (SUCCEEDED, FAILED, CANCELLED) never leaves it.
 *  I3. A (job, step, kind) metric is stored at most once.
 *  I4. A job is RUNNING exactly when it belongs to a live run.
 *  I5. Event ids only grow; events after n are exactly those committed after n.
 *  I6. A run's acknowledged sequence number never decreases within an attempt.
 * The daemon adds: no ACK or reply before the COMMIT holding its change. */
#include "scheduler/store.h"
#include "common/log.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 1

static const char *schema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS submissions("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, folder TEXT NOT NULL,"
    "  owner TEXT NOT NULL, submitted REAL NOT NULL, njobs INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs("
    "  id INTEGER PRIMARY KEY, state INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    "  max_attempts INTEGER NOT NULL, ranks INTEGER NOT NULL, spec_path TEXT NOT NULL DEFAULT '',"
    "  executor_id TEXT NOT NULL DEFAULT '', acked_seq INTEGER NOT NULL DEFAULT 0,"
    "  created REAL NOT NULL, finished REAL, reason TEXT);"
    "CREATE TABLE IF NOT EXISTS jobs("
    "  id INTEGER PRIMARY KEY, submission INTEGER NOT NULL REFERENCES submissions(id),"
    "  name TEXT NOT NULL, tenant TEXT NOT NULL, mode TEXT NOT NULL, pack_key TEXT NOT NULL,"
    "  unit TEXT NOT NULL, params TEXT NOT NULL, priority INTEGER NOT NULL,"
    "  max_attempts INTEGER NOT NULL, ranks INTEGER NOT NULL, state INTEGER NOT NULL,"
    "  run INTEGER REFERENCES runs(id),"
    "  submitted REAL NOT NULL, finished REAL, error TEXT);"
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);"
    /* LIST by state, newest first: a page is read off this index instead of
     * sorting every job of that state (2 s at 100k queued jobs without it). */
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);"
    "CREATE INDEX IF NOT EXISTS jobs_run ON jobs(run);"
    "CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name, id);"
    "CREATE INDEX IF NOT EXISTS jobs_submission ON jobs(submission, id);"
    "CREATE TABLE IF NOT EXISTS attempts("
    "  run INTEGER NOT NULL REFERENCES runs(id), attempt INTEGER NOT NULL,"
    "  started REAL NOT NULL, ended REAL, reason TEXT, PRIMARY KEY(run, attempt));"
    "CREATE TABLE IF NOT EXISTS metrics("
    "  job INTEGER NOT NULL REFERENCES jobs(id), step INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  data TEXT NOT NULL, PRIMARY KEY(job, step, kind)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, job INTEGER NOT NULL, time REAL NOT NULL,"
    "  kind TEXT NOT NULL, detail TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_job ON events(job, id);";

enum {
    Q_INSERT_SUBMISSION,
    Q_INSERT_JOB,
    Q_INSERT_EVENT,
    Q_INSERT_METRIC,
    Q_JOB_STATE,
    Q_SET_JOB_STATE,
    Q_NQUERIES
};

static const char *queries[Q_NQUERIES] = {
    [Q_INSERT_SUBMISSION] = "INSERT INTO submissions(name, spec, folder, owner, submitted, njobs)"
                            " VALUES(?,?,?,?,?,?)",
    [Q_INSERT_JOB] =
        "INSERT INTO jobs(submission, name, tenant, mode, pack_key, unit, params,"
        " priority, max_attempts, ranks, state, submitted) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
    [Q_INSERT_EVENT] = "INSERT INTO events(job, time, kind, detail) VALUES(?,?,?,?)",
    [Q_INSERT_METRIC] = "INSERT OR IGNORE INTO metrics(job, step, kind, data) VALUES(?,?,?,?)",
    [Q_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?",
    [Q_SET_JOB_STATE] = "UPDATE jobs SET state = ?, finished = ?, error = coalesce(?, error),"
                        " run = CASE WHEN ? THEN run ELSE NULL END WHERE id = ?",
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *q[Q_NQUERIES];
};

static const char *job_names[JOB_NSTATES] = {"preparing", "queued",    "running", "succeeded",
                                             "failed",    "cancelled", "stopped"};
static const char *run_names[RUN_NSTATES] = {"pending", "launched", "running",
                                             "done",    "failed",   "cancelled"};

const char *job_state_name(job_state_t s)
{
    return s < JOB_NSTATES ? job_names[s] : "?";
}

const char *run_state_name(run_state_t s)
{
    return s < RUN_NSTATES ? run_names[s] : "?";
}

int job_state_parse(const char *name)
{
    for (int i = 0; i < JOB_NSTATES; i++)
        if (!strcmp(name, job_names[i])) return i;
    return -1;
}

int job_state_final(job_state_t s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED || s == JOB_STOPPED;
}

static int run_live(run_state_t s)
{
    return s == RUN_PENDING || s == RUN_LAUNCHED || s == RUN_RUNNING;
}

/* Allowed job transitions outside run creation and run endings. */
static int job_may(job_state_t from, job_state_t to)
{
    switch (from) {
    case JOB_PREPARING:
        return to == JOB_QUEUED || to == JOB_FAILED || to == JOB_CANCELLED;
    case JOB_QUEUED:
        return to == JOB_FAILED || to == JOB_CANCELLED;
    case JOB_RUNNING:
        return to == JOB_SUCCEEDED || to == JOB_FAILED || to == JOB_CANCELLED || to == JOB_STOPPED;
    default:
        return 0; /* I2 */
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int db_error(store_t *self, const char *what)
{
    return weft_error("store: %s: %s", what, sqlite3_errmsg(self->db));
}

static int exec(store_t *self, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(self->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        weft_error("store: %s", msg ? msg : sqlite3_errmsg(self->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* A cached statement, reset and cleared, ready to bind. */
static sqlite3_stmt *q(store_t *self, int id)
{
    sqlite3_stmt *s = self->q[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* A one-off statement; NULL with weft_error on failure. */
static sqlite3_stmt *prep(store_t *self, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &s, NULL) != SQLITE_OK) {
        db_error(self, "prepare");
        return NULL;
    }
    return s;
}

store_t *store_open(const char *path)
{
    store_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        weft_error("%s: cannot open the store: %s", path,
                   self->db ? sqlite3_errmsg(self->db) : "out of memory");
        store_destroy(&self);
        return NULL;
    }
    sqlite3_busy_timeout(self->db, 5000);
    if (exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") <
            0 ||
        exec(self, "BEGIN IMMEDIATE") < 0) {
        weft_error_prefix("%s", path);
        store_destroy(&self);
        return NULL;
    }
    int rc = exec(self, schema);
    sqlite3_stmt *s = rc < 0 ? NULL : prep(self, "SELECT value FROM meta WHERE key='schema'");
    if (s && sqlite3_step(s) == SQLITE_ROW) {
        int v = atoi((const char *)sqlite3_column_text(s, 0));
        if (v != SCHEMA_VERSION)
            rc = weft_error("schema version %d, this weftd knows %d: use a matching weftd or a "
                            "new home",
                            v, SCHEMA_VERSION);
    } else if (s) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO meta VALUES('schema','%d')", SCHEMA_VERSION);
        rc = exec(self, sql);
    } else {
        rc = -1;
    }
    sqlite3_finalize(s);
    if (rc == 0) rc = exec(self, "COMMIT");
    for (int i = 0; rc == 0 && i < Q_NQUERIES; i++)
        if (sqlite3_prepare_v3(self->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &self->q[i],
                               NULL) != SQLITE_OK)
            rc = db_error(self, "prepare");
    if (rc < 0) {
        weft_error_prefix("%s", path);
        store_destroy(&self);
        return NULL;
    }
    return self;
}

void store_destroy(store_t **self_p)
{
    store_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < Q_NQUERIES; i++) sqlite3_finalize(self->q[i]);
    sqlite3_close(self->db);
    free(self);
    *self_p = NULL;
}

int store_begin(store_t *self)
{
    return exec(self, "BEGIN IMMEDIATE");
}

int store_commit(store_t *self)
{
    return exec(self, "COMMIT");
}

void store_rollback(store_t *self)
{
    if (!sqlite3_get_autocommit(self->db)) sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
}

static int add_event(store_t *self, int64_t job, const char *kind, const char *detail)
{
    sqlite3_stmt *s = q(self, Q_INSERT_EVENT);
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_double(s, 2, now());
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, detail, -1, SQLITE_STATIC);
    return sqlite3_step(s) == SQLITE_DONE ? 0 : db_error(self, "event");
}

/* Event detail for a state change: {"state":"...","reason":"..."}. */
static int state_event(store_t *self, int64_t job, job_state_t to, const char *reason)
{
    char detail[512];
    char esc[256];
    size_t j = 0;
    for (const char *p = reason ? reason : ""; *p && j + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') esc[j++] = '\\';
        esc[j++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    }
    esc[j] = 0;
    snprintf(detail, sizeof detail, "{\"state\":\"%s\",\"reason\":\"%s\"}", job_state_name(to),
             esc);
    return add_event(self, job, "state", detail);
}

int64_t store_submit(store_t *self, const char *name, const char *spec_text, const char *folder,
                     const char *owner, const store_job_spec_t *jobs, size_t n, int64_t *first_job)
{
    double t = now();
    /* cached: preparing it anew was an eighth of a one-job SUBMIT's time */
    sqlite3_stmt *s = q(self, Q_INSERT_SUBMISSION);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, spec_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, folder, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 5, t);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)n);
    if (sqlite3_step(s) != SQLITE_DONE) return db_error(self, "submission");
    int64_t sub = sqlite3_last_insert_rowid(self->db);
    for (size_t i = 0; i < n; i++) {
        const store_job_spec_t *j = &jobs[i];
        job_state_t st = j->preparing ? JOB_PREPARING : JOB_QUEUED;
        s = q(self, Q_INSERT_JOB);
        sqlite3_bind_int64(s, 1, sub);
        sqlite3_bind_text(s, 2, j->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, j->tenant ? j->tenant : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, j->mode, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, j->pack_key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, j->unit, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, j->params ? j->params : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 8, j->priority);
        sqlite3_bind_int(s, 9, j->max_attempts > 0 ? j->max_attempts : 1);
        sqlite3_bind_int(s, 10, j->ranks > 0 ? j->ranks : 1);
        sqlite3_bind_int(s, 11, st);
        sqlite3_bind_double(s, 12, t);
        if (sqlite3_step(s) != SQLITE_DONE) return db_error(self, "job");
        int64_t id = sqlite3_last_insert_rowid(self->db);
        if (i == 0 && first_job) *first_job = id;
        if (state_event(self, id, st, "submitted") < 0) return -1;
    }
    return sub;
}

static char *dup_col(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

static void copy_col(sqlite3_stmt *s, int col, char *buf, size_t n)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(buf, n, "%s", t ? (const char *)t : "");
}

#define JOB_COLS                                                                                   \
    "id, submission, coalesce(run, 0), name, tenant, mode, pack_key, state, priority,"             \
    " max_attempts, submitted, coalesce(finished, 0), unit, params, error, ranks"

static void read_job(sqlite3_stmt *s, store_job_row_t *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->submission = sqlite3_column_int64(s, 1);
    r->run = sqlite3_column_int64(s, 2);
    copy_col(s, 3, r->name, sizeof r->name);
    copy_col(s, 4, r->tenant, sizeof r->tenant);
    copy_col(s, 5, r->mode, sizeof r->mode);
    copy_col(s, 6, r->pack_key, sizeof r->pack_key);
    r->state = (job_state_t)sqlite3_column_int(s, 7);
    r->priority = sqlite3_column_int(s, 8);
    r->max_attempts = sqlite3_column_int(s, 9);
    r->submitted = sqlite3_column_double(s, 10);
    r->finished = sqlite3_column_double(s, 11);
    r->unit = dup_col(s, 12);
    r->params = dup_col(s, 13);
    r->error = dup_col(s, 14);
    r->ranks = sqlite3_column_int(s, 15);
}

void store_job_row_free(store_job_row_t *row)
{
    free(row->unit);
    free(row->params);
    free(row->error);
    row->unit = row->params = row->error = NULL;
}

void store_job_rows_free(store_job_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) store_job_row_free(&rows[i]);
    free(rows);
}

int store_job_get(store_t *self, int64_t id, store_job_row_t *row)
{
    sqlite3_stmt *s = prep(self, "SELECT " JOB_COLS " FROM jobs WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) read_job(s, row);
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW) return 0;
    return rc == SQLITE_DONE ? weft_error("no job %lld", (long long)id) : db_error(self, "job");
}

/* Runs a prepared job query and collects every row. */
static int collect_jobs(store_t *self, sqlite3_stmt *s, store_job_row_t **rows, size_t *n)
{
    size_t cap = 16, k = 0;
    store_job_row_t *r = malloc(cap * sizeof *r);
    int rc;
    while (r && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            store_job_row_t *g = realloc(r, (cap *= 2) * sizeof *r);
            if (!g) break;
            r = g;
        }
        read_job(s, &r[k++]);
    }
    sqlite3_finalize(s);
    if (!r || rc != SQLITE_DONE) {
        store_job_rows_free(r, k);
        return db_error(self, "query");
    }
    *rows = r;
    *n = k;
    return 0;
}

int store_jobs_queued(store_t *self, size_t max, store_job_row_t **rows, size_t *n)
{
    sqlite3_stmt *s = prep(self, "SELECT " JOB_COLS " FROM jobs WHERE state = ?"
                                 " ORDER BY priority DESC, id LIMIT ?");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, JOB_QUEUED);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    return collect_jobs(self, s, rows, n);
}

int store_jobs_queued_key(store_t *self, const char *pack_key, size_t max, store_job_row_t **rows,
                          size_t *n)
{
    sqlite3_stmt *s = prep(self, "SELECT " JOB_COLS " FROM jobs WHERE state = ? AND pack_key = ?"
                                 " ORDER BY priority DESC, id LIMIT ?");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, JOB_QUEUED);
    sqlite3_bind_text(s, 2, pack_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
    return collect_jobs(self, s, rows, n);
}

int store_run_jobs(store_t *self, int64_t run, store_job_row_t **rows, size_t *n)
{
    sqlite3_stmt *s = prep(self, "SELECT " JOB_COLS " FROM jobs WHERE run = ? ORDER BY id");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, run);
    return collect_jobs(self, s, rows, n);
}

static int job_state(store_t *self, int64_t id)
{
    sqlite3_stmt *s = q(self, Q_JOB_STATE);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return sqlite3_column_int(s, 0);
    return rc == SQLITE_DONE ? weft_error("no job %lld", (long long)id) : db_error(self, "job");
}

/* Sets a job's state (keeping or clearing its run) and records the event. */
static int set_job_state(store_t *self, int64_t id, job_state_t to, int keep_run,
                         const char *reason)
{
    sqlite3_stmt *s = q(self, Q_SET_JOB_STATE);
    sqlite3_bind_int(s, 1, to);
    if (job_state_final(to))
        sqlite3_bind_double(s, 2, now());
    else
        sqlite3_bind_null(s, 2);
    if (reason && (to == JOB_FAILED || to == JOB_CANCELLED))
        sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_int(s, 4, keep_run);
    sqlite3_bind_int64(s, 5, id);
    if (sqlite3_step(s) != SQLITE_DONE) return db_error(self, "job state");
    return state_event(self, id, to, reason);
}

int store_job_transition(store_t *self, int64_t id, job_state_t to, const char *detail)
{
    int from = job_state(self, id);
    if (from < 0) return -1;
    if (!job_may((job_state_t)from, to))
        return weft_error("job %lld cannot go from %s to %s", (long long)id,
                          job_state_name((job_state_t)from), job_state_name(to));
    return set_job_state(self, id, to, to != JOB_QUEUED, detail);
}

static int run_exec(store_t *self, const char *sql, int64_t run)
{
    sqlite3_stmt *s = prep(self, sql);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "run");
}

static int add_attempt(store_t *self, int64_t run, int attempt)
{
    sqlite3_stmt *s = prep(self, "INSERT INTO attempts(run, attempt, started) VALUES(?,?,?)");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, run);
    sqlite3_bind_int(s, 2, attempt);
    sqlite3_bind_double(s, 3, now());
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "attempt");
}

int store_run_admit(store_t *self, int64_t run, int64_t job)
{
    store_run_row_t r;
    if (store_run_get(self, run, &r) < 0) return -1;
    if (r.state != RUN_LAUNCHED && r.state != RUN_RUNNING)
        return weft_error("run %lld is %s; only a launched run admits a job", (long long)run,
                          run_state_name(r.state));
    sqlite3_stmt *u = prep(self, "UPDATE jobs SET state = ?, run = ? WHERE id = ? AND state = ?");
    if (!u) return -1;
    sqlite3_bind_int(u, 1, JOB_RUNNING);
    sqlite3_bind_int64(u, 2, run);
    sqlite3_bind_int64(u, 3, job);
    sqlite3_bind_int(u, 4, JOB_QUEUED);
    int rc = sqlite3_step(u);
    sqlite3_finalize(u);
    if (rc != SQLITE_DONE) return db_error(self, "admit");
    if (sqlite3_changes(self->db) != 1)
        return weft_error("job %lld is not queued; it cannot join run %lld", (long long)job,
                          (long long)run);
    char detail[96];
    snprintf(detail, sizeof detail, "{\"state\":\"running\",\"run\":%lld,\"admitted\":true}",
             (long long)run);
    return add_event(self, job, "state", detail); /* I4: running, in a live run */
}

int store_job_requeue(store_t *self, int64_t job, const char *reason)
{
    int from = job_state(self, job);
    if (from < 0) return -1;
    if (from != JOB_RUNNING)
        return weft_error("job %lld is %s; only a running job goes back to the queue",
                          (long long)job, job_state_name((job_state_t)from));
    return set_job_state(self, job, JOB_QUEUED, 0, reason); /* I4: queued, in no run */
}

int64_t store_job_admitted(store_t *self, int64_t job)
{
    sqlite3_stmt *s = prep(self, "SELECT json_extract(detail, '$.run') FROM events WHERE job = ?"
                                 " AND kind = 'state' AND json_extract(detail, '$.admitted')"
                                 " ORDER BY id DESC LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    int rc = sqlite3_step(s);
    int64_t run = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? run : db_error(self, "events");
}

int64_t store_run_create(store_t *self, const int64_t *jobs, size_t n, int ranks, int max_attempts)
{
    if (n == 0) return weft_error("a run needs at least one job");
    sqlite3_stmt *s = prep(self, "INSERT INTO runs(state, attempt, max_attempts, ranks, created)"
                                 " VALUES(?, 1, ?, ?, ?)");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, RUN_PENDING);
    sqlite3_bind_int(s, 2, max_attempts > 0 ? max_attempts : 1);
    sqlite3_bind_int(s, 3, ranks);
    sqlite3_bind_double(s, 4, now());
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db_error(self, "run");
    int64_t run = sqlite3_last_insert_rowid(self->db);
    if (add_attempt(self, run, 1) < 0) return -1;
    sqlite3_stmt *u = prep(self, "UPDATE jobs SET state = ?, run = ? WHERE id = ? AND state = ?");
    if (!u) return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(u);
        sqlite3_bind_int(u, 1, JOB_RUNNING);
        sqlite3_bind_int64(u, 2, run);
        sqlite3_bind_int64(u, 3, jobs[i]);
        sqlite3_bind_int(u, 4, JOB_QUEUED);
        if (sqlite3_step(u) != SQLITE_DONE) {
            sqlite3_finalize(u);
            return db_error(self, "pack");
        }
        if (sqlite3_changes(self->db) != 1) {
            sqlite3_finalize(u);
            return weft_error("job %lld is not queued; it cannot join run %lld", (long long)jobs[i],
                              (long long)run);
        }
        char detail[64];
        snprintf(detail, sizeof detail, "{\"state\":\"running\",\"run\":%lld}", (long long)run);
        if (add_event(self, jobs[i], "state", detail) < 0) {
            sqlite3_finalize(u);
            return -1;
        }
    }
    sqlite3_finalize(u);
    return run;
}

int store_run_get(store_t *self, int64_t run, store_run_row_t *row)
{
    sqlite3_stmt *s = prep(self, "SELECT id, state, attempt, max_attempts, ranks, executor_id,"
                                 " spec_path, acked_seq FROM runs WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, run);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(row, 0, sizeof *row);
        row->id = sqlite3_column_int64(s, 0);
        row->state = (run_state_t)sqlite3_column_int(s, 1);
        row->attempt = sqlite3_column_int(s, 2);
        row->max_attempts = sqlite3_column_int(s, 3);
        row->ranks = sqlite3_column_int(s, 4);
        copy_col(s, 5, row->executor_id, sizeof row->executor_id);
        copy_col(s, 6, row->spec_path, sizeof row->spec_path);
        row->acked_seq = sqlite3_column_int64(s, 7);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW) return 0;
    return rc == SQLITE_DONE ? weft_error("no run %lld", (long long)run) : db_error(self, "run");
}

int store_run_set_spec(store_t *self, int64_t run, const char *spec_path)
{
    sqlite3_stmt *s = prep(self, "UPDATE runs SET spec_path = ? WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_text(s, 1, spec_path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "run");
}

int store_run_launched(store_t *self, int64_t run, const char *executor_id)
{
    store_run_row_t r;
    if (store_run_get(self, run, &r) < 0) return -1;
    if (r.state != RUN_PENDING)
        return weft_error("run %lld is %s, not pending; it cannot be launched", (long long)run,
                          run_state_name(r.state));
    sqlite3_stmt *s = prep(self, "UPDATE runs SET state = ?, executor_id = ? WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, RUN_LAUNCHED);
    sqlite3_bind_text(s, 2, executor_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "run");
}

int store_run_hello(store_t *self, int64_t run, int attempt)
{
    store_run_row_t r;
    if (store_run_get(self, run, &r) < 0) return -1;
    if (attempt != r.attempt || (r.state != RUN_LAUNCHED && r.state != RUN_RUNNING)) return 0;
    if (r.state == RUN_RUNNING) return 1;
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE runs SET state = %d WHERE id = ?", RUN_RUNNING);
    return run_exec(self, sql, run) < 0 ? -1 : 1;
}

static int end_attempt(store_t *self, int64_t run, int attempt, const char *reason)
{
    sqlite3_stmt *s = prep(self, "UPDATE attempts SET ended = ?, reason = ? WHERE run = ? AND"
                                 " attempt = ? AND ended IS NULL");
    if (!s) return -1;
    sqlite3_bind_double(s, 1, now());
    sqlite3_bind_text(s, 2, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, run);
    sqlite3_bind_int(s, 4, attempt);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "attempt");
}

int store_run_lost(store_t *self, int64_t run, int counts, const char *reason)
{
    store_run_row_t r;
    if (store_run_get(self, run, &r) < 0) return -1;
    if (r.state != RUN_LAUNCHED && r.state != RUN_RUNNING)
        return weft_error("run %lld is %s; only a launched run can be lost", (long long)run,
                          run_state_name(r.state));
    /* A preempted attempt is recorded as such and does not count. */
    char why[256];
    snprintf(why, sizeof why, "%s%.200s", counts ? "" : "preempted: ", reason ? reason : "");
    if (end_attempt(self, run, r.attempt, why) < 0) return -1;
    sqlite3_stmt *s = prep(self, "SELECT count(*) FROM attempts WHERE run = ? AND ended IS NOT"
                                 " NULL AND reason NOT LIKE 'preempted: %'");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, run);
    int used = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    if (used < 0) return db_error(self, "attempts");
    if (counts && used >= r.max_attempts)
        return store_run_finish(self, run, RUN_FAILED, why) < 0 ? -1 : RUN_FAILED;
    s = prep(self, "UPDATE runs SET state = ?, attempt = attempt + 1, executor_id = '',"
                   " acked_seq = 0 WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, RUN_PENDING);
    sqlite3_bind_int64(s, 2, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db_error(self, "run");
    return add_attempt(self, run, r.attempt + 1) < 0 ? -1 : RUN_PENDING; /* I1 */
}

int store_run_finish(store_t *self, int64_t run, run_state_t to, const char *reason)
{
    if (to != RUN_DONE && to != RUN_FAILED && to != RUN_CANCELLED)
        return weft_error("a run can only finish as done, failed or cancelled");
    store_run_row_t r;
    if (store_run_get(self, run, &r) < 0) return -1;
    if (!run_live(r.state))
        return weft_error("run %lld has already ended (%s)", (long long)run,
                          run_state_name(r.state));
    if (to == RUN_DONE && r.state == RUN_PENDING)
        return weft_error("run %lld never launched; it cannot be done", (long long)run);
    if (end_attempt(self, run, r.attempt, reason) < 0) return -1;
    sqlite3_stmt *s =
        prep(self, "UPDATE runs SET state = ?, finished = ?, reason = ? WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, to);
    sqlite3_bind_double(s, 2, now());
    sqlite3_bind_text(s, 3, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db_error(self, "run");
    job_state_t js = to == RUN_DONE ? JOB_SUCCEEDED : to == RUN_FAILED ? JOB_FAILED : JOB_CANCELLED;
    store_job_row_t *jobs;
    size_t n;
    if (store_run_jobs(self, run, &jobs, &n) < 0) return -1;
    int out = 0;
    for (size_t i = 0; i < n && out == 0; i++)
        if (jobs[i].state == JOB_RUNNING) out = set_job_state(self, jobs[i].id, js, 1, reason);
    store_job_rows_free(jobs, n);
    return out;
}

int store_run_ack(store_t *self, int64_t run, int64_t seq)
{
    sqlite3_stmt *s = prep(self, "UPDATE runs SET acked_seq = max(acked_seq, ?) WHERE id = ?");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int64(s, 2, run);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "ack"); /* I6 */
}

int store_runs_in_state(store_t *self, run_state_t st, int64_t **ids, size_t *n)
{
    sqlite3_stmt *s = prep(self, "SELECT id FROM runs WHERE state = ? ORDER BY id");
    if (!s) return -1;
    sqlite3_bind_int(s, 1, st);
    size_t cap = 8, k = 0;
    int64_t *v = malloc(cap * sizeof *v);
    int rc;
    while (v && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            int64_t *g = realloc(v, (cap *= 2) * sizeof *v);
            if (!g) break;
            v = g;
        }
        v[k++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    if (!v || rc != SQLITE_DONE) {
        free(v);
        return db_error(self, "runs");
    }
    *ids = v;
    *n = k;
    return 0;
}

int store_metric_add(store_t *self, int64_t job, int64_t step, const char *kind, const char *json)
{
    sqlite3_stmt *s = q(self, Q_INSERT_METRIC);
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_int64(s, 2, step);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, json, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) return db_error(self, "metric");
    if (sqlite3_changes(self->db) == 0) return 0; /* I3 */
    return add_event(self, job, kind, json) < 0 ? -1 : 1;
}

int store_rung_losses(store_t *self, int64_t submission, const char *tenant, int64_t step,
                      double **out, size_t *n)
{
    *out = NULL, *n = 0;
    sqlite3_stmt *s = prep(self, "SELECT json_extract(m.data, '$.val_loss') FROM metrics m"
                                 " JOIN jobs j ON j.id = m.job WHERE j.submission = ?"
                                 " AND j.tenant = ? AND m.kind = 'eval' AND m.step = ?");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, submission);
    sqlite3_bind_text(s, 2, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, step);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_type(s, 0) == SQLITE_NULL) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            double *grown = realloc(*out, cap * sizeof *grown);
            if (!grown) {
                sqlite3_finalize(s);
                return weft_error("out of memory");
            }
            *out = grown;
        }
        (*out)[(*n)++] = sqlite3_column_double(s, 0);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : db_error(self, "rung");
}

int store_job_stop_ordered(store_t *self, int64_t job)
{
    sqlite3_stmt *s = prep(self, "SELECT count(*) FROM metrics WHERE job = ? AND kind = 'rung'"
                                 " AND json_extract(data, '$.decision') = 'stop'");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    int rc = sqlite3_step(s);
    int n = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    return n < 0 ? db_error(self, "rung") : n > 0;
}

int store_job_rungs(store_t *self, int64_t job, int *rung, int *stopped, int64_t *best_step)
{
    *rung = -1, *stopped = 0, *best_step = -1;
    sqlite3_stmt *s = prep(self, "SELECT json_extract(data, '$.rung'),"
                                 " json_extract(data, '$.decision') = 'stop' FROM metrics"
                                 " WHERE job = ? AND kind = 'rung' ORDER BY step DESC LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *rung = sqlite3_column_int(s, 0), *stopped = sqlite3_column_int(s, 1);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(self, "rung");
    s = prep(self, "SELECT step FROM metrics WHERE job = ? AND kind = 'eval' AND"
                   " json_extract(data, '$.val_loss') IS NOT NULL"
                   " ORDER BY json_extract(data, '$.val_loss'), step LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *best_step = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(self, "rung");
}

int64_t store_metric_count(store_t *self, int64_t job)
{
    sqlite3_stmt *s = prep(self, "SELECT count(*) FROM metrics WHERE job = ?");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return n;
}

int store_events(store_t *self, int64_t job, int64_t after,
                 int (*fn)(void *ctx, int64_t id, const char *kind, const char *detail), void *ctx)
{
    sqlite3_stmt *s =
        prep(self, "SELECT id, kind, detail FROM events WHERE job = ? AND id > ? ORDER BY id");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_int64(s, 2, after);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
               (const char *)sqlite3_column_text(s, 2)))
            break;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(self, "events");
}

int store_list(store_t *self, int state, const char *name, int64_t submission, int64_t before,
               size_t limit, store_job_row_t **rows, size_t *n)
{
    char sql[512] = "SELECT " JOB_COLS " FROM jobs WHERE id < ?1";
    if (state >= 0) strcat(sql, " AND state = ?2");
    if (name) strcat(sql, " AND name = ?3");
    if (submission > 0) strcat(sql, " AND submission = ?4");
    strcat(sql, " ORDER BY id DESC LIMIT ?5");
    sqlite3_stmt *s = prep(self, sql);
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, before > 0 ? before : INT64_MAX);
    if (state >= 0) sqlite3_bind_int(s, 2, state);
    if (name) sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    if (submission > 0) sqlite3_bind_int64(s, 4, submission);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)limit);
    return collect_jobs(self, s, rows, n);
}

int store_job_summary(store_t *self, int64_t job, store_summary_t *out)
{
    out->best_val = out->first_val = NAN;
    out->last_loss = NAN;
    out->step = out->tokens = 0;
    out->output[0] = out->peft[0] = out->published[0] = 0;
    sqlite3_stmt *s = prep(self, "SELECT min(json_extract(data, '$.val_loss')) FROM metrics"
                                 " WHERE job = ? AND kind = 'eval'");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        out->best_val = sqlite3_column_double(s, 0);
    sqlite3_finalize(s);
    s = prep(self, "SELECT json_extract(data, '$.val_loss') FROM metrics WHERE job = ? AND"
                   " kind = 'eval' ORDER BY step LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        out->first_val = sqlite3_column_double(s, 0);
    sqlite3_finalize(s);
    s = prep(self, "SELECT json_extract(detail, '$.output'), json_extract(detail, '$.peft'),"
                   " detail FROM events WHERE job = ? AND kind = 'output' ORDER BY id DESC LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    if (sqlite3_step(s) == SQLITE_ROW) {
        copy_col(s, 0, out->output, sizeof out->output);
        copy_col(s, 1, out->peft, sizeof out->peft);
        copy_col(s, 2, out->published, sizeof out->published);
    }
    sqlite3_finalize(s);
    s = prep(self, "SELECT step, json_extract(data, '$.loss'), json_extract(data, '$.tokens')"
                   " FROM metrics WHERE job = ? AND kind = 'train' ORDER BY step DESC LIMIT 1");
    if (!s) return -1;
    sqlite3_bind_int64(s, 1, job);
    if (sqlite3_step(s) == SQLITE_ROW) {
        out->step = sqlite3_column_int64(s, 0);
        if (sqlite3_column_type(s, 1) != SQLITE_NULL) out->last_loss = sqlite3_column_double(s, 1);
        out->tokens = sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    return 0;
}

int store_job_set_unit(store_t *self, int64_t job, const char *unit)
{
    sqlite3_stmt *s = prep(self, "UPDATE jobs SET unit = ? WHERE id = ? AND state = ?");
    if (!s) return -1;
    sqlite3_bind_text(s, 1, unit, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, job);
    sqlite3_bind_int(s, 3, JOB_PREPARING);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db_error(self, "job unit");
    return sqlite3_changes(self->db) == 1
               ? 0
               : weft_error("job %lld is not preparing; its spec is fixed", (long long)job);
}

int store_job_event(store_t *self, int64_t job, const char *kind, const char *detail)
{
    return add_event(self, job, kind, detail);
}
