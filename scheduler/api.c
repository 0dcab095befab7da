/* api.c: weftd's client commands: SUBMIT, STATUS, LIST, CANCEL, WATCH,
 * RESULTS. Each runs inside the round's transaction and queues its reply,
 * which leaves only after the commit (see weftd.c). */
#include "common/auth.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/plan.h"
#include "scheduler/planner.h"
#include "common/sha256.h"
#include "jobs/spec.h"
#include "scheduler/weftd.h"
#include "scheduler/zap.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define LIST_DEFAULT 50
#define LIST_MAX     1000
/* Bounds on the work of one request (docs/PROTOCOL.md, Limits). */
#define LIST_SCAN   10000 /* jobs a LIST looks at before it returns a page */
#define CANCEL_MAX  1000  /* ids in one CANCEL */
#define REQ_MAX     256   /* bytes of a request's "req", as compact JSON */
#define FILE_MAX    255   /* bytes of SUBMIT's "file" */
#define WATCH_BATCH 500   /* events sent to one watcher per pass of the loop */

/* The backbone's content hash and architecture, cached by path, size and
 * mtime. */
static struct {
    char path[SPEC_PATH_MAX];
    off_t size;
    struct timespec mtime;
    char hex[65], arch[8];
} backbone_cache;

static int backbone_hash(const char *path, char hex[65], char arch[8])
{
    struct stat st;
    if (stat(path, &st) < 0)
        return weft_error("model %s does not exist; make or copy it before submitting", path);
    if (!strcmp(backbone_cache.path, path) && backbone_cache.size == st.st_size &&
        backbone_cache.mtime.tv_sec == st.st_mtim.tv_sec &&
        backbone_cache.mtime.tv_nsec == st.st_mtim.tv_nsec) {
        memcpy(hex, backbone_cache.hex, 65);
        memcpy(arch, backbone_cache.arch, 8);
        return 0;
    }
    /* a file that is no weft-model is the worker's to report, by name */
    plan_model_t m;
    int known = plan_model_read(path, &m) == 0;
    if (weft_sha256_file(path, hex) < 0) return -1;
    snprintf(arch, 8, "%s", !known ? "unknown" : m.cfg.arch == ARCH_LLAMA ? "llama" : "gpt2");
    snprintf(backbone_cache.path, sizeof backbone_cache.path, "%s", path);
    backbone_cache.size = st.st_size;
    backbone_cache.mtime = st.st_mtim;
    memcpy(backbone_cache.hex, hex, 65);
    memcpy(backbone_cache.arch, arch, 8);
    return 0;
}

static json_t *job_json(const store_job_row_t *r)
{
    json_t *params = json_loads(r->params ? r->params : "{}", 0, NULL);
    json_t *j = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:f, s:o}", "id", (json_int_t)r->id, "name",
        r->name, "tenant", r->tenant, "mode", r->mode, "state", job_state_name(r->state),
        "submission", (json_int_t)r->submission, "run", (json_int_t)r->run, "priority", r->priority,
        "submitted", r->submitted, "params", params ? params : json_object());
    if (r->finished > 0) json_object_set_new(j, "finished", json_real(r->finished));
    if (r->error) json_object_set_new(j, "error", json_string(r->error));
    return j;
}

