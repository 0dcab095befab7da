/* zap.c: weftd's ZAP handler (see zap.h). The key table is shared with the
 * main thread (which adds and removes run keys) under one mutex; the REP
 * socket belongs to the handler thread alone once it starts. */
#include "scheduler/zap.h"

#include "common/auth.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_POLL_MS  100

typedef struct {
    char public_key[AUTH_Z85_LEN + 1];
    char role[AUTH_ROLE_MAX];
} entry_t;

struct zap {
    void *rep;
    pthread_t thread;
    int started;
    atomic_int quit;
    atomic_llong refused;
    pthread_mutex_t lock;
    entry_t *keys; /* clients first, then run keys */
    int nclients, nkeys, cap;
};

static int add_entry(zap_t *self, const char *public_key, const char *role)
{
    if (self->nkeys == self->cap) {
        int cap = self->cap ? self->cap * 2 : 16;
        entry_t *k = realloc(self->keys, (size_t)cap * sizeof *k);
        if (!k) return weft_error("out of memory");
        self->keys = k;
        self->cap = cap;
    }
    entry_t *e = &self->keys[self->nkeys++];
    snprintf(e->public_key, sizeof e->public_key, "%s", public_key);
    snprintf(e->role, sizeof e->role, "%s", role);
    return 0;
}

static int find_key(const zap_t *self, const char *public_key)
{
    for (int i = 0; i < self->nkeys; i++)
        if (!strcmp(self->keys[i].public_key, public_key)) return i;
    return -1;
}

static int load_clients(zap_t *self, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0; /* no folder: no client keys */
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".pub")) continue;
        char path[4096];
        auth_key_t key;
        if (weft_path_join(path, sizeof path, dir, e->d_name) < 0 || auth_key_read(path, &key) < 0)
            rc = -1;
        else if (auth_role_run(key.role))
            rc = weft_error("%s: worker roles are minted by weftd, not admitted by file", path);
        else if (find_key(self, key.public_key) >= 0)
            rc = weft_error("%s: this public key is already admitted by another file", path);
        else
            rc = add_entry(self, key.public_key, key.role);
    }
    closedir(d);
    self->nclients = self->nkeys;
    return rc;
}

int zap_reload_clients(zap_t *self, const char *clients_dir)
{
    /* Read the folder into a table of its own: a bad file keeps the old keys. */
    zap_t fresh = {0};
    if (load_clients(&fresh, clients_dir) < 0) {
        free(fresh.keys);
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    int rc = 0;
    for (int i = self->nclients; i < self->nkeys && rc == 0; i++) /* the live runs' keys */
        if (find_key(&fresh, self->keys[i].public_key) >= 0)
            rc =
                weft_error("%s: a client key equal to run key %s", clients_dir, self->keys[i].role);
        else
            rc = add_entry(&fresh, self->keys[i].public_key, self->keys[i].role);
    if (rc == 0) {
        free(self->keys);
        self->keys = fresh.keys, self->nkeys = fresh.nkeys, self->cap = fresh.cap;
        self->nclients = fresh.nclients;
        fresh.keys = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    free(fresh.keys);
    return rc < 0 ? -1 : self->nclients;
}

/* One request: frames version, request id, domain, address, identity,
 * mechanism, credentials. */
static void handle(zap_t *self)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t tmp, *m = n < 8 ? &f[n] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->rep, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &tmp)
            zmq_msg_close(m);
        else
            n++;
    }
    const char *code = "400", *text = "refused", *user = "";
    char role[AUTH_ROLE_MAX];
    if (n >= 6) {
        size_t mlen = zmq_msg_size(&f[5]);
        const char *mech = zmq_msg_data(&f[5]);
        if (mlen == 4 && !memcmp(mech, "NULL", 4)) {
            code = "200", text = "OK", user = "admin";
        } else if (mlen == 5 && !memcmp(mech, "CURVE", 5) && n >= 7 && zmq_msg_size(&f[6]) == 32) {
            char z85[AUTH_Z85_LEN + 1];
            zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
            pthread_mutex_lock(&self->lock);
            int i = find_key(self, z85);
            if (i >= 0) {
                snprintf(role, sizeof role, "%s", self->keys[i].role);
                code = "200", text = "OK", user = role;
            }
            pthread_mutex_unlock(&self->lock);
            if (i < 0) text = "unknown key";
        }
    }
    if (strcmp(code, "200")) atomic_fetch_add(&self->refused, 1);
    /* The reply echoes version and request id. */
    const void *rid = n >= 2 ? zmq_msg_data(&f[1]) : "";
    size_t rid_len = n >= 2 ? zmq_msg_size(&f[1]) : 0;
    zmq_send(self->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(self->rep, rid, rid_len, ZMQ_SNDMORE);
    zmq_send(self->rep, code, 3, ZMQ_SNDMORE);
    zmq_send(self->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(self->rep, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static void *run(void *arg)
{
    zap_t *self = arg;
    while (!atomic_load(&self->quit)) {
        zmq_pollitem_t it = {self->rep, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, ZAP_POLL_MS) > 0 && (it.revents & ZMQ_POLLIN)) handle(self);
    }
    return NULL;
}

zap_t *zap_new(void *zctx, const char *clients_dir)
{
    zap_t *self = calloc(1, sizeof *self);
    if (!self) {
        weft_error("out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    if (load_clients(self, clients_dir) < 0) goto fail;
    self->rep = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (!self->rep || zmq_setsockopt(self->rep, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_bind(self->rep, ZAP_ENDPOINT) < 0) {
        weft_error("binding the ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (pthread_create(&self->thread, NULL, run, self) != 0) {
        weft_error("cannot start the ZAP handler thread");
        goto fail;
    }
    self->started = 1;
    return self;
fail:
    zap_destroy(&self);
    return NULL;
}

void zap_destroy(zap_t **self_p)
{
    zap_t *self = *self_p;
    if (!self) return;
    if (self->started) {
        atomic_store(&self->quit, 1);
        pthread_join(self->thread, NULL);
    }
    if (self->rep) zmq_close(self->rep);
    pthread_mutex_destroy(&self->lock);
    free(self->keys);
    free(self);
    *self_p = NULL;
}

int zap_clients(zap_t *self)
{
    return self->nclients;
}

int zap_add_run(zap_t *self, const char *run, const char *public_key)
{
    char role[AUTH_ROLE_MAX];
    if (snprintf(role, sizeof role, "worker:%s", run) >= (int)sizeof role || !auth_role_run(role) ||
        !auth_z85_valid(public_key))
        return weft_error("run %.40s: not a valid run id and worker key", run);
    zap_remove_run(self, run);
    pthread_mutex_lock(&self->lock);
    int rc = find_key(self, public_key) >= 0
                 ? weft_error("run %s: its worker key is already admitted", run)
                 : add_entry(self, public_key, role);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

void zap_remove_run(zap_t *self, const char *run)
{
    pthread_mutex_lock(&self->lock);
    for (int i = self->nclients; i < self->nkeys; i++) {
        const char *r = auth_role_run(self->keys[i].role);
        if (r && !strcmp(r, run)) {
            self->keys[i] = self->keys[--self->nkeys];
            i--;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

int64_t zap_refused(zap_t *self)
{
    return (int64_t)atomic_load(&self->refused);
}
