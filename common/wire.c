/* wire.c: weft's ZeroMQ message layer (see wire.h and docs/PROTOCOL.md).
 * Every received message is read whole, then checked frame by frame; a bad
 * one becomes a reasoned rejection, never a crash or a partial read. */
#include "common/wire.h"

#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char *cmd_names[WIRE_CMD_COUNT] = {
    [WIRE_NONE] = NULL,
    [WIRE_SUBMIT] = "SUBMIT",
    [WIRE_STATUS] = "STATUS",
    [WIRE_LIST] = "LIST",
    [WIRE_CANCEL] = "CANCEL",
    [WIRE_WATCH] = "WATCH",
    [WIRE_RESULTS] = "RESULTS",
    [WIRE_HELLO] = "HELLO",
    [WIRE_HEARTBEAT] = "HEARTBEAT",
    [WIRE_METRIC] = "METRIC",
    [WIRE_CHECKPOINT] = "CHECKPOINT",
    [WIRE_DONE] = "DONE",
    [WIRE_FAIL] = "FAIL",
    [WIRE_ACK] = "ACK",
    [WIRE_PREEMPT] = "PREEMPT",
    [WIRE_STOP] = "STOP",
    [WIRE_ADMIT] = "ADMIT",
    [WIRE_REPLY] = "REPLY",
    [WIRE_ERROR] = "ERROR",
    [WIRE_EVENT] = "EVENT",
};

static const unsigned cmd_senders[WIRE_CMD_COUNT] = {
    [WIRE_SUBMIT] = WIRE_FROM_CLIENT, [WIRE_STATUS] = WIRE_FROM_CLIENT,
    [WIRE_LIST] = WIRE_FROM_CLIENT,   [WIRE_CANCEL] = WIRE_FROM_CLIENT | WIRE_FROM_COORD,
    [WIRE_WATCH] = WIRE_FROM_CLIENT,  [WIRE_RESULTS] = WIRE_FROM_CLIENT,
    [WIRE_HELLO] = WIRE_FROM_WORKER,  [WIRE_HEARTBEAT] = WIRE_FROM_WORKER,
    [WIRE_METRIC] = WIRE_FROM_WORKER, [WIRE_CHECKPOINT] = WIRE_FROM_WORKER,
    [WIRE_DONE] = WIRE_FROM_WORKER,   [WIRE_FAIL] = WIRE_FROM_WORKER,
    [WIRE_ACK] = WIRE_FROM_COORD,     [WIRE_PREEMPT] = WIRE_FROM_COORD,
    [WIRE_REPLY] = WIRE_FROM_COORD,   [WIRE_ERROR] = WIRE_FROM_COORD,
    [WIRE_EVENT] = WIRE_FROM_COORD,   [WIRE_STOP] = WIRE_FROM_COORD,
    [WIRE_ADMIT] = WIRE_FROM_COORD,
};

static const char *reject_names[WIRE_REJ_COUNT] = {
    [WIRE_REJ_NONE] = "none",
    [WIRE_REJ_FRAMES] = "frames",
    [WIRE_REJ_MAGIC] = "magic",
    [WIRE_REJ_FRAME_SIZE] = "frame-size",
    [WIRE_REJ_COMMAND] = "command",
    [WIRE_REJ_ROLE] = "role",
    [WIRE_REJ_OVERSIZE] = "oversize",
    [WIRE_REJ_JSON] = "json",
    [WIRE_REJ_NOT_OBJECT] = "not-object",
    [WIRE_REJ_FIELD] = "field",
    [WIRE_REJ_IDENTITY] = "identity",
    [WIRE_REJ_LIMIT] = "limit",
};

const char *wire_cmd_name(wire_cmd_t cmd)
{
    return cmd > WIRE_NONE && cmd < WIRE_CMD_COUNT ? cmd_names[cmd] : NULL;
}

wire_cmd_t wire_cmd_lookup(const char *word, size_t len)
{
    for (int c = WIRE_NONE + 1; c < WIRE_CMD_COUNT; c++)
        if (strlen(cmd_names[c]) == len && memcmp(cmd_names[c], word, len) == 0)
            return (wire_cmd_t)c;
    return WIRE_NONE;
}

unsigned wire_cmd_senders(wire_cmd_t cmd)
{
    return cmd > WIRE_NONE && cmd < WIRE_CMD_COUNT ? cmd_senders[cmd] : 0;
}

const char *wire_reject_name(wire_reject_code_t code)
{
    return code < WIRE_REJ_COUNT ? reject_names[code] : "unknown";
}