static void add_summary(json_t *j, int64_t job)
{
    store_summary_t s;
    if (store_job_summary(server.store, job, &s) < 0) return;
    json_object_set_new(j, "step", json_integer(s.step));
    json_object_set_new(j, "tokens", json_integer(s.tokens));
    json_object_set_new(j, "loss", isnan(s.last_loss) ? json_null() : json_real(s.last_loss));
    json_object_set_new(j, "best_val_loss",
                        isnan(s.best_val) ? json_null() : json_real(s.best_val));
    json_object_set_new(j, "first_val_loss",
                        isnan(s.first_val) ? json_null() : json_real(s.first_val));
    if (s.output[0]) json_object_set_new(j, "output", json_string(s.output));
    int rung, stopped;
    int64_t best_step;
    if (store_job_rungs(server.store, job, &rung, &stopped, &best_step) == 0) {
        if (best_step >= 0) json_object_set_new(j, "best_val_step", json_integer(best_step));
        if (rung >= 0) {
            json_object_set_new(j, "rung", json_integer(rung));
            json_object_set_new(j, "stopped_at_rung", json_boolean(stopped));
        }
    }
    if (s.peft[0]) json_object_set_new(j, "peft", json_string(s.peft));
    /* A LoRA job's version: its number, the new and the current version's
     * validation loss on this run's data, and whether it was promoted. */
    json_t *d = s.published[0] ? json_loads(s.published, 0, NULL) : NULL;
    if (json_object_get(d, "best_step"))
        json_object_set(j, "best_step", json_object_get(d, "best_step"));
    if (json_object_get(d, "version")) {
        json_t *v = json_object();
        const char *keys[] = {"version", "promoted", "val_loss", "baseline_val_loss",
                              "best_step", "current", "why"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            if (json_object_get(d, keys[i]))
                json_object_set(v, keys[i], json_object_get(d, keys[i]));
        json_object_set_new(j, "published", v);
    }
    json_decref(d);
}

/* Roles (docs/PROTOCOL.md): the ZAP User-Id of the sender's connection;
 * the ipc socket and --insecure-tcp have none and are admin. */
static const char *owner_of(const wire_msg_t *m)
{
    return m->user_id[0] ? m->user_id : "admin";
}

static int is_admin(const wire_msg_t *m)
{
    return !strcmp(owner_of(m), "admin");
}

/* May the sender see and act on this job? Admin: any; tenant:NAME: the jobs
 * of tenant NAME. */
static int may_see(const wire_msg_t *m, const store_job_row_t *r)
{
    const char *t = auth_role_tenant(owner_of(m));
    return is_admin(m) || (t && !strcmp(r->tenant, t));
}

/* Is path inside root (or root itself), by its words and, for the part that
 * exists, by its real path (a symlink may not lead out)? */
static int path_inside(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strncmp(path, root, n) || (path[n] && path[n] != '/')) return 0;
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/')) return 0;
    char probe[PATH_MAX], real[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", path);
    while (!realpath(probe, real)) {
        if (errno != ENOENT) return 0;
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe) return 0;
        *slash = 0;
    }
    char rroot[PATH_MAX];
    if (!realpath(root, rroot)) return 0;
    n = strlen(rroot);
    return !strncmp(real, rroot, n) && (real[n] == 0 || real[n] == '/');
}

/* What a tenant key may submit: LoRA jobs of its own tenant only, with every
 * file it names inside its folder HOME/tenants/NAME (the model excepted:
 * backbones are shared and only read). Replies and returns -1 when not. */
static int tenant_may_submit(const wire_msg_t *m, const spec_t *spec, const char *tenant,
                             const char *root)
{
    const char *bad = NULL, *what = "";
    if (spec->mode != SPEC_LORA) {
        weftd_reply_error(m->rid, m->rid_len, "permission",
                          "tenant %s may submit only lora jobs (mode = \"lora\")", tenant);
        return -1;
    }
    for (int i = 0; i < spec->ntenants; i++) {
        const spec_tenant_t *t = &spec->tenants[i];
        if (strcmp(t->name, tenant)) {
            weftd_reply_error(m->rid, m->rid_len, "permission",
                              "tenant %s may submit jobs only for itself, not for tenant \"%s\"",
                              tenant, t->name);
            return -1;
        }
        if (!bad && !path_inside(t->data, root)) {
            bad = "data";
            what = t->data;
        } else if (!bad && t->init_adapter[0] && !path_inside(t->init_adapter, root)) {
            bad = "init_adapter";
            what = t->init_adapter;
        } else if (!bad && t->baseline[0] && !path_inside(t->baseline, root)) {
            bad = "baseline";
            what = t->baseline;
        }
    }
    if (!bad && !path_inside(spec->output, root)) {
        bad = "output";
        what = spec->output;
    }
    if (bad) {
        weftd_reply_error(m->rid, m->rid_len, "permission",
                          "%s %s is outside tenant %s's folder %s (no '..', no symlinks out); "
                          "use a path inside it, or a relative one",
                          bad, what, tenant, root);
        return -1;
    }
    return 0;
}

