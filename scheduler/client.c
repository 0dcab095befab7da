/* client.c: the `weft` commands that talk to weftd: submit, ls, show, watch,
 * cancel, results, logs. Each sends one request over a DEALER and prints the
 * reply for people, or as JSON with --json. */
#include "common/clock.h"
#include "scheduler/client.h"
#include "common/auth.h"
#include "common/fsutil.h"
#include "jobs/spec.h"
#include "common/log.h"
#include "common/weft_cmds.h"
#include "common/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <sysexits.h>

#define EXIT_UNAVAILABLE EX_UNAVAILABLE
#define REPLY_TIMEOUT_MS 30000
/* A stream (watch, submit --wait) waits this long for a weftd that went
 * away to come back (ZeroMQ reconnects every 0.1 s growing to 2 s). */
#define AWAY_MAX_S 600

client_opts_t client_opts;

typedef struct {
    void *ctx, *sock;
    void *mon;           /* the socket's handshake (and, following, connection) events */
    char key_path[1024]; /* WEFT_KEY, to name in a refusal */
    char ep[PATH_MAX + 16];
    int follow;        /* a stream: watch connections come and go */
    int ups;           /* handshakes that succeeded */
    int down;          /* the connection is lost and not back yet */
    double down_since; /* monotonic seconds */
} conn_t;

static int home_path(char *out, size_t n)
{
    if (client_opts.home[0]) return snprintf(out, n, "%s", client_opts.home) < (int)n ? 0 : -1;
    const char *h = getenv("WEFT_HOME");
    if (h && *h) return snprintf(out, n, "%s", h) < (int)n ? 0 : -1;
    h = getenv("HOME");
    if (!h) return weft_error("no home: give --home DIR or set WEFT_HOME");
    return snprintf(out, n, "%s/.weft", h) < (int)n ? 0 : weft_error("home path too long");
}

static int endpoint(char *out, size_t n)
{
    if (client_opts.endpoint[0])
        return snprintf(out, n, "%s", client_opts.endpoint) < (int)n ? 0 : -1;
    char home[PATH_MAX];
    if (home_path(home, sizeof home) < 0) return -1;
    if (snprintf(out, n, "ipc://%s/weftd.sock", home) >= (int)n)
        return weft_error("home path too long for an ipc endpoint");
    if (access(out + 6, F_OK) < 0)
        return weft_error("no weftd on %s (no socket): start one with `weftd --home %s`", home,
                          home);
    return 0;
}

/* Opens a DEALER to weftd. With c->follow set, the connection's comings and
 * goings are watched too (conn_events), for streams that outlive a weftd. */
static int conn_open(conn_t *c)
{
    char *ep = c->ep;
    if (endpoint(ep, sizeof c->ep) < 0) return -1;
    wire_opts_t o = wire_opts_default();
    o.immediate = 0;
    /* A tcp endpoint takes CURVE keys (docs/PROTOCOL.md): this client's pair
     * in WEFT_KEY (weft keygen), weftd's public key in WEFT_SERVER_KEY. */
    auth_key_t key, server;
    const char *kp = getenv("WEFT_KEY"), *sp = getenv("WEFT_SERVER_KEY");
    if (!strncmp(ep, "tcp://", 6) && kp && *kp) {
        if (auth_key_read(kp, &key) < 0) return -1;
        if (!key.secret_key[0]) return weft_error("%s: WEFT_KEY names no secret key", kp);
        if (!sp || !*sp)
            return weft_error("WEFT_SERVER_KEY must name weftd's server.pub beside WEFT_KEY");
        if (auth_key_read(sp, &server) < 0) return -1;
        o.curve_server = server.public_key;
        o.curve_public = key.public_key;
        o.curve_secret = key.secret_key;
    }
    c->ctx = zmq_ctx_new();
    c->sock = wire_dealer_new(c->ctx, NULL, NULL, &o);
    if (!c->sock) {
        zmq_ctx_term(c->ctx);
        return -1;
    }
    /* A stream notices a vanished tcp peer by ZMTP heartbeats. */
    int ivl = 5000, ttl = 15000;
    if (c->follow && (zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) < 0 ||
                      zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl) < 0))
        weft_warn("no ZMTP heartbeats on %s: %s", ep, zmq_strerror(zmq_errno()));
    /* With CURVE, a refused key would otherwise look like a silent weftd:
     * watch the handshake (before connecting, so no event is missed). A
     * stream also watches the connection go and come back. */
    if (o.curve_server || c->follow) {
        char mon[64];
        snprintf(mon, sizeof mon, "inproc://weft-client-%p", (void *)c);
        snprintf(c->key_path, sizeof c->key_path, "%s", kp ? kp : "");
        int events = o.curve_server
                         ? ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                         : 0;
        if (c->follow) events |= ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
        if (zmq_socket_monitor(c->sock, mon, events) == 0 &&
            (c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) && zmq_connect(c->mon, mon) < 0) {
            zmq_close(c->mon);
            c->mon = NULL;
        }
    }
    if (zmq_connect(c->sock, ep) < 0) {
        weft_error("connecting to %s: %s", ep, zmq_strerror(zmq_errno()));
        if (c->mon) zmq_close(c->mon);
        zmq_close(c->sock);
        zmq_ctx_term(c->ctx);
        return -1;
    }
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->mon) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->mon);
    }
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
}

