/* reporter.c: metrics.jsonl, the outbox and its pump thread (see
 * reporter.h). The outbox and its ZeroMQ socket are used under one mutex:
 * the training thread posts, the pump thread sends, receives and beats. */
#include "common/clock.h"
#include "worker/reporter.h"
#include "common/auth.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define PUMP_MS     50
#define HEARTBEAT_S 1.0

struct reporter {
    int fd; /* metrics.jsonl */
    int64_t bytes;
    void *zctx;
    outbox_t *ob;
    pthread_t thread;
    pthread_mutex_t lock;
    int running, quit;
    int64_t step;
    json_t *cancel; /* tenant names ordered cancelled, not yet taken */
    json_t *stop;   /* tenant names ordered stopped early, not yet taken */
    json_t *admit;  /* tenant names the coordinator appended to the spec, not yet taken */
    int preempt;
};

static void take_order(reporter_t *self, wire_msg_t *m)
{
    if (m->cmd == WIRE_CANCEL) {
        json_t *names = json_object_get(m->body, "tenants");
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) if (json_is_string(v)) json_array_append(self->cancel, v);
    } else if (m->cmd == WIRE_STOP) {
        json_t *names = json_object_get(m->body, "tenants");
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) if (json_is_string(v)) json_array_append(self->stop, v);
    } else if (m->cmd == WIRE_ADMIT) {
        json_t *names = json_object_get(m->body, "tenants");
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) if (json_is_string(v)) json_array_append(self->admit, v);
    } else if (m->cmd == WIRE_PREEMPT) {
        self->preempt = 1;
    }
}

static void *pump(void *arg)
{
    reporter_t *self = arg;
    double last_beat = 0;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        if (self->quit) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        wire_msg_t *m = NULL;
        while (outbox_pump(self->ob, 0, &m) == 1) {
            take_order(self, m);
            wire_msg_destroy(&m);
        }
        if (weft_clock() - last_beat >= HEARTBEAT_S) {
            json_t *hb = json_pack("{s:I}", "step", (json_int_t)self->step);
            outbox_heartbeat(self->ob, hb);
            json_decref(hb);
            last_beat = weft_clock();
        }
        pthread_mutex_unlock(&self->lock);
        struct timespec ts = {0, PUMP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

reporter_t *reporter_new(const char *outdir, const char *run, int attempt, const char *endpoint,
                         int64_t keep_bytes)
{
    reporter_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    pthread_mutex_init(&self->lock, NULL);
    self->cancel = json_array();
    self->stop = json_array();
    self->admit = json_array();
    char path[PATH_MAX];
    if (weft_path_join(path, sizeof path, outdir, "metrics.jsonl") < 0) goto fail;
    self->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        weft_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (keep_bytes >= 0 && ftruncate(self->fd, keep_bytes) < 0) {
        weft_error("%s: cannot cut to %lld bytes: %s", path, (long long)keep_bytes,
                   strerror(errno));
        goto fail;
    }
    self->bytes = lseek(self->fd, 0, SEEK_END);
    if (endpoint && *endpoint) {
        if (weft_path_join(path, sizeof path, outdir, "outbox.spool") < 0) goto fail;
        self->ob = outbox_open(path, run, attempt);
        if (!self->ob) goto fail;
        self->zctx = zmq_ctx_new();
        /* Over a CURVE endpoint, the run's key minted by weftd (0600 file). */
        wire_opts_t o = wire_opts_default();
        auth_key_t key;
        const char *key_path = getenv("WEFT_WORKER_KEY");
        if (key_path && *key_path) {
            if (auth_key_read(key_path, &key) < 0) goto fail;
            if (!key.secret_key[0] || !key.server_key[0]) {
                weft_error("%s: a worker key needs secret-key and server-key", key_path);
                goto fail;
            }
            o.curve_server = key.server_key;
            o.curve_public = key.public_key;
            o.curve_secret = key.secret_key;
        }
        if (outbox_connect(self->ob, self->zctx, endpoint, &o) < 0) goto fail;
        if (pthread_create(&self->thread, NULL, pump, self) != 0) {
            weft_error("cannot start the reporter thread");
            goto fail;
        }
        self->running = 1;
    }
    return self;
fail:
    reporter_destroy(&self);
    return NULL;
}

void reporter_destroy(reporter_t **self_p)
{
    reporter_t *self = *self_p;
    if (!self) return;
    if (self->running) {
        pthread_mutex_lock(&self->lock);
        self->quit = 1;
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    outbox_destroy(&self->ob);
    if (self->zctx) zmq_ctx_term(self->zctx);
    if (self->fd > 0) close(self->fd);
    json_decref(self->cancel);
    json_decref(self->stop);
    json_decref(self->admit);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int reporter_metric(reporter_t *self, json_t *metric)
{
    char *line = json_dumps(metric, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = 0;
    if (!line) {
        rc = weft_error("cannot encode a metric");
    } else {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps leaves room for the NUL we replace */
        ssize_t w = write(self->fd, line, n + 1);
        if (w != (ssize_t)(n + 1))
            rc = weft_error("cannot append to metrics.jsonl: %s", strerror(errno));
        else
            self->bytes += w;
        free(line);
    }
    if (rc == 0 && self->ob) rc = reporter_post(self, WIRE_METRIC, json_incref(metric));
    json_decref(metric);
    return rc;
}

int reporter_post(reporter_t *self, wire_cmd_t cmd, json_t *body)
{
    int rc = 0;
    if (self->ob) {
        pthread_mutex_lock(&self->lock);
        rc = outbox_post(self->ob, cmd, body) < 0 ? -1 : 0;
        pthread_mutex_unlock(&self->lock);
    }
    json_decref(body);
    return rc;
}

int64_t reporter_metrics_bytes(reporter_t *self)
{
    return self->bytes;
}

int reporter_sync(reporter_t *self)
{
    if (fsync(self->fd) < 0) return weft_error("fsync of metrics.jsonl: %s", strerror(errno));
    int rc = 0;
    if (self->ob) {
        pthread_mutex_lock(&self->lock);
        rc = outbox_sync(self->ob);
        pthread_mutex_unlock(&self->lock);
    }
    return rc;
}

void reporter_set_step(reporter_t *self, int64_t step)
{
    pthread_mutex_lock(&self->lock);
    self->step = step;
    pthread_mutex_unlock(&self->lock);
}

json_t *reporter_orders(reporter_t *self, int *preempt)
{
    pthread_mutex_lock(&self->lock);
    json_t *out = NULL;
    if (json_array_size(self->cancel)) {
        out = self->cancel;
        self->cancel = json_array();
    }
    *preempt = self->preempt;
    pthread_mutex_unlock(&self->lock);
    return out;
}

json_t *reporter_stops(reporter_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *out = NULL;
    if (json_array_size(self->stop)) {
        out = self->stop;
        self->stop = json_array();
    }
    pthread_mutex_unlock(&self->lock);
    return out;
}

json_t *reporter_admits(reporter_t *self)
{
    pthread_mutex_lock(&self->lock);
    json_t *out = NULL;
    if (json_array_size(self->admit)) {
        out = self->admit;
        self->admit = json_array();
    }
    pthread_mutex_unlock(&self->lock);
    return out;
}

int reporter_flush(reporter_t *self, double seconds)
{
    if (!self->ob) return 0;
    double until = weft_clock() + seconds;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        outbox_stats_t st = outbox_stats(self->ob);
        pthread_mutex_unlock(&self->lock);
        if (st.pending == 0) return 0;
        if (weft_clock() > until) return 1;
        struct timespec ts = {0, PUMP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}