static int submit(const wire_msg_t *m)
{
    const char *text = wire_get_str(m->body, "spec");
    const char *folder = wire_get_str(m->body, "folder");
    const char *file = wire_get_str(m->body, "file");
    json_t *pj = json_object_get(m->body, "priority");
    if (!text || !folder) {
        weftd_reply_error(m->rid, m->rid_len, "field",
                          "SUBMIT needs \"spec\" (the text) and \"folder\" (its folder)");
        return 0;
    }
    if (pj && !json_is_integer(pj)) {
        weftd_reply_error(m->rid, m->rid_len, "field", "\"priority\" must be an integer");
        return 0;
    }
    if (strlen(folder) >= PATH_MAX || (file && strlen(file) > FILE_MAX)) {
        weftd_reply_error(m->rid, m->rid_len, "field",
                          "\"folder\" must be a path under %d bytes and \"file\" a name of at "
                          "most %d bytes",
                          PATH_MAX, FILE_MAX);
        return 0;
    }
    int priority = pj ? (int)json_integer_value(pj) : 0;
    /* A tenant's relative paths start in its own folder, made 0700. */
    const char *tenant = auth_role_tenant(owner_of(m));
    char root[PATH_MAX];
    if (tenant) {
        if (weft_path_join(root, sizeof root, server.tenants_dir, tenant) < 0 ||
            weft_mkdir_p(root, 0700) < 0 || chmod(root, 0700) < 0) {
            weftd_reply_error(m->rid, m->rid_len, "store", "tenant folder: %s", weft_last_error());
            return 0;
        }
        folder = root;
        if (priority > 0) { /* the queue is shared: only an admin puts jobs ahead */
            weftd_reply_error(m->rid, m->rid_len, "permission",
                              "tenant %s may not raise a job's priority above 0", tenant);
            return 0;
        }
    }
    spec_limits_t lim = spec_limits_default();
    lim.max_spec_bytes = server.max_spec;
    lim.max_tenants = server.max_tenants;
    lim.max_trials = server.max_trials;
    spec_diag_t *diag = spec_diag_new();
    spec_t *spec = spec_parse(text, strlen(text), folder, file ? file : "job.cfg", &lim, diag);
    spec_unit_t *units = NULL;
    int n = 0;
    if (spec && tenant && tenant_may_submit(m, spec, tenant, root) < 0) {
        spec_diag_destroy(&diag);
        spec_destroy(&spec);
        return 0;
    }
    if (spec && spec_expand(spec, &lim, &units, &n, diag) < 0) n = -1;
    if (!spec || n < 0) {
        json_t *problems = json_array();
        for (int i = 0; i < spec_diag_count(diag); i++)
            json_array_append_new(problems, json_string(spec_diag_get(diag, i)));
        json_t *e = json_pack("{s:s, s:s, s:o}", "error", "spec", "message", weft_last_error(),
                              "problems", problems);
        weftd_reply(m->rid, m->rid_len, WIRE_ERROR, e);
        spec_diag_destroy(&diag);
        spec_destroy(&spec);
        return 0;
    }
    spec_diag_destroy(&diag);
    char backbone[65] = "", arch[8] = "";
    if (spec->mode == SPEC_LORA && backbone_hash(spec->model, backbone, arch) < 0) {
        weftd_reply_error(m->rid, m->rid_len, "spec", "%s", weft_last_error());
        spec_units_destroy(&units, n);
        spec_destroy(&spec);
        return 0;
    }
    store_job_spec_t *js = calloc((size_t)n, sizeof *js);
    char **texts = calloc((size_t)n, sizeof *texts);
    char(*keys)[160] = calloc((size_t)n, sizeof *keys);
    char **params = calloc((size_t)n, sizeof *params);
    int rc = js && texts && keys && params ? 0 : weft_error("out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        const spec_unit_t *u = &units[i];
        const spec_t *us = u->spec;
        if (us->mode == SPEC_LORA) {
            planner_pack_key(us, arch, backbone, keys[i]);
        } else {
            char pk[65];
            spec_pack_key(us, pk);
            snprintf(keys[i], sizeof keys[i], "full:%.64s", pk);
        }
        texts[i] = spec_write(us);
        json_t *pobj = json_object();
        for (int k = 0; k < u->nparams; k++)
            json_object_set_new(pobj, u->param_key[k], json_string(u->param_value[k]));
        params[i] = json_dumps(pobj, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(pobj);
        spec_data_kind_t kind = us->tenants[0].data_kind;
        js[i] = (store_job_spec_t){.name = u->name,
                                   .tenant = u->tenant,
                                   .mode = spec_mode_name(us->mode),
                                   .pack_key = keys[i],
                                   .unit = texts[i],
                                   .params = params[i],
                                   .priority = priority,
                                   .max_attempts = us->train.max_attempts,
                                   .ranks = us->resources.ranks,
                                   .preparing = kind != SPEC_DATA_SHARDS};
        if (!texts[i] || !params[i]) rc = weft_error("out of memory");
        /* what `weft validate` refuses is refused here, before any packing */
        if (rc == 0 && prepare_check_unit(us) < 0) weft_error_prefix("%s", u->name), rc = -1;
        if (us->resources.ranks > server.slots)
            rc = weft_error("%s needs %d ranks but this weftd runs at most %d (--slots)", u->name,
                            us->resources.ranks, server.slots);
    }
    int64_t first = 0, sub = -1;
    if (rc == 0)
        sub = store_submit(server.store, spec->name, text, folder, owner_of(m), js, (size_t)n,
                           &first);
    if (rc < 0) {
        weftd_reply_error(m->rid, m->rid_len, "spec", "%s", weft_last_error());
    } else if (sub > 0) {
        json_t *jobs = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(jobs, json_pack("{s:I, s:s}", "id", (json_int_t)(first + i),
                                                  "name", units[i].name));
        weftd_reply(m->rid, m->rid_len, WIRE_REPLY,
                    json_pack("{s:I, s:s, s:o}", "submission", (json_int_t)sub, "name", spec->name,
                              "jobs", jobs));
    }
    for (int i = 0; i < n; i++) {
        if (texts) free(texts[i]);
        if (params) free(params[i]);
    }
    free(js);
    free(texts);
    free(keys);
    free(params);
    spec_units_destroy(&units, n);
    spec_destroy(&spec);
    return sub < 0 && rc == 0 ? -1 : 0;
}

static int get_id(const wire_msg_t *m, const char *key, int64_t *id)
{
    if (wire_get_int(m->body, key, id) < 0 || *id <= 0) {
        weftd_reply_error(m->rid, m->rid_len, "field", "%s needs a positive integer \"%s\"",
                          wire_cmd_name(m->cmd), key);
        return -1;
    }
    return 0;
}

/* STATUS without an id: the daemon's own counters. */
static void daemon_status(const wire_msg_t *m)
{
    json_t *rej = json_object();
    int64_t total = 0;
    for (int i = 1; i < WIRE_REJ_COUNT; i++) {
        json_object_set_new(rej, wire_reject_name((wire_reject_code_t)i),
                            json_integer(server.rejected[i]));
        total += server.rejected[i];
    }
    int live = 0;
    for (live_run_t *r = server.runs; r; r = r->next) live++;
    json_t *j =
        json_pack("{s:s, s:I, s:I, s:I, s:o, s:i, s:i, s:i, s:i}", "home", server.home, "handled",
                  (json_int_t)server.handled, "rejected", (json_int_t)total, "stale",
                  (json_int_t)server.stale, "rejected_by_reason", rej, "live_runs", live, "slots",
                  server.slots, "pack_size", server.pack_size, "watchers", server.nwatchers);
    json_object_set_new(j, "disconnects", json_integer(server.disconnects));
    /* CURVE handshakes the ZAP handler refused (unknown keys). */
    json_object_set_new(j, "keys_refused", json_integer(server.zap ? zap_refused(server.zap) : 0));
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY, j);
}

