/* outbox.c: the worker's numbered, spooled, acknowledged message stream (see
 * outbox.h for the durability rules, docs/PROTOCOL.md for the wire rules).
 * The spool is text, one record a line; the index of unacked records is in memory. */
#include "common/clock.h"
#include "common/outbox.h"

#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* Spool file:
 *   weft-outbox 1 <run> <attempt> <acked>      header, always the first line
 *   M <seq> <COMMAND> <json>                    a message, exactly as stored
 *   A <seq>                                     everything <= seq acknowledged
 * Records are contiguous: each M has the seq after the previous M (or after
 * the header's acked). Compaction rewrites the file with only the unacked
 * records (to .tmp.<pid>, fsync, rename, fsync of the folder). */
#define SPOOL_MAGIC    "weft-outbox"
#define SPOOL_VERSION  1
#define SPOOL_LINE_MAX (WIRE_MAX_JSON + 64)

typedef struct {
    int64_t seq;
    int64_t off;  /* offset of the JSON text in the spool */
    uint32_t len; /* its length, without the newline */
    wire_cmd_t cmd;
} rec_t;

/* A record on its way into a rewritten spool. */
typedef struct {
    int64_t seq;
    wire_cmd_t cmd;
    char *json;
    size_t len;
} item_t;

struct _outbox_t {
    char *path;
    char run[WIRE_RUN_MAX + 1];
    int64_t attempt;
    int fd;
    int64_t size; /* bytes in the spool */
    rec_t *recs;  /* unacknowledged records are recs[head..n) */
    size_t head, n, cap;
    size_t cursor; /* next record to send, head <= cursor <= n */
    int64_t next_seq, acked, max_sent;
    int64_t garbage; /* acknowledged records still in the spool */
    int64_t compact_every;
    int superseded; /* the spool's name now belongs to a newer opener */
    int resend_ms;
    double progress_at; /* last ACK progress, rewind, or first outstanding send */
    double rewind_at;
    int64_t rewind_to;
    void *dealer, *monitor;
    char *buf; /* send and append buffer */
    size_t bufcap;
    outbox_stats_t st;
};

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int reserve(outbox_t *self, size_t need)
{
    if (need <= self->bufcap) return 0;
    size_t cap = self->bufcap ? self->bufcap : 4096;
    while (cap < need) cap *= 2;
    char *b = realloc(self->buf, cap);
    if (!b) return weft_error("outbox %s: out of memory", self->path);
    self->buf = b;
    self->bufcap = cap;
    return 0;
}

static void free_items(item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) free(items[i].json);
    free(items);
}

/* Writes header and items to path.tmp.<pid>, syncs it and renames it over the
 * spool; on success the outbox uses the new file and its index. */