/* Reads the monitor's events: -1 with the reason when a CURVE handshake was
 * refused (or failed before any succeeded), else 0, with c->ups, c->down and
 * c->down_since brought up to date. */
static int conn_events(conn_t *c)
{
    int rc = 0;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
            return rc;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        if (zmq_msg_more(&ev)) zmq_msg_recv(&addr, c->mon, 0);
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (rc < 0) continue;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            rc = weft_error("weftd refused this client's key (%s, status %u): its .pub must be "
                            "in weftd's HOME/clients/ (weft keygen makes one)",
                            c->key_path, (unsigned)value);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            if (c->ups == 0)
                rc = weft_error("the CURVE handshake with weftd failed (is WEFT_SERVER_KEY "
                                "weftd's server.pub?)");
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            if (!c->down) c->down_since = weft_clock();
            c->down = 1;
        } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            c->ups++;
            c->down = 0;
        }
    }
}

/* Receives one message within timeout_ms (-1: forever). */
static int conn_recv(conn_t *c, int timeout_ms, wire_msg_t **msg)
{
    zmq_pollitem_t it[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(it, c->mon ? 2 : 1, timeout_ms) <= 0)
            return weft_error("weftd did not answer within %d s; is it running?",
                              timeout_ms / 1000);
        if (it[0].revents & ZMQ_POLLIN) break;
        if (conn_events(c) < 0) return -1;
    }
    wire_rx_t rx = {.accept = WIRE_FROM_COORD, .max_json = 64u << 20};
    wire_reject_t rej;
    int rc = wire_recv(c->sock, &rx, 0, msg, &rej);
    if (rc == WIRE_REJECTED) return weft_error("malformed reply from weftd: %s", rej.text);
    return rc == 0 ? 0 : -1;
}

/* One request, one reply. An ERROR reply becomes weft_error and -1. */
static json_t *request(wire_cmd_t cmd, json_t *body)
{
    conn_t c = {0};
    json_t *out = NULL;
    if (conn_open(&c) == 0) {
        if (wire_send(c.sock, NULL, 0, cmd, body, 0) == 0) {
            wire_msg_t *m = NULL;
            if (conn_recv(&c, REPLY_TIMEOUT_MS, &m) == 0) {
                if (m->cmd == WIRE_ERROR) {
                    const char *msg = wire_get_str(m->body, "message");
                    weft_error("%s", msg ? msg : "weftd refused the request");
                    json_t *probs = json_object_get(m->body, "problems");
                    size_t i;
                    json_t *p;
                    json_array_foreach(probs, i, p) fprintf(stderr, "%s\n", json_string_value(p));
                } else {
                    out = json_incref(m->body);
                }
                wire_msg_destroy(&m);
            }
        }
        conn_close(&c);
    }
    json_decref(body);
    return out;
}

static int fail(void)
{
    weft_report();
    const char *e = weft_last_error();
    return strstr(e, "did not answer") || strstr(e, "no weftd") ? EXIT_UNAVAILABLE : 1;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s) puts(s);
    free(s);
}

static const char *num(const json_t *v, char *buf, size_t n, const char *fmt)
{
    if (!json_is_number(v)) return "-";
    snprintf(buf, n, fmt, json_number_value(v));
    return buf;
}

/* ---- watch ---- */

typedef struct {
    int64_t id;
    char name[128];
    int64_t step, steps;
    double loss, val, tps, elapsed;
    char state[16];
    int ended;
    int64_t last_event; /* the last event id seen: a resumed stream starts after it */
    double retry_at;    /* monotonic seconds: WATCH again then (0: no) */
} progress_t;

static void draw(const progress_t *p, int tty)
{
    char eta[32] = "-";
    if (p->steps > 0 && p->step > 0 && p->elapsed > 0 && p->step < p->steps) {
        double left = p->elapsed / (double)p->step * (double)(p->steps - p->step);
        snprintf(eta, sizeof eta, "%dm%02ds", (int)left / 60, (int)left % 60);
    }
    char bar[23] = "";
    int fill = p->steps > 0 ? (int)(20 * p->step / p->steps) : 0;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    char loss[32], val[32], tps[32];
    snprintf(loss, sizeof loss, isnan(p->loss) ? "-" : "%.4f", p->loss);
    snprintf(val, sizeof val, isnan(p->val) ? "-" : "%.4f", p->val);
    snprintf(tps, sizeof tps, "%.0f", p->tps);
    printf("%s%-16s [%s] %6lld/%-6lld loss %-8s val %-8s %6s tok/s  eta %-7s %s%s",
           tty ? "\r\033[K" : "", p->name, bar, (long long)p->step, (long long)p->steps, loss, val,
           tps, eta, p->state, tty ? "" : "\n");
    fflush(stdout);
}

/* Asks weftd for job p's events after the last one seen. "req" carries the
 * job id, so that an ERROR names the stream it is about. */
static void send_watch(conn_t *c, progress_t *p)
{
    json_t *w = json_pack("{s:I, s:I, s:I}", "id", (json_int_t)p->id, "from",
                          (json_int_t)p->last_event, "req", (json_int_t)p->id);
    wire_send(c->sock, NULL, 0, WIRE_WATCH, w, 0);
    json_decref(w);
    p->retry_at = 0;
}