static int status(const wire_msg_t *m)
{
    int64_t id;
    if (!json_object_get(m->body, "id")) {
        if (is_admin(m))
            daemon_status(m);
        else
            weftd_reply_error(m->rid, m->rid_len, "permission",
                              "the daemon's status is for admin keys; give a job \"id\"");
        return 0;
    }
    if (get_id(m, "id", &id) < 0) return 0;
    store_job_row_t r;
    if (store_job_get(server.store, id, &r) < 0) {
        weftd_reply_error(m->rid, m->rid_len, "not_found", "%s", weft_last_error());
        return 0;
    }
    if (!may_see(m, &r)) {
        store_job_row_free(&r);
        weftd_reply_error(m->rid, m->rid_len, "not_found", "no job %lld", (long long)id);
        return 0;
    }
    json_t *j = job_json(&r);
    add_summary(j, id);
    if (r.run > 0) {
        store_run_row_t run;
        if (store_run_get(server.store, r.run, &run) == 0) {
            json_object_set_new(j, "attempt", json_integer(run.attempt));
            json_object_set_new(j, "run_state", json_string(run_state_name(run.state)));
        }
        /* it joined its run while that run's group trained (admit_run.c) */
        if (store_job_admitted(server.store, id) == r.run)
            json_object_set_new(j, "admitted", json_true());
    }
    store_job_row_free(&r);
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY, j);
    return 0;
}