static int write_spool(outbox_t *self, const item_t *items, size_t n, int64_t acked)
{
    size_t plen = strlen(self->path) + 32;
    char *tmp = malloc(plen);
    rec_t *recs = malloc((n ? n : 1) * sizeof *recs);
    FILE *f = NULL;
    int fd = -1, rc = -1;
    if (!tmp || !recs) {
        weft_error("outbox %s: out of memory", self->path);
        goto out;
    }
    snprintf(tmp, plen, "%s.tmp.%ld", self->path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f) {
        weft_error("outbox: cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    int h = fprintf(f, "%s %d %s %" PRId64 " %" PRId64 "\n", SPOOL_MAGIC, SPOOL_VERSION, self->run,
                    self->attempt, acked);
    int64_t pos = h > 0 ? h : 0;
    for (size_t i = 0; i < n && h > 0; i++) {
        int p = fprintf(f, "M %" PRId64 " %s ", items[i].seq, wire_cmd_name(items[i].cmd));
        if (p < 0 || fwrite(items[i].json, 1, items[i].len, f) != items[i].len ||
            fputc('\n', f) == EOF) {
            h = -1;
            break;
        }
        recs[i] = (rec_t){items[i].seq, pos + p, (uint32_t)items[i].len, items[i].cmd};
        pos += p + (int64_t)items[i].len + 1;
    }
    if (h < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        weft_error("outbox: writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        weft_error("outbox: writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    if (weft_rename_durable(tmp, self->path) < 0) goto out;
    fd = open(self->path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        weft_error("outbox: cannot reopen %s: %s", self->path, strerror(errno));
        goto out;
    }
    if (self->fd >= 0) close(self->fd);
    self->fd = fd;
    self->size = pos;
    free(self->recs);
    self->recs = recs;
    recs = NULL;
    self->head = 0;
    self->n = self->cap = n;
    self->garbage = 0;
    rc = 0;
out:
    if (f) fclose(f);
    if (rc < 0 && tmp) unlink(tmp);
    free(tmp);
    free(recs);
    return rc;
}

/* Parses "M <seq> <CMD> <json>" (line without its newline). */
static int parse_message(const char *line, size_t len, item_t *it)
{
    char *end;
    if (len < 2 || line[0] != 'M' || line[1] != ' ') return -1;
    errno = 0;
    long long seq = strtoll(line + 2, &end, 10);
    if (errno || end == line + 2 || *end != ' ' || seq < 1) return -1;
    const char *word = end + 1, *sp = memchr(word, ' ', len - (size_t)(word - line));
    if (!sp) return -1;
    wire_cmd_t cmd = wire_cmd_lookup(word, (size_t)(sp - word));
    if (wire_cmd_senders(cmd) != WIRE_FROM_WORKER || cmd == WIRE_HEARTBEAT) return -1;
    const char *json = sp + 1;
    size_t jlen = len - (size_t)(json - line);
    json_t *v = json_loadb(json, jlen, JSON_REJECT_DUPLICATES, NULL);
    int ok = json_is_object(v);
    json_decref(v);
    if (!ok) return -1;
    it->seq = seq;
    it->cmd = cmd;
    it->len = jlen;
    it->json = malloc(jlen + 1);
    if (!it->json) return -1;
    memcpy(it->json, json, jlen);
    it->json[jlen] = '\0';
    return 0;
}

/* Parses "A <seq>". */
static int parse_ack(const char *line, size_t len, int64_t *seq)
{
    char *end;
    if (len < 3 || line[0] != 'A' || line[1] != ' ') return -1;
    errno = 0;
    long long v = strtoll(line + 2, &end, 10);
    if (errno || end == line + 2 || end != line + len || v < 0) return -1;
    *seq = v;
    return 0;
}

typedef struct {
    item_t *items;
    size_t n, cap;
    int64_t attempt, acked, last;
} loaded_t;

static int push_item(loaded_t *l, const item_t *it)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        item_t *p = realloc(l->items, cap * sizeof *p);
        if (!p) return -1;
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = *it;
    return 0;
}

static int parse_header(outbox_t *self, char *line, loaded_t *l)
{
    char magic[32], run[WIRE_RUN_MAX + 2];
    int version;
    long long attempt, acked;
    char tail;
    if (sscanf(line, "%31s %d %201s %lld %lld %c", magic, &version, run, &attempt, &acked, &tail) !=
            5 ||
        strcmp(magic, SPOOL_MAGIC) != 0)
        return weft_error("%s: line 1: not a weft outbox spool (expected \"%s %d RUN ATTEMPT "
                          "ACKED\"); move it aside or choose another path",
                          self->path, SPOOL_MAGIC, SPOOL_VERSION);
    if (version != SPOOL_VERSION)
        return weft_error("%s: spool version %d, this weft reads version %d", self->path, version,
                          SPOOL_VERSION);
    if (strcmp(run, self->run) != 0)
        return weft_error("%s: the spool belongs to run %s, not %s; each run needs its own "
                          "output folder",
                          self->path, run, self->run);
    if (attempt < 1 || acked < 0)
        return weft_error("%s: line 1: bad attempt or acked number", self->path);
    l->attempt = attempt;
    l->acked = l->last = acked;
    return 0;
}

/* Reads the spool into l. A bad last line is a torn append: it is dropped
 * with a warning. A bad line with complete lines after it is an error. */
static int load(outbox_t *self, FILE *f, loaded_t *l)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, bad_line = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int complete = len > 0 && line[len - 1] == '\n';
        if (complete) line[--len] = '\0';
        if (bad_line) {
            rc = weft_error("%s: line %d is corrupt and %s follows it; the spool cannot be "
                            "trusted: move it aside to start a fresh one (its unacknowledged "
                            "messages are then lost)",
                            self->path, bad_line, complete ? "a complete line" : "more data");
            break;
        }
        if (lineno == 1) {
            if (!complete || parse_header(self, line, l) < 0) {
                if (!complete)
                    weft_error("%s: line 1: the spool header is incomplete; move it aside",
                               self->path);
                rc = -1;
                break;
            }
            continue;
        }
        item_t it = {0};
        int64_t a;
        if (complete && (size_t)len < SPOOL_LINE_MAX &&
            parse_message(line, (size_t)len, &it) == 0) {
            if (it.seq != l->last + 1) {
                free(it.json);
                rc = weft_error("%s: line %d holds seq %" PRId64 " where %" PRId64
                                " was expected; move the spool aside to start a fresh one",
                                self->path, lineno, it.seq, l->last + 1);
                break;
            }
            l->last = it.seq;
            if (push_item(l, &it) < 0) {
                free(it.json);
                rc = weft_error("%s: out of memory reading the spool", self->path);
                break;
            }
        } else if (complete && parse_ack(line, (size_t)len, &a) == 0) {
            if (a > l->acked) l->acked = a;
            if (a > l->last) l->last = a;
        } else {
            bad_line = lineno;
        }
    }
    free(line);
    if (rc == 0 && ferror(f)) rc = weft_error("%s: read error: %s", self->path, strerror(errno));
    if (rc == 0 && lineno == 0)
        rc = weft_error("%s: the spool is empty (no header); move it aside", self->path);
    if (rc == 0 && bad_line)
        weft_warn("%s: dropped a torn record at line %d (its writer was stopped mid-write)",
                  self->path, bad_line);
    return rc;
}