void wire_msg_destroy(wire_msg_t **self_p)
{
    if (!self_p || !*self_p) return;
    json_decref((*self_p)->body);
    free(*self_p);
    *self_p = NULL;
}

static int is_router(void *sock)
{
    int type = 0;
    size_t len = sizeof type;
    return zmq_getsockopt(sock, ZMQ_TYPE, &type, &len) == 0 && type == ZMQ_ROUTER;
}

/* Up to max bytes of data as printable text ('?' for the rest) into out. */
static void printable(const void *data, size_t len, char *out, size_t outsize, size_t max)
{
    const unsigned char *p = data;
    size_t n = len < max ? len : max, i;
    if (n >= outsize) n = outsize - 1;
    for (i = 0; i < n; i++) out[i] = isprint(p[i]) ? (char)p[i] : '?';
    out[i] = '\0';
}

static int reject(wire_reject_t *rej, wire_reject_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(wire_reject_t *rej, wire_reject_code_t code, const char *fmt, ...)
{
    va_list ap;
    rej->code = code;
    va_start(ap, fmt);
    vsnprintf(rej->text, sizeof rej->text, fmt, ap);
    va_end(ap);
    return WIRE_REJECTED;
}

int wire_get_int(const json_t *body, const char *key, int64_t *out)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_integer(v))
        return weft_error("field \"%s\" %s", key, v ? "is not an integer" : "is missing");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

const char *wire_get_str(const json_t *body, const char *key)
{
    return json_string_value(json_object_get(body, key));
}

/* Fields every worker message carries, and ACK's seq; the identity check. */
static int check_fields(const wire_msg_t *m, int router, wire_reject_t *rej)
{
    const char *word = wire_cmd_name(m->cmd);
    int64_t v = 0;
    if (wire_cmd_senders(m->cmd) == WIRE_FROM_WORKER) {
        const char *run = wire_get_str(m->body, "run");
        int64_t attempt = 0;
        if (!run || !wire_run_valid(run))
            return reject(rej, WIRE_REJ_FIELD, "%s: \"run\" must be a run id string", word);
        if (wire_get_int(m->body, "attempt", &attempt) < 0 || attempt < 1 || attempt > INT32_MAX)
            return reject(rej, WIRE_REJ_FIELD, "%s: \"attempt\" must be an integer from 1", word);
        if (m->cmd != WIRE_HEARTBEAT && (wire_get_int(m->body, "seq", &v) < 0 || v < 1))
            return reject(rej, WIRE_REJ_FIELD, "%s: \"seq\" must be an integer from 1", word);
        if (json_object_get(m->body, "acked") && (wire_get_int(m->body, "acked", &v) < 0 || v < 0))
            return reject(rej, WIRE_REJ_FIELD, "%s: \"acked\" must be an integer from 0", word);
        if (router) {
            char rrun[WIRE_RUN_MAX + 1];
            int64_t rattempt;
            if (wire_rid_parse(m->rid, m->rid_len, rrun, sizeof rrun, &rattempt) < 0 ||
                strcmp(rrun, run) != 0 || rattempt != attempt)
                return reject(rej, WIRE_REJ_IDENTITY,
                              "%s for %s:%" PRId64 " came from another routing id", word, run,
                              attempt);
        }
    } else if (m->cmd == WIRE_ACK) {
        if (wire_get_int(m->body, "seq", &v) < 0 || v < 0)
            return reject(rej, WIRE_REJ_FIELD, "ACK: \"seq\" must be an integer from 0");
    } else if (m->cmd == WIRE_ERROR) {
        if (!wire_get_str(m->body, "error"))
            return reject(rej, WIRE_REJ_FIELD, "ERROR: \"error\" must be a string");
    }
    return 0;
}

#define MAX_KEPT 5 /* routing id + 3 frames + one more to tell "too many" */