/* Follows jobs until each has ended; returns how many did not succeed.
 * weftd may restart meanwhile: ZeroMQ reconnects (every 0.1 s, backing off
 * to 2 s), and each stream is asked again from the last event seen, so no
 * event is shown twice or missed. */
static int watch_jobs(const int64_t *ids, int n, int json)
{
    conn_t c = {.follow = 1};
    if (conn_open(&c) < 0) return -1;
    progress_t *ps = calloc((size_t)n, sizeof *ps);
    for (int i = 0; i < n; i++) {
        ps[i].id = ids[i];
        ps[i].loss = ps[i].val = NAN;
        snprintf(ps[i].name, sizeof ps[i].name, "job %lld", (long long)ids[i]);
        json_t *st = request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)ids[i]));
        if (st) {
            snprintf(ps[i].name, sizeof ps[i].name, "%s", wire_get_str(st, "name"));
            snprintf(ps[i].state, sizeof ps[i].state, "%s", wire_get_str(st, "state"));
            json_decref(st);
        }
        send_watch(&c, &ps[i]);
    }
    int tty = isatty(1) && !json, open = n, bad = 0, drawn = 0, ups = 0, told = 0;
    while (open > 0) {
        zmq_pollitem_t it[2] = {{c.sock, 0, ZMQ_POLLIN, 0}, {c.mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, c.mon ? 2 : 1, 1000) < 0 && zmq_errno() != EINTR) {
            bad = weft_error("waiting for weftd: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (c.mon && (it[1].revents & ZMQ_POLLIN) && conn_events(&c) < 0) {
            bad = -1;
            break;
        }
        if (c.down && !told) {
            fprintf(stderr, "weft: lost the connection to weftd (%s); reconnecting\n", c.ep);
            told = 1;
        }
        if (c.down && weft_clock() - c.down_since > AWAY_MAX_S) {
            bad = weft_error("weftd at %s went away %d s ago and has not come back; its jobs "
                             "go on: watch them again once it is back",
                             c.ep, AWAY_MAX_S);
            break;
        }
        if (c.ups > ups) {
            /* A new connection (a restarted weftd knows no watchers): ask
             * again for every open stream, from the last event seen. */
            for (int k = 0; ups > 0 && k < n; k++)
                if (!ps[k].ended) send_watch(&c, &ps[k]);
            if (ups > 0 && told) fprintf(stderr, "weft: reconnected to weftd; resuming\n");
            ups = c.ups;
            told = 0;
        }
        for (int k = 0; k < n; k++)
            if (!ps[k].ended && ps[k].retry_at > 0 && weft_clock() >= ps[k].retry_at)
                send_watch(&c, &ps[k]);
        if (!(it[0].revents & ZMQ_POLLIN)) continue;
        wire_msg_t *m = NULL;
        wire_rx_t rx = {.accept = WIRE_FROM_COORD, .max_json = 64u << 20};
        wire_reject_t rej;
        int rc = wire_recv(c.sock, &rx, ZMQ_DONTWAIT, &m, &rej);
        if (rc == WIRE_AGAIN) continue;
        if (rc != 0) {
            bad =
                rc == WIRE_REJECTED ? weft_error("malformed message from weftd: %s", rej.text) : -1;
            break;
        }
        if (m->cmd == WIRE_ERROR) {
            /* After a reconnection the old weftd's streams may still count
             * against this client's limit until it notices they are gone. */
            const char *kind = wire_get_str(m->body, "error");
            int64_t about = 0;
            wire_get_int(m->body, "req", &about);
            int k = 0;
            while (k < n && ps[k].id != about) k++;
            if (ups > 1 && k < n && kind && !strcmp(kind, "limit")) {
                ps[k].retry_at = weft_clock() + 1;
                wire_msg_destroy(&m);
                continue;
            }
            weft_error("%s", wire_get_str(m->body, "message"));
            wire_msg_destroy(&m);
            bad = -1;
            break;
        }
        if (m->cmd != WIRE_EVENT) {
            wire_msg_destroy(&m);
            continue;
        }
        int64_t job = 0;
        wire_get_int(m->body, "job", &job);
        int k = 0;
        while (k < n && ps[k].id != job) k++;
        int64_t event = 0;
        int is_end = json_is_true(json_object_get(m->body, "end"));
        if (k < n && !is_end && wire_get_int(m->body, "event", &event) == 0) {
            if (event <= ps[k].last_event)
                k = n; /* seen before a reconnection */
            else
                ps[k].last_event = event;
        }
        if (k == n || ps[k].ended) {
            wire_msg_destroy(&m);
            continue;
        }
        if (json) {
            print_json(m->body); /* a stream: each event as it comes */
            fflush(stdout);
        }
        progress_t *p = &ps[k];
        const json_t *d = json_object_get(m->body, "data");
        char kind_buf[16] = "";
        if (wire_get_str(m->body, "kind"))
            snprintf(kind_buf, sizeof kind_buf, "%s", wire_get_str(m->body, "kind"));
        const char *kind = kind_buf[0] ? kind_buf : NULL; /* outlives the message */
        if (is_end) {
            snprintf(p->state, sizeof p->state, "%s", wire_get_str(m->body, "state"));
            p->ended = 1;
            open--;
            /* a trial stopped early by its sweep's rule ended as meant */
            if (strcmp(p->state, "succeeded") && strcmp(p->state, "stopped")) bad++;
        } else if (kind && !strcmp(kind, "state")) {
            const char *s = wire_get_str(d, "state");
            if (s) snprintf(p->state, sizeof p->state, "%s", s);
        } else if (kind && !strcmp(kind, "train")) {
            json_int_t v;
            if (!json_unpack((json_t *)d, "{s:I}", "step", &v)) p->step = v;
            if (!json_unpack((json_t *)d, "{s:I}", "steps", &v)) p->steps = v;
            json_t *x;
            if ((x = json_object_get(d, "loss")) && json_is_number(x))
                p->loss = json_number_value(x);
            if ((x = json_object_get(d, "tokens_per_s")) && json_is_number(x))
                p->tps = json_number_value(x);
            if ((x = json_object_get(d, "elapsed")) && json_is_number(x))
                p->elapsed = json_number_value(x);
        } else if (kind && !strcmp(kind, "eval")) {
            json_t *x = json_object_get(d, "val_loss");
            if (json_is_number(x)) p->val = json_number_value(x);
        }
        wire_msg_destroy(&m);
        if (json) continue;
        if (tty) {
            /* One line per job, redrawn in place. */
            if (drawn) printf("\033[%dA", n);
            for (int q = 0; q < n; q++) {
                draw(&ps[q], 1);
                printf("\n");
            }
            drawn = 1;
        } else if (p->ended || (kind && strcmp(kind, "train")) ||
                   (p->steps > 0 && (p->step % (p->steps / 10 > 0 ? p->steps / 10 : 1) == 0))) {
            /* Plain lines: state changes, evaluations, every tenth of the way. */
            draw(p, 0);
        }
    }
    free(ps);
    conn_close(&c);
    return bad;
}