/* Frees the records not yet carried over (from i on) and keeps the first out. */
static int carry_failed(loaded_t *l, size_t i, size_t out, int rc)
{
    for (size_t j = i; j < l->n; j++) free(l->items[j].json);
    l->n = out;
    return rc;
}

/* Re-stamps the unacked records of an older attempt for this one: renumbered
 * from 1, "attempt" set, "from_attempt" kept; HELLO records dropped. */
static int carry_over(outbox_t *self, loaded_t *l)
{
    size_t out = 0;
    int64_t seq = 0;
    for (size_t i = 0; i < l->n; i++) {
        item_t *it = &l->items[i];
        if (it->cmd == WIRE_HELLO) {
            free(it->json);
            continue;
        }
        json_t *b = json_loadb(it->json, it->len, 0, NULL);
        if (!b)
            return carry_failed(
                l, i, out,
                weft_error("%s: record %" PRId64 " does not parse", self->path, it->seq));
        if (!json_object_get(b, "from_attempt"))
            json_object_set_new(b, "from_attempt", json_integer(l->attempt));
        json_object_set_new(b, "attempt", json_integer(self->attempt));
        json_object_set_new(b, "seq", json_integer(++seq));
        char *text = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        if (!text)
            return carry_failed(l, i, out,
                                weft_error("%s: out of memory carrying records over", self->path));
        free(it->json);
        l->items[out] = (item_t){seq, it->cmd, text, strlen(text)};
        out++;
    }
    l->n = out;
    l->acked = 0;
    l->last = seq;
    return 0;
}