static int validate(zmq_msg_t *part, int total, int router, const wire_rx_t *rx,
                    wire_admit_fn admit, void *admit_ctx, wire_msg_t *m, wire_reject_t *rej)
{
    int base = router ? 1 : 0;
    size_t max_json = rx && rx->max_json ? rx->max_json : WIRE_MAX_JSON;
    if (total - base != 3)
        return reject(rej, WIRE_REJ_FRAMES, "expected 3 frames (WEFT1, command, JSON), got %d",
                      total - base);
    size_t mlen = zmq_msg_size(&part[base]);
    if (mlen > WIRE_CMD_MAX)
        return reject(rej, WIRE_REJ_FRAME_SIZE, "magic frame of %zu bytes (expected \"WEFT1\")",
                      mlen);
    if (mlen != strlen(WIRE_MAGIC) || memcmp(zmq_msg_data(&part[base]), WIRE_MAGIC, mlen) != 0) {
        char got[WIRE_CMD_MAX + 1];
        printable(zmq_msg_data(&part[base]), mlen, got, sizeof got, WIRE_CMD_MAX);
        return reject(rej, WIRE_REJ_MAGIC, "bad magic \"%s\" (expected \"WEFT1\")", got);
    }
    size_t clen = zmq_msg_size(&part[base + 1]);
    if (clen > WIRE_CMD_MAX)
        return reject(rej, WIRE_REJ_FRAME_SIZE, "command frame of %zu bytes (at most %d)", clen,
                      WIRE_CMD_MAX);
    m->cmd = wire_cmd_lookup(zmq_msg_data(&part[base + 1]), clen);
    if (m->cmd == WIRE_NONE) {
        char got[WIRE_CMD_MAX + 1];
        printable(zmq_msg_data(&part[base + 1]), clen, got, sizeof got, WIRE_CMD_MAX);
        return reject(rej, WIRE_REJ_COMMAND, "unknown command \"%s\"", got);
    }
    if (rx && rx->accept && !(wire_cmd_senders(m->cmd) & rx->accept))
        return reject(rej, WIRE_REJ_ROLE, "command %s is not accepted here", wire_cmd_name(m->cmd));
    size_t jlen = zmq_msg_size(&part[base + 2]);
    if (admit) {
        char why[sizeof rej->text] = "";
        int code = admit(admit_ctx, m, jlen, why, sizeof why);
        if (code > WIRE_REJ_NONE && code < WIRE_REJ_COUNT)
            return reject(rej, (wire_reject_code_t)code, "%s", why);
    }
    if (jlen > max_json)
        return reject(rej, WIRE_REJ_OVERSIZE, "%s body of %zu bytes exceeds the limit of %zu",
                      wire_cmd_name(m->cmd), jlen, max_json);
    json_error_t jerr;
    m->body = json_loadb(zmq_msg_data(&part[base + 2]), jlen,
                         JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!m->body)
        return reject(rej, WIRE_REJ_JSON, "%s body is not JSON: %s at byte %d",
                      wire_cmd_name(m->cmd), jerr.text, jerr.position);
    if (!json_is_object(m->body))
        return reject(rej, WIRE_REJ_NOT_OBJECT, "%s body is JSON but not an object",
                      wire_cmd_name(m->cmd));
    return check_fields(m, router, rej);
}

int wire_recv(void *sock, const wire_rx_t *rx, int flags, wire_msg_t **msg_p, wire_reject_t *rej)
{
    return wire_recv_admit(sock, rx, NULL, NULL, flags, msg_p, rej);
}

int wire_recv_admit(void *sock, const wire_rx_t *rx, wire_admit_fn admit, void *admit_ctx,
                    int flags, wire_msg_t **msg_p, wire_reject_t *rej)
{
    zmq_msg_t part[MAX_KEPT];
    int kept = 0, total = 0, rc = 0;
    int router = is_router(sock);
    *msg_p = NULL;
    rej->code = WIRE_REJ_NONE;
    rej->text[0] = '\0';
    rej->rid_len = 0;
    for (;;) {
        zmq_msg_t extra;
        zmq_msg_t *m = kept < MAX_KEPT ? &part[kept] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, total == 0 ? flags : 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(m);
            if (e == EINTR && total > 0)
                continue; /* the rest of a multipart message is already here */
            if (e == EAGAIN || e == EINTR) {
                rc = WIRE_AGAIN;
            } else {
                rc = weft_error("receiving a message: %s", zmq_strerror(e));
            }
            break;
        }
        int more = zmq_msg_more(m);
        if (m == &extra)
            zmq_msg_close(m);
        else
            kept++;
        total++;
        if (!more) break;
    }
    if (rc == 0 && total > 0) {
        wire_msg_t *m = calloc(1, sizeof *m);
        if (!m) {
            rc = weft_error("out of memory receiving a message");
        } else {
            if (router) {
                size_t n = zmq_msg_size(&part[0]);
                m->rid_len = n < WIRE_RID_MAX ? n : WIRE_RID_MAX;
                memcpy(m->rid, zmq_msg_data(&part[0]), m->rid_len);
                memcpy(rej->rid, m->rid, m->rid_len);
                rej->rid_len = m->rid_len;
            }
            const char *uid = zmq_msg_gets(&part[kept - 1], "User-Id");
            if (uid) snprintf(m->user_id, sizeof m->user_id, "%s", uid);
            rc = validate(part, total, router, rx, admit, admit_ctx, m, rej);
            if (rc == 0)
                *msg_p = m;
            else
                wire_msg_destroy(&m);
        }
    }
    for (int i = 0; i < kept; i++) zmq_msg_close(&part[i]);
    return rc;
}