static int list(const wire_msg_t *m)
{
    const char *state = wire_get_str(m->body, "state");
    const char *name = wire_get_str(m->body, "name");
    int64_t sub = 0, before = 0, limit = LIST_DEFAULT;
    if (json_object_get(m->body, "submission") && wire_get_int(m->body, "submission", &sub) < 0)
        sub = -1;
    if (json_object_get(m->body, "before") && wire_get_int(m->body, "before", &before) < 0)
        before = -1;
    if (json_object_get(m->body, "limit") && wire_get_int(m->body, "limit", &limit) < 0) limit = -1;
    int st = state ? job_state_parse(state) : -1;
    if ((state && st < 0) || sub < 0 || before < 0 || limit < 1 || limit > LIST_MAX) {
        weftd_reply_error(m->rid, m->rid_len, "field",
                          "LIST takes \"state\" (preparing, queued, running, succeeded, failed, "
                          "cancelled), \"name\", \"submission\", \"before\" and \"limit\" "
                          "(1..%d)",
                          LIST_MAX);
        return 0;
    }
    /* Pages of the store, newest first, keeping the jobs the sender may see.
     * A tenant's jobs may be few among many: after LIST_SCAN jobs looked at,
     * the page ends with "before" where the scan stopped. */
    json_t *jobs = json_array();
    int64_t last = 0;
    size_t kept = 0, scanned = 0;
    int more = 0;
    for (;;) {
        store_job_row_t *rows;
        size_t n;
        if (store_list(server.store, st, name, sub, before, (size_t)limit, &rows, &n) < 0) {
            json_decref(jobs);
            return -1;
        }
        for (size_t i = 0; i < n && kept < (size_t)limit; i++) {
            if (!may_see(m, &rows[i])) continue;
            json_array_append_new(jobs, job_json(&rows[i]));
            last = rows[i].id;
            kept++;
        }
        if (n) before = rows[n - 1].id;
        store_job_rows_free(rows, n);
        scanned += n;
        if (n < (size_t)limit || kept == (size_t)limit) break;
        if (scanned >= LIST_SCAN) {
            more = 1;
            last = before;
            break;
        }
    }
    json_t *reply = json_pack("{s:o}", "jobs", jobs);
    if (more || kept == (size_t)limit) json_object_set_new(reply, "before", json_integer(last));
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY, reply);
    return 0;
}

/* CANCEL: at most CANCEL_MAX ids, each a positive integer; an id given
 * twice is answered once, where it first appears. */
