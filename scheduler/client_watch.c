/* client_watch.c: `weft watch` and `weft submit --wait`: WATCH streams of
 * jobs followed to their end, each job drawn as one progress line (redrawn
 * in place on a terminal), and asked again from the last event seen when
 * weftd comes back after a restart. */
#include "scheduler/client.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* A stream (watch, submit --wait) waits this long for a weftd that went
 * away to come back (ZeroMQ reconnects every 0.1 s growing to 2 s). */
#define AWAY_MAX_S 600

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
int client_watch(const int64_t *ids, int n, int json)
{
    conn_t c = {.follow = 1};
    if (conn_open(&c) < 0) return -1;
    progress_t *ps = calloc((size_t)n, sizeof *ps);
    for (int i = 0; i < n; i++) {
        ps[i].id = ids[i];
        ps[i].loss = ps[i].val = NAN;
        snprintf(ps[i].name, sizeof ps[i].name, "job %lld", (long long)ids[i]);
        json_t *st = client_request(WIRE_STATUS, json_pack("{s:I}", "id", (json_int_t)ids[i]));
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
            client_print_json(m->body); /* a stream: each event as it comes */
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