int wire_send_raw(void *sock, const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, const char *json,
                  size_t len, int flags)
{
    const char *word = wire_cmd_name(cmd);
    if (!word) return weft_error("sending: command %d is not a weft command", (int)cmd);
    const void *data[4];
    size_t size[4];
    int n = 0;
    if (is_router(sock)) {
        if (!rid || rid_len == 0 || rid_len > WIRE_RID_MAX)
            return weft_error("sending %s on a ROUTER needs a routing id of 1..%d bytes", word,
                              WIRE_RID_MAX);
        data[n] = rid;
        size[n++] = rid_len;
    }
    data[n] = WIRE_MAGIC;
    size[n++] = strlen(WIRE_MAGIC);
    data[n] = word;
    size[n++] = strlen(word);
    data[n] = json;
    size[n++] = len;
    for (int i = 0; i < n; i++) {
        /* Only the first frame may block or fail softly: once it is queued,
         * ZeroMQ takes the rest of the message (HWMs count whole messages). */
        int f = (i == 0 ? flags : 0) | (i < n - 1 ? ZMQ_SNDMORE : 0);
        while (zmq_send(sock, data[i], size[i], f) < 0) {
            int e = zmq_errno();
            if (i > 0 && e == EINTR) continue;
            if (i == 0 && (e == EAGAIN || e == EINTR)) return WIRE_AGAIN;
            if (i == 0 && e == EHOSTUNREACH) return WIRE_UNROUTABLE;
            return weft_error("sending %s: %s", word, zmq_strerror(e));
        }
    }
    return 0;
}

int wire_send(void *sock, const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, const json_t *body,
              int flags)
{
    if (!json_is_object(body))
        return weft_error("sending %s: the body must be a JSON object",
                          wire_cmd_name(cmd) ? wire_cmd_name(cmd) : "?");
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return weft_error("sending %s: cannot serialise the body",
                          wire_cmd_name(cmd) ? wire_cmd_name(cmd) : "?");
    int rc = wire_send_raw(sock, rid, rid_len, cmd, text, strlen(text), flags);
    free(text);
    return rc;
}

int wire_send_error(void *sock, const uint8_t *rid, size_t rid_len, wire_reject_code_t code,
                    const char *text, int flags)
{
    json_t *body =
        json_pack("{s:s, s:s}", "error", wire_reject_name(code), "message", text ? text : "");
    if (!body) return weft_error("sending ERROR: the message is not valid UTF-8");
    int rc = wire_send(sock, rid, rid_len, WIRE_ERROR, body, flags);
    json_decref(body);
    return rc;
}

int wire_run_valid(const char *run)
{
    size_t n = strlen(run);
    if (n == 0 || n > WIRE_RUN_MAX || run[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)run[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') return 0;
    }
    return 1;
}

int wire_rid_format(char *out, size_t outsize, const char *run, int64_t attempt)
{
    if (!wire_run_valid(run))
        return weft_error("run id \"%.40s\" is not 1..%d characters of [A-Za-z0-9._-]", run,
                          WIRE_RUN_MAX);
    if (attempt < 1 || attempt > INT32_MAX)
        return weft_error("attempt %" PRId64 " of run %s is out of range 1..%d", attempt, run,
                          INT32_MAX);
    int n = snprintf(out, outsize, "%s:%" PRId64, run, attempt);
    if (n < 0 || (size_t)n >= outsize || n > WIRE_RID_MAX)
        return weft_error("routing id of run %s attempt %" PRId64 " does not fit", run, attempt);
    return n;
}

int wire_rid_parse(const uint8_t *rid, size_t len, char *run, size_t runsize, int64_t *attempt)
{
    if (len == 0 || len > WIRE_RID_MAX || rid[0] == 0) return -1;
    const uint8_t *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (rid[i] == ':') colon = rid + i;
    if (!colon) return -1;
    size_t rlen = (size_t)(colon - rid), dlen = len - rlen - 1;
    if (rlen == 0 || rlen >= runsize || dlen == 0 || dlen > 10 || colon[1] == '0') return -1;
    int64_t a = 0;
    for (size_t i = 0; i < dlen; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9') return -1;
        a = a * 10 + (colon[1 + i] - '0');
    }
    if (a < 1 || a > INT32_MAX) return -1;
    memcpy(run, rid, rlen);
    run[rlen] = '\0';
    if (!wire_run_valid(run)) return -1;
    *attempt = a;
    return 0;
}

int wire_seq_accept(int64_t *acked, int64_t seq, int64_t peer_acked)
{
    /* What the sender already had acknowledged was stored by us before (an
     * earlier incarnation of the coordinator); it will never come again. */
    if (peer_acked > *acked) *acked = peer_acked;
    if (seq <= *acked) return WIRE_SEQ_DUP;
    if (seq == *acked + 1) {
        *acked = seq;
        return WIRE_SEQ_NEW;
    }
    return WIRE_SEQ_GAP;
}

wire_opts_t wire_opts_default(void)
{
    return (wire_opts_t){
        .max_msg = WIRE_MAX_JSON,
        .linger_ms = 0,
        .sndhwm = 1000,
        .rcvhwm = 1000,
        .reconnect_ivl_ms = 100,
        .reconnect_ivl_max_ms = 2000,
        .immediate = 0,
    };
}

static int setopt_int(void *sock, int opt, int value, const char *name)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof value) < 0)
        return weft_error("setting %s: %s", name, zmq_strerror(zmq_errno()));
    return 0;
}

