/* client.c: the `weft` client's connection to weftd: where it is (--home,
 * --endpoint, WEFT_HOME), a DEALER with CURVE keys over tcp, the handshake
 * and connection events a stream follows to outlive a restarted weftd, and
 * one request with its reply. */
#include "scheduler/client.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include <sysexits.h>

#define EXIT_UNAVAILABLE EX_UNAVAILABLE
#define REPLY_TIMEOUT_MS 30000

client_opts_t client_opts;

int client_home(char *out, size_t n)
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
    if (client_home(home, sizeof home) < 0) return -1;
    if (snprintf(out, n, "ipc://%s/weftd.sock", home) >= (int)n)
        return weft_error("home path too long for an ipc endpoint");
    if (access(out + 6, F_OK) < 0)
        return weft_error("no weftd on %s (no socket): start one with `weftd --home %s`", home,
                          home);
    return 0;
}

/* Opens a DEALER to weftd. With c->follow set, the connection's comings and
 * goings are watched too (conn_events), for streams that outlive a weftd. */
int conn_open(conn_t *c)
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

void conn_close(conn_t *c)
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
int conn_events(conn_t *c)
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
int conn_recv(conn_t *c, int timeout_ms, wire_msg_t **msg)
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
json_t *client_request(wire_cmd_t cmd, json_t *body)
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

int client_fail(void)
{
    weft_report();
    const char *e = weft_last_error();
    return strstr(e, "did not answer") || strstr(e, "no weftd") ? EXIT_UNAVAILABLE : 1;
}