/* ---- commands ---- */

/* `weft COMMAND --help` (or -h) among the arguments: the usage on stdout. */
static int asked_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 1;
        }
    return 0;
}

static const char usage_show[] = "usage: weft show ID [--json]\n";
static const char usage_watch[] = "usage: weft watch ID... [--json]\n";
static const char usage_cancel[] = "usage: weft cancel ID...\n";
static const char usage_results[] =
    "usage: weft results ID [--submission] [--csv|--json]\n"
    "  ID is a job id (its whole submission is listed), or a submission id with --submission;\n"
    "  ranked by best val loss, failed and cancelled jobs last\n";
static const char usage_logs[] = "usage: weft logs ID\n"
                                 "  the worker logs of job ID's run, every attempt\n";
static const char usage_plot[] =
    "usage: weft plot ID -o FILE.png\n"
    "  every job of ID's submission: training and validation loss by step\n"
    "  (a CSV beside FILE when gnuplot is missing)\n";

static int parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '-' && (s[1] < '0' || s[1] > '9'))
        return weft_error("unknown option '%s'; see the command's --help", s);
    if (errno || *end || v <= 0) return weft_error("'%s' is not a job id", s);
    *id = v;
    return 0;
}

int cmd_submit(int argc, char **argv)
{
    int wait = 0, json = 0, priority = 0;
    static const struct option o[] = {{"wait", no_argument, 0, 'w'},
                                      {"json", no_argument, 0, 'j'},
                                      {"priority", required_argument, 0, 'p'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'w')
            wait = 1;
        else if (c == 'j')
            json = 1;
        else if (c == 'p')
            priority = atoi(optarg);
        else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: weft submit JOB.cfg [--wait] [--priority N] [--json]\n");
            return c == 'h' ? 0 : EX_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: weft submit JOB.cfg [--wait] [--priority N] [--json]\n");
        return EX_USAGE;
    }
    const char *path = argv[optind];
    size_t len;
    char *text = weft_read_file(path, 1u << 20, &len);
    if (!text) return fail();
    char bad[1024];
    if (!spec_text_utf8(text, len, path, bad, sizeof bad)) {
        fprintf(stderr, "%s\n", bad);
        free(text);
        return EX_CONFIG;
    }
    char *abs = realpath(path, NULL);
    char folder[PATH_MAX];
    weft_dirname(abs ? abs : path, folder, sizeof folder);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    json_t *body = json_pack("{s:s, s:s, s:s, s:i}", "spec", text, "folder", folder, "file", base,
                             "priority", priority);
    free(abs);
    free(text);
    if (!body) {
        fprintf(stderr,
                "weft: cannot submit %s: its file or folder name is not UTF-8; rename it\n",
                path);
        return EX_CONFIG;
    }
    json_t *r = request(WIRE_SUBMIT, body);
    if (!r) return fail();
    json_t *jobs = json_object_get(r, "jobs");
    size_t n = json_array_size(jobs);
    if (json) {
        print_json(r);
    } else {
        printf("submitted %s as submission %lld: %zu job(s)\n", wire_get_str(r, "name"),
               (long long)json_integer_value(json_object_get(r, "submission")), n);
        size_t i;
        json_t *j;
        json_array_foreach(jobs, i, j)
            printf("  %lld  %s\n", (long long)json_integer_value(json_object_get(j, "id")),
                   wire_get_str(j, "name"));
    }
    int rc = 0;
    if (wait && n > 0) {
        int64_t *ids = calloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = json_integer_value(json_object_get(json_array_get(jobs, i), "id"));
        int bad = watch_jobs(ids, (int)n, json);
        free(ids);
        rc = bad < 0 ? fail() : bad > 0 ? 1 : 0;
    }
    json_decref(r);
    return rc;
}