void *wire_router_new(void *ctx, const char *endpoint, const wire_opts_t *opts)
{
    wire_opts_t o = opts ? *opts : wire_opts_default();
    int64_t max = o.max_msg > 0 ? o.max_msg : WIRE_MAX_JSON;
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    if (!s) {
        weft_error("creating a ROUTER: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    if (setopt_int(s, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY") < 0 ||
        setopt_int(s, ZMQ_ROUTER_HANDOVER, 1, "ZMQ_ROUTER_HANDOVER") < 0 ||
        setopt_int(s, ZMQ_LINGER, o.linger_ms, "ZMQ_LINGER") < 0 ||
        setopt_int(s, ZMQ_SNDHWM, o.sndhwm, "ZMQ_SNDHWM") < 0 ||
        setopt_int(s, ZMQ_RCVHWM, o.rcvhwm, "ZMQ_RCVHWM") < 0)
        goto fail;
    if (zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max) < 0) {
        weft_error("setting ZMQ_MAXMSGSIZE: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_bind(s, endpoint) < 0) {
        weft_error("binding the ROUTER to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return s;
fail:
    zmq_close(s);
    return NULL;
}

void *wire_dealer_new(void *ctx, const char *endpoint, const char *rid, const wire_opts_t *opts)
{
    wire_opts_t o = opts ? *opts : wire_opts_default();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (!s) {
        weft_error("creating a DEALER: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    if (rid) {
        size_t n = strlen(rid);
        if (n == 0 || n > WIRE_RID_MAX) {
            weft_error("routing id \"%.40s\" must be 1..%d bytes", rid, WIRE_RID_MAX);
            goto fail;
        }
        if (zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, n) < 0) {
            weft_error("setting routing id %s: %s", rid, zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    if (setopt_int(s, ZMQ_LINGER, o.linger_ms, "ZMQ_LINGER") < 0 ||
        setopt_int(s, ZMQ_SNDHWM, o.sndhwm, "ZMQ_SNDHWM") < 0 ||
        setopt_int(s, ZMQ_RCVHWM, o.rcvhwm, "ZMQ_RCVHWM") < 0 ||
        setopt_int(s, ZMQ_RECONNECT_IVL, o.reconnect_ivl_ms, "ZMQ_RECONNECT_IVL") < 0 ||
        setopt_int(s, ZMQ_RECONNECT_IVL_MAX, o.reconnect_ivl_max_ms, "ZMQ_RECONNECT_IVL_MAX") < 0 ||
        setopt_int(s, ZMQ_IMMEDIATE, o.immediate, "ZMQ_IMMEDIATE") < 0)
        goto fail;
    if (o.curve_server || o.curve_public || o.curve_secret) {
        if (!o.curve_server || !o.curve_public || !o.curve_secret ||
            zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, o.curve_server, strlen(o.curve_server)) < 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, o.curve_public, strlen(o.curve_public)) < 0 ||
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, o.curve_secret, strlen(o.curve_secret)) < 0) {
            weft_error("setting CURVE keys for %s: %s", endpoint,
                       o.curve_server && o.curve_public && o.curve_secret
                           ? zmq_strerror(zmq_errno())
                           : "the server key and both client keys are needed");
            goto fail;
        }
    }
    if (endpoint && zmq_connect(s, endpoint) < 0) {
        weft_error("connecting to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return s;
fail:
    zmq_close(s);
    return NULL;
}