outbox_t *outbox_open(const char *path, const char *run, int64_t attempt)
{
    if (!wire_run_valid(run)) {
        weft_error("outbox %s: run id \"%.40s\" is not 1..%d characters of [A-Za-z0-9._-]", path,
                   run, WIRE_RUN_MAX);
        return NULL;
    }
    if (attempt < 1 || attempt > INT32_MAX) {
        weft_error("outbox %s: attempt %" PRId64 " out of range", path, attempt);
        return NULL;
    }
    outbox_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        weft_error("outbox %s: out of memory", path);
        return NULL;
    }
    snprintf(self->run, sizeof self->run, "%s", run);
    self->attempt = attempt;
    self->fd = -1;
    self->resend_ms = 3000;
    self->compact_every = 4096;
    self->rewind_to = -1;

    loaded_t l = {0};
    int rc = 0;
    FILE *f = fopen(path, "r");
    if (!f && errno != ENOENT) {
        rc = weft_error("outbox: cannot open %s: %s", path, strerror(errno));
    } else if (f) {
        rc = load(self, f, &l);
        fclose(f);
        if (rc == 0 && l.attempt > attempt)
            rc = weft_error("%s: the spool is at attempt %" PRId64 " of run %s; attempt %" PRId64
                            " is stale and must not report",
                            path, l.attempt, run, attempt);
        /* Keep only what was never acknowledged. */
        size_t keep = 0;
        for (size_t i = 0; rc == 0 && i < l.n; i++) {
            if (l.items[i].seq <= l.acked)
                free(l.items[i].json);
            else
                l.items[keep++] = l.items[i];
        }
        if (rc == 0) l.n = keep;
        if (rc == 0 && l.attempt < attempt) rc = carry_over(self, &l);
    }
    if (rc == 0) rc = write_spool(self, l.items, l.n, l.acked);
    free_items(l.items, l.n);
    if (rc < 0) {
        outbox_destroy(&self);
        return NULL;
    }
    self->acked = l.acked;
    self->next_seq = l.last + 1;
    self->max_sent = l.acked;
    return self;
}