static void print_job_line(const json_t *j)
{
    char when[32] = "";
    time_t t = (time_t)json_number_value(json_object_get(j, "submitted"));
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&t));
    printf("%-8lld %-24s %-10s %-5s %-6lld %s\n",
           (long long)json_integer_value(json_object_get(j, "id")), wire_get_str(j, "name"),
           wire_get_str(j, "state"), wire_get_str(j, "mode"),
           (long long)json_integer_value(json_object_get(j, "submission")), when);
}

int cmd_ls(int argc, char **argv)
{
    int json = 0;
    json_t *body = json_object();
    static const struct option o[] = {{"state", required_argument, 0, 's'},
                                      {"name", required_argument, 0, 'n'},
                                      {"submission", required_argument, 0, 'S'},
                                      {"before", required_argument, 0, 'b'},
                                      {"limit", required_argument, 0, 'l'},
                                      {"json", no_argument, 0, 'j'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 's':
            json_object_set_new(body, "state", json_string(optarg));
            break;
        case 'n':
            json_object_set_new(body, "name", json_string(optarg));
            break;
        case 'S':
            json_object_set_new(body, "submission", json_integer(atoll(optarg)));
            break;
        case 'b':
            json_object_set_new(body, "before", json_integer(atoll(optarg)));
            break;
        case 'l':
            json_object_set_new(body, "limit", json_integer(atoll(optarg)));
            break;
        case 'j':
            json = 1;
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: weft ls [--state S] [--name N] [--submission ID] [--before ID] "
                    "[--limit N] [--json]\n");
            json_decref(body);
            return c == 'h' ? 0 : EX_USAGE;
        }
    }
    json_t *r = request(WIRE_LIST, body);
    if (!r) return fail();
    if (json) {
        print_json(r);
    } else {
        printf("%-8s %-24s %-10s %-5s %-6s %s\n", "ID", "NAME", "STATE", "MODE", "SUBM",
               "SUBMITTED");
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r, "jobs"), i, j) print_job_line(j);
        if (json_object_get(r, "before"))
            printf("(more: weft ls --before %lld)\n",
                   (long long)json_integer_value(json_object_get(r, "before")));
    }
    json_decref(r);
    return 0;
}

int cmd_show(int argc, char **argv)
{
    int json = argc > 2 && !strcmp(argv[2], "--json");
    int64_t id;
    if (asked_help(argc, argv, usage_show)) return 0;
    if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
        fputs(usage_show, stderr);
        return EX_USAGE;
    }
    if (parse_id(argv[1], &id) < 0) return fail();
    json_t *r = request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return fail();
    if (json) {
        print_json(r);
    } else {
        char b1[32], b2[32];
        printf("job %lld  %s  (%s, submission %lld)\n", (long long)id, wire_get_str(r, "name"),
               wire_get_str(r, "mode"),
               (long long)json_integer_value(json_object_get(r, "submission")));
        printf("  state     %s\n", wire_get_str(r, "state"));
        if (json_integer_value(json_object_get(r, "run")) > 0)
            printf("  run       %lld, attempt %lld (%s)\n",
                   (long long)json_integer_value(json_object_get(r, "run")),
                   (long long)json_integer_value(json_object_get(r, "attempt")),
                   wire_get_str(r, "run_state") ? wire_get_str(r, "run_state") : "-");
        if (json_is_true(json_object_get(r, "admitted")))
            printf("  admitted  into run %lld while its pack trained\n",
                   (long long)json_integer_value(json_object_get(r, "run")));
        printf("  step      %lld\n", (long long)json_integer_value(json_object_get(r, "step")));
        printf("  loss      %s\n", num(json_object_get(r, "loss"), b1, sizeof b1, "%.4f"));
        printf("  best val  %s\n", num(json_object_get(r, "best_val_loss"), b2, sizeof b2, "%.4f"));
        if (wire_get_str(r, "error")) printf("  error     %s\n", wire_get_str(r, "error"));
        char *p = json_dumps(json_object_get(r, "params"), JSON_COMPACT | JSON_SORT_KEYS);
        if (p && strcmp(p, "{}")) printf("  params    %s\n", p);
        free(p);
    }
    json_decref(r);
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    int json = 0, n = 0;
    if (asked_help(argc, argv, usage_watch)) return 0;
    int64_t *ids = calloc((size_t)argc, sizeof *ids);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (parse_id(argv[i], &ids[n]) == 0) {
            n++;
        } else {
            free(ids);
            return fail();
        }
    }
    if (n == 0) {
        free(ids);
        fputs(usage_watch, stderr);
        return EX_USAGE;
    }
    int bad = watch_jobs(ids, n, json);
    free(ids);
    return bad < 0 ? fail() : bad > 0 ? 1 : 0;
}

/* weftd takes at most this many ids in one CANCEL (docs/PROTOCOL.md). */
#define CANCEL_BATCH 1000