static int cancel(const wire_msg_t *m)
{
    json_t *ids = json_object_get(m->body, "ids");
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || n == 0) {
        weftd_reply_error(m->rid, m->rid_len, "field", "CANCEL needs \"ids\": [job ids]");
        return 0;
    }
    if (n > CANCEL_MAX) {
        weftd_reply_error(m->rid, m->rid_len, "limit",
                          "CANCEL takes at most %d ids, not %zu; send them in several requests",
                          CANCEL_MAX, n);
        return 0;
    }
    int64_t id[CANCEL_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        int64_t x = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
        if (x <= 0) {
            weftd_reply_error(m->rid, m->rid_len, "field",
                              "CANCEL: \"ids\" must hold job ids (positive integers); entry %zu "
                              "does not",
                              i + 1);
            return 0;
        }
        size_t j = 0;
        while (j < k && id[j] != x) j++;
        if (j == k) id[k++] = x;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < k; i++) {
        store_job_row_t r;
        if (store_job_get(server.store, id[i], &r) < 0) {
            json_array_append_new(
                results, json_pack("{s:I, s:s}", "id", (json_int_t)id[i], "error", "no such job"));
            continue;
        }
        if (!may_see(m, &r)) { /* another tenant's job: as if there were none */
            store_job_row_free(&r);
            json_array_append_new(
                results, json_pack("{s:I, s:s}", "id", (json_int_t)id[i], "error", "no such job"));
            continue;
        }
        const char *outcome = "cancelled";
        if (job_state_final(r.state)) {
            outcome = job_state_name(r.state);
        } else {
            if (store_job_transition(server.store, id[i], JOB_CANCELLED, "cancelled by request") <
                    0 ||
                (r.state == JOB_RUNNING && monitor_job_cancelled(id[i], r.run) < 0)) {
                store_job_row_free(&r);
                json_decref(results);
                return -1;
            }
        }
        json_array_append_new(results,
                              json_pack("{s:I, s:s}", "id", (json_int_t)id[i], "state", outcome));
        store_job_row_free(&r);
    }
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY, json_pack("{s:o}", "jobs", results));
    return 0;
}

static int watch(const wire_msg_t *m)
{
    int64_t id, from = 0;
    if (get_id(m, "id", &id) < 0) return 0;
    if (json_object_get(m->body, "from") &&
        (wire_get_int(m->body, "from", &from) < 0 || from < 0)) {
        weftd_reply_error(m->rid, m->rid_len, "field", "\"from\" must be an event id >= 0");
        return 0;
    }
    store_job_row_t r;
    if (store_job_get(server.store, id, &r) < 0) {
        weftd_reply_error(m->rid, m->rid_len, "not_found", "%s", weft_last_error());
        return 0;
    }
    int visible = may_see(m, &r);
    store_job_row_free(&r);
    if (!visible) {
        weftd_reply_error(m->rid, m->rid_len, "not_found", "no job %lld", (long long)id);
        return 0;
    }
    if (server.nwatchers >= server.max_watchers) {
        weftd_reply_error(m->rid, m->rid_len, "limit",
                          "too many open WATCH streams (%d); try again later", server.max_watchers);
        return 0;
    }
    /* A client: a key (its role), or one connection of the local admin. */
    int mine = 0;
    for (watcher_t *o = server.watchers; o; o = o->next)
        mine += is_admin(m) ? o->rid_len == m->rid_len && !memcmp(o->rid, m->rid, m->rid_len)
                            : !strcmp(o->owner, owner_of(m));
    if (mine >= server.max_watch_client) {
        weftd_reply_error(m->rid, m->rid_len, "limit",
                          "this client has %d open WATCH streams, the most it may "
                          "(--max-watch-per-client); wait for one to end",
                          mine);
        return 0;
    }
    watcher_t *w = calloc(1, sizeof *w);
    if (!w) return weft_error("out of memory");
    memcpy(w->rid, m->rid, m->rid_len);
    w->rid_len = m->rid_len;
    w->job = id;
    w->last = from;
    w->req = json_deep_copy(server.req);
    snprintf(w->owner, sizeof w->owner, "%s", owner_of(m));
    w->next = server.watchers;
    server.watchers = w;
    server.nwatchers++;
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY,
                json_pack("{s:I, s:I}", "watching", (json_int_t)id, "from", (json_int_t)from));
    return 0;
}