void outbox_destroy(outbox_t **self_p)
{
    if (!self_p || !*self_p) return;
    outbox_t *self = *self_p;
    if (self->dealer) zmq_socket_monitor(self->dealer, NULL, 0);
    if (self->monitor) zmq_close(self->monitor);
    if (self->dealer) zmq_close(self->dealer);
    if (self->fd >= 0) close(self->fd);
    free(self->recs);
    free(self->buf);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int outbox_connect(outbox_t *self, void *ctx, const char *endpoint, const wire_opts_t *opts)
{
    char rid[WIRE_RID_MAX + 1], ep[64];
    if (self->dealer) return weft_error("outbox %s: already connected", self->path);
    if (wire_rid_format(rid, sizeof rid, self->run, self->attempt) < 0) return -1;
    wire_opts_t o = opts ? *opts : wire_opts_default();
    /* Never ZMQ_IMMEDIATE: libzmq 4.3.4 then aborts (fq.cpp:112, "!_more")
     * when the coordinator vanishes while a reply is half read. Without it,
     * ZeroMQ queues up to SNDHWM while disconnected; the spool keeps the rest. */
    o.immediate = 0;
    self->dealer = wire_dealer_new(ctx, NULL, rid, &o);
    if (!self->dealer) return -1;
    /* A closed monitor's name stays taken for a moment: never reuse one. */
    static atomic_uint serial;
    snprintf(ep, sizeof ep, "inproc://weft-outbox-%p-%u", (void *)self,
             atomic_fetch_add(&serial, 1));
    int linger = 0;
    if (zmq_socket_monitor(self->dealer, ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) < 0 ||
        !(self->monitor = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_connect(self->monitor, ep) < 0) {
        int e = zmq_errno();
        zmq_socket_monitor(self->dealer, NULL, 0);
        if (self->monitor) zmq_close(self->monitor);
        zmq_close(self->dealer);
        self->dealer = self->monitor = NULL;
        return weft_error("outbox: monitoring the connection to %s: %s", endpoint, zmq_strerror(e));
    }
    /* Connect only now: a handshake before the monitor is up would go unseen. */
    if (zmq_connect(self->dealer, endpoint) < 0) {
        weft_error("outbox: connecting to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_socket_monitor(self->dealer, NULL, 0);
        zmq_close(self->monitor);
        zmq_close(self->dealer);
        self->dealer = self->monitor = NULL;
        return -1;
    }
    return 0;
}

void outbox_set_resend_ms(outbox_t *self, int ms)
{
    self->resend_ms = ms;
}

void outbox_set_compact_every(outbox_t *self, int64_t records)
{
    self->compact_every = records;
}

static void rewind_all(outbox_t *self, double t)
{
    self->cursor = self->head;
    self->progress_at = t;
}

/* Sends records from the cursor until ZeroMQ would block. Each goes out
 * with the current "acked" spliced in front of its stored fields. */
static int flush(outbox_t *self)
{
    if (!self->dealer) return 0;
    while (self->cursor < self->n) {
        rec_t *r = &self->recs[self->cursor];
        char pre[40];
        int p = snprintf(pre, sizeof pre, "{\"acked\":%" PRId64 ",", self->acked);
        size_t total = (size_t)p - 1 + r->len;
        if (reserve(self, total) < 0) return -1;
        ssize_t got = pread(self->fd, self->buf + p - 1, r->len, r->off);
        if (got != (ssize_t)r->len || self->buf[p - 1] != '{')
            return weft_error("outbox %s: record %" PRId64 " changed on disk; is another "
                              "process writing this spool?",
                              self->path, r->seq);
        memcpy(self->buf, pre, (size_t)p);
        int rc = wire_send_raw(self->dealer, NULL, 0, r->cmd, self->buf, total, ZMQ_DONTWAIT);
        if (rc == WIRE_AGAIN) return 0;
        if (rc != 0) return -1;
        if (self->cursor == self->head) self->progress_at = weft_clock();
        self->st.sent++;
        if (r->seq <= self->max_sent)
            self->st.resent++;
        else
            self->max_sent = r->seq;
        self->cursor++;
    }
    return 0;
}

int64_t outbox_post(outbox_t *self, wire_cmd_t cmd, const json_t *body)
{
    if (wire_cmd_senders(cmd) != WIRE_FROM_WORKER || cmd == WIRE_HEARTBEAT)
        return weft_error("outbox: %s is not a worker message that is stored",
                          wire_cmd_name(cmd) ? wire_cmd_name(cmd) : "?");
    if (!json_is_object(body))
        return weft_error("outbox: the %s body must be a JSON object", wire_cmd_name(cmd));
    json_t *b = json_deep_copy(body);
    if (!b) return weft_error("outbox: out of memory");
    int64_t seq = self->next_seq;
    json_object_del(b, "acked");
    json_object_set_new(b, "run", json_string(self->run));
    json_object_set_new(b, "attempt", json_integer(self->attempt));
    json_object_set_new(b, "seq", json_integer(seq));
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (!text) return weft_error("outbox: cannot serialise a %s body", wire_cmd_name(cmd));
    size_t jlen = strlen(text);
    if (jlen + 40 > WIRE_MAX_JSON) {
        free(text);
        return weft_error("outbox: a %s body of %zu bytes exceeds the message limit of %d",
                          wire_cmd_name(cmd), jlen, WIRE_MAX_JSON);
    }
    if (self->n == self->cap) {
        if (self->head > 0) {
            memmove(self->recs, self->recs + self->head,
                    (self->n - self->head) * sizeof *self->recs);
            self->n -= self->head;
            self->cursor -= self->head;
            self->head = 0;
        }
        if (self->n == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 256;
            rec_t *r = realloc(self->recs, cap * sizeof *r);
            if (!r) {
                free(text);
                return weft_error("outbox: out of memory");
            }
            self->recs = r;
            self->cap = cap;
        }
    }
    char pre[48];
    int p = snprintf(pre, sizeof pre, "M %" PRId64 " %s ", seq, wire_cmd_name(cmd));
    if (reserve(self, (size_t)p + jlen + 1) < 0) {
        free(text);
        return -1;
    }
    memcpy(self->buf, pre, (size_t)p);
    memcpy(self->buf + p, text, jlen);
    self->buf[p + jlen] = '\n';
    free(text);
    int durable = cmd == WIRE_CHECKPOINT || cmd == WIRE_DONE || cmd == WIRE_FAIL;
    if (write_all(self->fd, self->buf, (size_t)p + jlen + 1) < 0 ||
        (durable && fdatasync(self->fd) < 0)) {
        int e = errno;
        if (ftruncate(self->fd, self->size) < 0)
            weft_warn("outbox %s: cannot cut a partial record: %s", self->path, strerror(errno));
        return weft_error("outbox: appending to %s: %s", self->path, strerror(e));
    }
    self->recs[self->n++] = (rec_t){seq, self->size + p, (uint32_t)jlen, cmd};
    self->size += p + (int64_t)jlen + 1;
    self->next_seq++;
    if (flush(self) < 0) weft_warn("%s", weft_last_error());
    return seq;
}

int outbox_heartbeat(outbox_t *self, const json_t *body)
{
    /* A heartbeat queued while disconnected would arrive stale, and take a
     * place in the high-water mark that a stored message could use. */
    if (!self->dealer || !self->st.connected) return WIRE_AGAIN;
    json_t *b = body ? json_deep_copy(body) : json_object();
    if (!json_is_object(b)) {
        json_decref(b);
        return weft_error("outbox: the HEARTBEAT body must be a JSON object");
    }
    json_object_del(b, "seq");
    json_object_set_new(b, "run", json_string(self->run));
    json_object_set_new(b, "attempt", json_integer(self->attempt));
    json_object_set_new(b, "last_seq", json_integer(self->next_seq - 1));
    json_object_set_new(b, "acked", json_integer(self->acked));
    int rc = wire_send(self->dealer, NULL, 0, WIRE_HEARTBEAT, b, ZMQ_DONTWAIT);
    json_decref(b);
    return rc;
}

/* Rewrites the spool without its acknowledged records. A failure (disk full)
 * is a warning: the old spool stays valid and is tried again later. */
static void compact(outbox_t *self)
{
    /* A newer attempt that opened the same spool has renamed its own file
     * into place: this (stale) outbox must not replace it. */
    struct stat named, ours;
    if (self->superseded || stat(self->path, &named) < 0 || fstat(self->fd, &ours) < 0 ||
        named.st_ino != ours.st_ino || named.st_dev != ours.st_dev) {
        if (!self->superseded)
            weft_warn("outbox %s: the spool was replaced by another process (a newer attempt); "
                      "this one no longer compacts it",
                      self->path);
        self->superseded = 1;
        return;
    }
    size_t n = self->n - self->head, i;
    item_t *items = calloc(n ? n : 1, sizeof *items);
    int ok = items != NULL;
    for (i = 0; ok && i < n; i++) {
        rec_t *r = &self->recs[self->head + i];
        items[i] = (item_t){r->seq, r->cmd, malloc(r->len + 1), r->len};
        ok = items[i].json && pread(self->fd, items[i].json, r->len, r->off) == (ssize_t)r->len;
    }
    size_t sent = self->cursor - self->head;
    if (ok && write_spool(self, items, n, self->acked) == 0) {
        self->cursor = sent;
        self->st.compactions++;
    } else {
        weft_warn("outbox %s: compaction failed (%s); the spool keeps growing", self->path,
                  ok ? weft_last_error() : "out of memory or read error");
    }
    free_items(items, ok ? n : i);
}

static void on_ack(outbox_t *self, const wire_msg_t *m, double t)
{
    int64_t a;
    wire_get_int(m->body, "seq", &a);
    if (a >= self->next_seq) {
        weft_warn("outbox %s: the coordinator has seq %" PRId64 " of %s:%" PRId64
                  " but this spool ends at %" PRId64 "; numbering continues after it",
                  self->path, a, self->run, self->attempt, self->next_seq - 1);
        self->next_seq = a + 1;
    }
    if (a > self->acked) {
        while (self->head < self->n && self->recs[self->head].seq <= a) {
            self->head++;
            self->garbage++;
        }
        if (self->cursor < self->head) self->cursor = self->head;
        self->acked = a;
        self->progress_at = t;
        char line[32];
        int p = snprintf(line, sizeof line, "A %" PRId64 "\n", a);
        if (write_all(self->fd, line, (size_t)p) < 0)
            weft_warn("outbox: appending to %s: %s", self->path, strerror(errno));
        else
            self->size += p;
        if (self->garbage > 0 && self->garbage >= self->compact_every &&
            self->garbage >= (int64_t)(self->n - self->head))
            compact(self);
    }
    if (json_is_true(json_object_get(m->body, "rewind")) &&
        !(self->rewind_to == a + 1 && t - self->rewind_at < self->resend_ms * 1e-3)) {
        rewind_all(self, t);
        self->rewind_to = a + 1;
        self->rewind_at = t;
    }
}

static int read_events(outbox_t *self, double t)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            int e = zmq_errno();
            if (e == EAGAIN || e == EINTR) return 0;
            return weft_error("outbox: reading connection events: %s", zmq_strerror(e));
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= sizeof event) memcpy(&event, zmq_msg_data(&ev), sizeof event);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, self->monitor, 0);
            zmq_msg_close(&addr);
        }
        /* Whatever was in flight on a broken connection may be lost: after a
         * disconnect everything unacked goes again (duplicates are dropped
         * by seq at the coordinator). */
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->st.connected = 1;
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            self->st.connected = 0;
            rewind_all(self, t);
        }
    }
}