int cmd_cancel(int argc, char **argv)
{
    if (asked_help(argc, argv, usage_cancel)) return 0;
    if (argc < 2) {
        fputs(usage_cancel, stderr);
        return EX_USAGE;
    }
    /* Every id is checked before any is sent. */
    for (int i = 1; i < argc; i++) {
        int64_t id;
        if (parse_id(argv[i], &id) < 0) return fail();
    }
    int rc = 0;
    for (int first = 1; first < argc; first += CANCEL_BATCH) {
        json_t *ids = json_array();
        for (int i = first; i < argc && i < first + CANCEL_BATCH; i++)
            json_array_append_new(ids, json_integer(strtoll(argv[i], NULL, 10)));
        json_t *r = request(WIRE_CANCEL, json_pack("{s:o}", "ids", ids));
        if (!r) return fail();
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(r, "jobs"), i, j)
        {
            const char *err = wire_get_str(j, "error");
            if (err) rc = 1;
            printf("%lld: %s\n", (long long)json_integer_value(json_object_get(j, "id")),
                   err ? err : wire_get_str(j, "state"));
        }
        json_decref(r);
    }
    return rc;
}

int cmd_results(int argc, char **argv)
{
    int json = 0, csv = 0;
    int64_t id = 0;
    int by_sub = 0;
    if (asked_help(argc, argv, usage_results)) return 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--csv"))
            csv = 1;
        else if (!strcmp(argv[i], "--submission"))
            by_sub = 1;
        else if (parse_id(argv[i], &id) < 0)
            return fail();
    }
    if (!id) {
        fputs(usage_results, stderr);
        return EX_USAGE;
    }
    json_t *r =
        request(WIRE_RESULTS, json_pack("{s:I}", by_sub ? "submission" : "id", (json_int_t)id));
    if (!r) return fail();
    json_t *jobs = json_object_get(r, "jobs");
    if (json) {
        print_json(r);
        json_decref(r);
        return 0;
    }
    /* The swept settings, as extra columns. */
    const char *keys[32];
    int nk = 0;
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "params"), k, v)
        {
            int seen = 0;
            for (int q = 0; q < nk; q++) seen |= !strcmp(keys[q], k);
            if (!seen && nk < 32) keys[nk++] = k;
        }
    }
    if (csv) {
        printf(
            "rank,id,name,state,first_val_loss,best_val_loss,best_val_step,rung,loss,step,tokens");
        for (int q = 0; q < nk; q++) printf(",%s", keys[q]);
        printf("\n");
    } else {
        printf("%-4s %-8s %-20s %-10s %-9s %-9s %-7s %-4s %-9s %-7s %-10s", "#", "ID", "NAME",
               "STATE", "FIRST_VAL", "BEST_VAL", "BEST_AT", "RUNG", "LOSS", "STEP", "TOKENS");
        for (int q = 0; q < nk; q++) printf(" %-12s", keys[q]);
        printf("\n");
    }
    json_array_foreach(jobs, i, j)
    {
        char b0[32], b1[32], b2[32];
        const char *fv = num(json_object_get(j, "first_val_loss"), b0, sizeof b0, "%.4f");
        const char *bv = num(json_object_get(j, "best_val_loss"), b1, sizeof b1, "%.4f");
        const char *lv = num(json_object_get(j, "loss"), b2, sizeof b2, "%.4f");
        long long jid = (long long)json_integer_value(json_object_get(j, "id"));
        long long step = (long long)json_integer_value(json_object_get(j, "step"));
        long long tok = (long long)json_integer_value(json_object_get(j, "tokens"));
        /* where the best validation loss came from, and the highest
         * early-stopping rung reached ("3*": stopped there) */
        char at[24] = "-", rung[24] = "-";
        if (json_is_integer(json_object_get(j, "best_val_step")))
            snprintf(at, sizeof at, "%lld",
                     (long long)json_integer_value(json_object_get(j, "best_val_step")));
        if (json_is_integer(json_object_get(j, "rung")))
            snprintf(rung, sizeof rung, "%lld%s",
                     (long long)json_integer_value(json_object_get(j, "rung")),
                     json_is_true(json_object_get(j, "stopped_at_rung")) ? "*" : "");
        if (csv)
            printf("%zu,%lld,%s,%s,%s,%s,%s,%s,%s,%lld,%lld", i + 1, jid, wire_get_str(j, "name"),
                   wire_get_str(j, "state"), *fv == '-' ? "" : fv, *bv == '-' ? "" : bv,
                   *at == '-' ? "" : at, *rung == '-' ? "" : rung, *lv == '-' ? "" : lv, step, tok);
        else
            printf("%-4zu %-8lld %-20s %-10s %-9s %-9s %-7s %-4s %-9s %-7lld %-10lld", i + 1, jid,
                   wire_get_str(j, "name"), wire_get_str(j, "state"), fv, bv, at, rung, lv, step,
                   tok);
        for (int q = 0; q < nk; q++) {
            const char *v = wire_get_str(json_object_get(j, "params"), keys[q]);
            printf(csv ? ",%s" : " %-12s", v ? v : "");
        }
        printf("\n");
    }
    /* Where each finished job's result is, and its PEFT copy. */
    json_array_foreach(jobs, i, j)
    {
        const char *out = wire_get_str(j, "output"), *peft = wire_get_str(j, "peft");
        if (csv || !out) continue;
        printf("%lld %s: %s", (long long)json_integer_value(json_object_get(j, "id")),
               wire_get_str(j, "name"), out);
        if (peft) printf("  PEFT: %s", peft);
        if (!json_object_get(j, "published") && json_object_get(j, "best_step"))
            printf("  (step %lld)", (long long)json_integer_value(json_object_get(j, "best_step")));
        printf("\n");
        json_t *pv = json_object_get(j, "published");
        if (pv) {
            char b0[32], b1[32];
            const char *nv = num(json_object_get(pv, "val_loss"), b0, sizeof b0, "%.4f");
            const char *ov = num(json_object_get(pv, "baseline_val_loss"), b1, sizeof b1, "%.4f");
            printf("    v%lld from step %lld: val_loss %s, current version's %s: %s (current: v%lld)\n",
                   (long long)json_integer_value(json_object_get(pv, "version")),
                   (long long)json_integer_value(json_object_get(pv, "best_step")), nv, ov,
                   json_is_true(json_object_get(pv, "promoted")) ? "promoted" : "not promoted",
                   (long long)json_integer_value(json_object_get(pv, "current")));
        }
    }
    json_decref(r);
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    int64_t id;
    if (asked_help(argc, argv, usage_logs)) return 0;
    if (argc != 2) {
        fputs(usage_logs, stderr);
        return EX_USAGE;
    }
    if (parse_id(argv[1], &id) < 0) return fail();
    json_t *r = request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return fail();
    int64_t run = json_integer_value(json_object_get(r, "run"));
    int attempts = (int)json_integer_value(json_object_get(r, "attempt"));
    if (run <= 0) {
        /* it may have ended before a run, its data refused while sharding */
        const char *state = wire_get_str(r, "state"), *err = wire_get_str(r, "error");
        if (err)
            printf("job %lld never ran: %s: %s\n", (long long)id, state ? state : "?", err);
        else
            printf("job %lld has not run yet (%s)\n", (long long)id, state ? state : "?");
        json_decref(r);
        return 0;
    }
    json_decref(r);
    char home[PATH_MAX];
    if (home_path(home, sizeof home) < 0) return fail();
    for (int a = 1; a <= attempts; a++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/runs/%lld/attempt-%d.log", home, (long long)run, a);
        char *text = weft_read_file(path, 64u << 20, NULL);
        printf("==> run %lld attempt %d (%s) <==\n", (long long)run, a, path);
        if (text)
            fputs(text, stdout);
        else
            printf("(%s)\n", weft_last_error());
        free(text);
    }
    return 0;
}