/* Failed and cancelled jobs after the rest, each part by best val loss
 * (jobs without one last); the id breaks ties so the order is stable. */
static int cmp_best(const void *a, const void *b)
{
    const json_t *ja = *(json_t *const *)a, *jb = *(json_t *const *)b;
    int fa = json_is_true(json_object_get(ja, "_ended_badly"));
    int fb = json_is_true(json_object_get(jb, "_ended_badly"));
    if (fa != fb) return fa - fb;
    double x = json_real_value(json_object_get(ja, "_sort"));
    double y = json_real_value(json_object_get(jb, "_sort"));
    if (x != y) return (x > y) - (x < y);
    json_int_t ia = json_integer_value(json_object_get(ja, "id"));
    json_int_t ib = json_integer_value(json_object_get(jb, "id"));
    return (ia > ib) - (ia < ib);
}

static int results(const wire_msg_t *m)
{
    int64_t sub = 0, id = 0;
    if (json_object_get(m->body, "submission")) {
        if (get_id(m, "submission", &sub) < 0) return 0;
    } else {
        if (get_id(m, "id", &id) < 0) return 0;
        store_job_row_t r;
        if (store_job_get(server.store, id, &r) < 0) {
            weftd_reply_error(m->rid, m->rid_len, "not_found", "%s", weft_last_error());
            return 0;
        }
        sub = r.submission;
        int visible = may_see(m, &r);
        store_job_row_free(&r);
        if (!visible) {
            weftd_reply_error(m->rid, m->rid_len, "not_found", "no job %lld", (long long)id);
            return 0;
        }
    }
    store_job_row_t *rows;
    size_t n;
    if (store_list(server.store, -1, NULL, sub, 0, 100000, &rows, &n) < 0) return -1;
    size_t seen = 0; /* another tenant's jobs of a batch stay out */
    for (size_t i = 0; i < n; i++) {
        if (may_see(m, &rows[i])) {
            if (seen != i) {
                store_job_row_t t = rows[seen];
                rows[seen] = rows[i];
                rows[i] = t;
            }
            seen++;
        }
    }
    for (size_t i = seen; i < n; i++) store_job_row_free(&rows[i]);
    n = seen;
    if (n == 0) {
        weftd_reply_error(m->rid, m->rid_len, "not_found", "no submission %lld", (long long)sub);
        store_job_rows_free(rows, n);
        return 0;
    }
    json_t **items = calloc(n, sizeof *items);
    for (size_t i = 0; items && i < n; i++) {
        items[i] = job_json(&rows[i]);
        add_summary(items[i], rows[i].id);
        json_t *b = json_object_get(items[i], "best_val_loss");
        json_object_set_new(items[i], "_sort",
                            json_real(json_is_number(b) ? json_number_value(b) : INFINITY));
        const char *st = json_string_value(json_object_get(items[i], "state"));
        json_object_set_new(items[i], "_ended_badly",
                            json_boolean(st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))));
    }
    json_t *arr = json_array();
    if (items) {
        qsort(items, n, sizeof *items, cmp_best);
        for (size_t i = 0; i < n; i++) {
            json_object_del(items[i], "_sort");
            json_object_del(items[i], "_ended_badly");
            json_array_append_new(arr, items[i]);
        }
    }
    free(items);
    store_job_rows_free(rows, n);
    weftd_reply(m->rid, m->rid_len, WIRE_REPLY,
                json_pack("{s:I, s:o}", "submission", (json_int_t)sub, "jobs", arr));
    return 0;
}

/* A request's "req" is echoed in every answer: small, so that an echo
 * cannot multiply what a client sent (a WATCH echoes it in each EVENT). */