int outbox_pump(outbox_t *self, int timeout_ms, wire_msg_t **msg_p)
{
    *msg_p = NULL;
    if (!self->dealer) return 0;
    double deadline = weft_clock() + timeout_ms * 1e-3;
    const wire_rx_t rx = {.accept = WIRE_FROM_COORD, .max_json = WIRE_MAX_JSON};
    for (;;) {
        double t = weft_clock();
        if (read_events(self, t) < 0) return -1;
        for (;;) {
            wire_msg_t *m;
            wire_reject_t rej;
            int rc = wire_recv(self->dealer, &rx, ZMQ_DONTWAIT, &m, &rej);
            if (rc == WIRE_AGAIN) break;
            if (rc < 0) return -1;
            if (rc == WIRE_REJECTED) {
                self->st.rejected++;
                weft_warn("outbox %s: dropped a malformed message from the coordinator "
                          "(%s: %s)",
                          self->path, wire_reject_name(rej.code), rej.text);
                continue;
            }
            if (m->cmd == WIRE_ACK) {
                on_ack(self, m, t);
                wire_msg_destroy(&m);
                continue;
            }
            *msg_p = m;
            break;
        }
        if (self->cursor > self->head && t - self->progress_at > self->resend_ms * 1e-3)
            rewind_all(self, t);
        if (flush(self) < 0) {
            wire_msg_destroy(msg_p);
            return -1;
        }
        if (*msg_p) return 1;
        double left = deadline - weft_clock();
        if (left <= 0) return 0;
        zmq_pollitem_t items[2] = {{self->dealer, 0, ZMQ_POLLIN, 0},
                                   {self->monitor, 0, ZMQ_POLLIN, 0}};
        long ms = (long)(left * 1e3) + 1;
        if (ms > 100) ms = 100;
        if (zmq_poll(items, 2, ms) < 0 && zmq_errno() == EINTR) return 0;
    }
}

int outbox_sync(outbox_t *self)
{
    if (fdatasync(self->fd) < 0)
        return weft_error("outbox: fsync of %s: %s", self->path, strerror(errno));
    return 0;
}

outbox_stats_t outbox_stats(const outbox_t *self)
{
    outbox_stats_t s = self->st;
    s.last_seq = self->next_seq - 1;
    s.acked = self->acked;
    s.pending = (int64_t)(self->n - self->head);
    s.unsent = (int64_t)(self->n - self->cursor);
    return s;
}