/* ---- plot ---- */

/* Every train and eval metric of one job, through WATCH from the start,
 * appended to csv as "name,kind,step,value". Ends at the job's end event, or
 * after a quiet second for a job still running. */
static int collect_metrics(int64_t id, const char *name, FILE *csv, FILE *train, FILE *eval)
{
    conn_t c = {0};
    if (conn_open(&c) < 0) return -1;
    json_t *w = json_pack("{s:I, s:I}", "id", (json_int_t)id, "from", (json_int_t)0);
    int rc = wire_send(c.sock, NULL, 0, WIRE_WATCH, w, 0);
    json_decref(w);
    while (rc == 0) {
        wire_msg_t *m = NULL;
        zmq_pollitem_t it = {c.sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 1000) <= 0 || conn_recv(&c, 1000, &m) < 0) break;
        if (m->cmd == WIRE_ERROR) {
            rc = weft_error("%s", wire_get_str(m->body, "message"));
        } else if (m->cmd == WIRE_EVENT) {
            if (json_is_true(json_object_get(m->body, "end"))) {
                wire_msg_destroy(&m);
                break;
            }
            const char *kind = wire_get_str(m->body, "kind");
            const json_t *d = json_object_get(m->body, "data");
            json_t *step = json_object_get(d, "step");
            json_t *v = json_object_get(d, kind && !strcmp(kind, "eval") ? "val_loss" : "loss");
            if (kind && (!strcmp(kind, "train") || !strcmp(kind, "eval")) &&
                json_is_integer(step) && json_is_number(v)) {
                long long st = (long long)json_integer_value(step);
                fprintf(csv, "%s,%s,%lld,%.6f\n", name, kind, st, json_number_value(v));
                fprintf(strcmp(kind, "eval") ? train : eval, "%lld %.6f\n", st,
                        json_number_value(v));
            }
        }
        wire_msg_destroy(&m);
    }
    conn_close(&c);
    return rc;
}

/* Writes s inside a gnuplot single-quoted string: a quote doubled, a
 * line break as a space (a script line ends at one). */
static void gnuplot_quoted(FILE *g, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\'')
            fputs("''", g);
        else
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, g);
    }
}

/* Runs gnuplot on script (fed on its standard input) with the picture at
 * out on its descriptor 3 and the data file dat on its descriptor 4,
 * through posix_spawnp: no shell. 0 done, 1 gnuplot not installed, -1 an
 * error (weft_error set). */