static int req_ok(const wire_msg_t *m)
{
    json_t *req = json_object_get(m->body, "req");
    if (!req) return 1;
    char buf[REQ_MAX + 1];
    size_t n = json_dumpb(req, buf, sizeof buf, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n > 0 && n <= REQ_MAX) return 1;
    server.req = NULL; /* this answer does not echo it */
    weftd_reply_error(m->rid, m->rid_len, "field",
                      "\"req\" must be a JSON value of at most %d bytes (compact)", REQ_MAX);
    return 0;
}

int api_handle(const wire_msg_t *m)
{
    if (!req_ok(m)) return 0;
    if (!is_admin(m) && !auth_role_tenant(owner_of(m))) {
        weftd_reply_error(m->rid, m->rid_len, "permission",
                          "%s is a client command; this key (%s) may not send it",
                          wire_cmd_name(m->cmd), owner_of(m));
        return 0;
    }
    switch (m->cmd) {
    case WIRE_SUBMIT:
        return submit(m);
    case WIRE_STATUS:
        return status(m);
    case WIRE_LIST:
        return list(m);
    case WIRE_CANCEL:
        return cancel(m);
    case WIRE_WATCH:
        return watch(m);
    case WIRE_RESULTS:
        return results(m);
    default:
        weftd_reply_error(m->rid, m->rid_len, "command", "%s is not a client command",
                          wire_cmd_name(m->cmd));
        return 0;
    }
}

/* A watcher's pass: what send_event sends it this time. */
typedef struct {
    watcher_t *w;
    int sent;
} watch_pass_t;

static int send_event(void *ctx, int64_t id, const char *kind, const char *detail)
{
    watch_pass_t *p = ctx;
    watcher_t *w = p->w;
    if (p->sent == WATCH_BATCH) return 1; /* the rest on the next pass */
    json_t *data = json_loads(detail, 0, NULL);
    json_t *e = json_pack("{s:I, s:I, s:s, s:o}", "job", (json_int_t)w->job, "event",
                          (json_int_t)id, "kind", kind, "data", data ? data : json_null());
    if (w->req) json_object_set(e, "req", w->req);
    int rc = wire_send(server.router, w->rid, w->rid_len, WIRE_EVENT, e, ZMQ_DONTWAIT);
    json_decref(e);
    if (rc != 0) {
        /* Unroutable: the client is gone. Would block: it is slow; resume
         * from this event next time. */
        w->gone = rc == WIRE_UNROUTABLE;
        w->stalled = 1;
        return 1;
    }
    w->last = id;
    p->sent++;
    return 0;
}

static void watcher_free(watcher_t *w)
{
    json_decref(w->req);
    free(w);
}

int api_watch_cron(void)
{
    int backlog = 0;
    watcher_t **pp = &server.watchers;
    while (*pp) {
        watcher_t *w = *pp;
        w->stalled = 0;
        int done = 0;
        watch_pass_t pass = {w, 0};
        if (store_events(server.store, w->job, w->last, send_event, &pass) == 0 && !w->stalled &&
            pass.sent < WATCH_BATCH) {
            /* Everything committed so far has been sent: a job in a final
             * state has nothing more to say, so the stream ends. */
            store_job_row_t r;
            if (store_job_get(server.store, w->job, &r) == 0) {
                if (job_state_final(r.state)) {
                    json_t *e = json_pack("{s:I, s:b, s:s}", "job", (json_int_t)w->job, "end", 1,
                                          "state", job_state_name(r.state));
                    if (w->req) json_object_set(e, "req", w->req);
                    done = wire_send(server.router, w->rid, w->rid_len, WIRE_EVENT, e,
                                     ZMQ_DONTWAIT) != WIRE_AGAIN;
                    json_decref(e);
                }
                store_job_row_free(&r);
            }
        }
        if (pass.sent == WATCH_BATCH && !w->stalled) backlog = 1;
        if (done || w->gone) {
            *pp = w->next;
            watcher_free(w);
            server.nwatchers--;
        } else {
            pp = &w->next;
        }
    }
    return backlog;
}

void api_watchers_drop_all(void)
{
    while (server.watchers) {
        watcher_t *w = server.watchers;
        server.watchers = w->next;
        watcher_free(w);
    }
    server.nwatchers = 0;
}