static int run_gnuplot(const char *script, size_t len, const char *out, const char *dat)
{
    int png = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (png < 0) return weft_error("cannot write: %s", strerror(errno));
    int data = open(dat, O_RDONLY | O_CLOEXEC);
    int in[2] = {-1, -1};
    if (data < 0 || pipe2(in, O_CLOEXEC) < 0) {
        int e = errno;
        close(png);
        if (data >= 0) close(data);
        return weft_error("cannot run gnuplot: %s", strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, png, 3);
    posix_spawn_file_actions_adddup2(&fa, data, 4);
    char *argv[] = {"gnuplot", NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(png);
    close(data);
    if (e) {
        close(in[1]);
        if (e == ENOENT) {
            unlink(out);
            return 1;
        }
        return weft_error("cannot run gnuplot: %s", strerror(e));
    }
    /* gnuplot may exit before reading everything: a write error is not ours */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(in[1], script + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    close(in[1]);
    sigaction(SIGPIPE, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return weft_error("waiting for gnuplot: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return weft_error("gnuplot failed (exit %d)",
                          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

int cmd_plot(int argc, char **argv)
{
    const char *out = NULL;
    int64_t id = 0;
    if (asked_help(argc, argv, usage_plot)) return 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (parse_id(argv[i], &id) < 0)
            return fail();
    }
    if (!id || !out) {
        fputs(usage_plot, stderr);
        return EX_USAGE;
    }
    json_t *r = request(WIRE_RESULTS, json_pack("{s:I}", "id", (json_int_t)id));
    if (!r) return fail();
    char csvpath[PATH_MAX];
    const char *dot = strrchr(out, '.');
    int base = dot && !strchr(dot, '/') ? (int)(dot - out) : (int)strlen(out);
    snprintf(csvpath, sizeof csvpath, "%.*s.csv", base, out);
    FILE *csv = fopen(csvpath, "w");
    if (!csv) {
        json_decref(r);
        weft_error("%s: cannot write: %s", csvpath, strerror(errno));
        return fail();
    }
    fprintf(csv, "name,kind,step,value\n");
    size_t i;
    json_t *j;
    json_t *jobs = json_object_get(r, "jobs");
    /* gnuplot's data: per job one block of train rows, one of eval rows. */
    char dat[PATH_MAX + 8];
    snprintf(dat, sizeof dat, "%.*s.dat", base, out);
    FILE *d = fopen(dat, "w");
    int bad = !d;
    json_array_foreach(jobs, i, j)
    {
        char *tb = NULL, *eb = NULL;
        size_t tn = 0, en = 0;
        FILE *tf = open_memstream(&tb, &tn), *ef = open_memstream(&eb, &en);
        if (!bad && collect_metrics(json_integer_value(json_object_get(j, "id")),
                                    wire_get_str(j, "name"), csv, tf, ef) < 0)
            bad = 1;
        fclose(tf);
        fclose(ef);
        /* A third block: where a trial stopped early (its last evaluation). */
        char stop[96] = "0 NaN\n";
        const char *st = wire_get_str(j, "state");
        if (en && st && !strcmp(st, "stopped")) {
            const char *last = eb + en - 1;
            while (last > eb && last[-1] != '\n') last--;
            snprintf(stop, sizeof stop, "%s", last);
            long long sstep;
            double sval;
            if (sscanf(stop, "%lld %lf", &sstep, &sval) == 2)
                fprintf(csv, "%s,stopped,%lld,%.9g\n", wire_get_str(j, "name"), sstep, sval);
        }
        if (d)
            fprintf(d, "%s%s\n\n%s%s\n\n%s\n\n", tn ? tb : "", tn ? "" : "0 NaN\n", en ? eb : "",
                    en ? "" : "0 NaN\n", stop);
        free(tb);
        free(eb);
    }
    fclose(csv);
    if (d) fclose(d);
    if (bad) {
        json_decref(r);
        return fail();
    }
    /* gnuplot never sees a path: it writes the picture to its descriptor 3
     * and reads the data from its descriptor 4, both opened here, and takes
     * the script on a pipe. No shell runs, so no file name can become a
     * command, whatever it holds (quotes, $(...), spaces, newlines). */
    char *script = NULL;
    size_t script_len = 0;
    FILE *g = open_memstream(&script, &script_len);
    if (!g) {
        json_decref(r);
        weft_error("out of memory");
        return fail();
    }
    fprintf(g, "set terminal pngcairo size 1200,500 noenhanced font ',10'\n"
               "set output '/dev/fd/3'\nset key outside right\n"
               "set multiplot layout 1,2\nset xlabel 'step'\nset ylabel 'loss'\n");
    for (int panel = 0; panel < 2; panel++) {
        fprintf(g, "set title '%s'\nplot ", panel ? "validation loss" : "training loss");
        json_array_foreach(jobs, i, j)
        {
            fprintf(g, "%s'/dev/fd/4' index %zu using 1:2 with %s title '", i ? ", " : "",
                    3 * i + (size_t)panel, panel ? "linespoints" : "lines");
            gnuplot_quoted(g, wire_get_str(j, "name"));
            fputc('\'', g);
            if (panel) /* a cross where an early-stopped trial's curve ends */
                fprintf(g,
                        ", '/dev/fd/4' index %zu using 1:2 with points pt 2 ps 2 lc rgb "
                        "'black' notitle",
                        3 * i + 2);
        }
        fprintf(g, "\n");
    }
    fprintf(g, "unset multiplot\n");
    fclose(g);
    json_decref(r);
    int rc = run_gnuplot(script, script_len, out, dat);
    free(script);
    if (rc == 1) {
        printf("gnuplot is not installed (apt-get install gnuplot-nox): the curves are in %s\n",
               csvpath);
        return 0;
    }
    if (rc < 0) {
        weft_error_prefix("%s (the curves are in %s)", out, csvpath);
        return fail();
    }
    printf("wrote %s (data in %s)\n", out, csvpath);
    return 0;
}
