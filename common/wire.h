/* wire.h: weft's message layer over ZeroMQ: frames "WEFT1", a command word and
 * one JSON object (after the routing id on a ROUTER); sending, receiving with
 * validation and reasoned rejection, routing ids, and socket setup. */
#ifndef WEFT_WIRE_H
#define WEFT_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC "WEFT1"
/* Default limit of the JSON frame, and ZMQ_MAXMSGSIZE of wire_router_new. */
#define WIRE_MAX_JSON (1024 * 1024)
/* Bytes CURVE adds around a frame (a MESSAGE command: 8 + nonce 8 + MAC 16
 * + flags 1), which ZMQ_MAXMSGSIZE counts; a margin for it. */
#define WIRE_CURVE_MARGIN 64
/* Longest command word on the wire. */
#define WIRE_CMD_MAX 16
/* Routing ids are 1..255 bytes and never start with a zero byte. */
#define WIRE_RID_MAX 255
/* Longest run id: leaves room for ":<attempt>" in a routing id. */
#define WIRE_RUN_MAX 200

/* Command words. CANCEL is both a client request (cancel jobs) and a
 * coordinator order to a worker group (drop tenants). */
typedef enum {
    WIRE_NONE = 0,
    /* client -> coordinator */
    WIRE_SUBMIT,
    WIRE_STATUS,
    WIRE_LIST,
    WIRE_CANCEL,
    WIRE_WATCH,
    WIRE_RESULTS,
    /* worker -> coordinator */
    WIRE_HELLO,
    WIRE_HEARTBEAT,
    WIRE_METRIC,
    WIRE_CHECKPOINT,
    WIRE_DONE,
    WIRE_FAIL,
    /* coordinator -> worker (and CANCEL above) */
    WIRE_ACK,
    WIRE_PREEMPT,
    WIRE_STOP,  /* early stopping: end these tenants, keeping their adapters */
    WIRE_ADMIT, /* the run's spec file gained tenants: read it again, take them */
    /* coordinator -> client: an answer, an error, a WATCH stream item */
    WIRE_REPLY,
    WIRE_ERROR,
    WIRE_EVENT,
    WIRE_CMD_COUNT
} wire_cmd_t;

/* Who may send a command: a mask for wire_recv's accept filter. */
enum {
    WIRE_FROM_CLIENT = 1u << 0,
    WIRE_FROM_WORKER = 1u << 1,
    WIRE_FROM_COORD = 1u << 2,
};

/* The word of a command ("METRIC"), or NULL for one out of range. */
const char *wire_cmd_name(wire_cmd_t cmd);
/* The command of a word (exact, case-sensitive), or WIRE_NONE. */
wire_cmd_t wire_cmd_lookup(const char *word, size_t len);
/* WIRE_FROM_* mask of who may send cmd. */
unsigned wire_cmd_senders(wire_cmd_t cmd);

/* Results of wire_send and wire_recv besides 0 (done) and -1 (socket error,
 * see weft_last_error()). */
enum {
    WIRE_AGAIN = 1,      /* would block (ZMQ_DONTWAIT), timed out, or EINTR */
    WIRE_UNROUTABLE = 2, /* ROUTER_MANDATORY: no peer with that routing id */
    WIRE_REJECTED = 3,   /* a message came in but was malformed: see reject */
};

/* Why a received message was rejected. */
typedef enum {
    WIRE_REJ_NONE = 0,
    WIRE_REJ_FRAMES,     /* not exactly 3 frames after the routing id */
    WIRE_REJ_MAGIC,      /* frame 1 is not "WEFT1" */
    WIRE_REJ_FRAME_SIZE, /* magic or command frame longer than its bound */
    WIRE_REJ_COMMAND,    /* unknown command word */
    WIRE_REJ_ROLE,       /* a known command this socket does not accept */
    WIRE_REJ_OVERSIZE,   /* JSON frame above the receiver's limit */
    WIRE_REJ_JSON,       /* frame 3 is not valid UTF-8 JSON */
    WIRE_REJ_NOT_OBJECT, /* valid JSON, but not an object */
    WIRE_REJ_FIELD,      /* a required common field missing or mistyped */
    WIRE_REJ_IDENTITY,   /* worker message whose run:attempt is not its routing id */
    WIRE_REJ_LIMIT,      /* refused by the receiver's admit hook (too much from this sender) */
    WIRE_REJ_COUNT
} wire_reject_code_t;

/* Short name of a reason ("magic", "oversize", ...), used as the "error"
 * field of ERROR replies. */
const char *wire_reject_name(wire_reject_code_t code);

typedef struct {
    wire_reject_code_t code;
    char text[200];            /* one line: what was wrong */
    uint8_t rid[WIRE_RID_MAX]; /* sender's routing id (ROUTER), to answer it */
    size_t rid_len;
} wire_reject_t;

/* A received message. */
typedef struct wire_msg {
    wire_cmd_t cmd;
    json_t *body;              /* a JSON object, owned */
    uint8_t rid[WIRE_RID_MAX]; /* routing id of the sender (ROUTER only) */
    size_t rid_len;
    char user_id[256]; /* ZAP User-Id of the connection, "" if none */
} wire_msg_t;

void wire_msg_destroy(wire_msg_t **self_p);

/* What a receiving socket takes. accept: WIRE_FROM_* mask (0 means any
 * known command); max_json: frame 3 limit (0 means WIRE_MAX_JSON). */
typedef struct {
    unsigned accept;
    size_t max_json;
} wire_rx_t;

/* A receiver's look at a message whose framing and command are good, before
 * its JSON is read (m->cmd, m->rid, m->user_id set; json_len the size of
 * frame 3): returns 0 to go on, or a WIRE_REJ_* code (OVERSIZE, LIMIT) with
 * a one-line reason in why, so that costly messages can be refused for the
 * price of looking at their size. */
typedef int (*wire_admit_fn)(void *ctx, const struct wire_msg *m, size_t json_len, char *why,
                             size_t whysize);

/* Receives one message (all of its frames, whatever happens). On a ROUTER
 * the first frame is the routing id. flags: 0 or ZMQ_DONTWAIT. Returns 0 and
 * sets *msg_p; WIRE_AGAIN; WIRE_REJECTED with *rej filled; -1 on a socket
 * error. Worker commands must carry "run", "attempt" and (except HEARTBEAT)
 * "seq"; on a ROUTER their run:attempt must equal the routing id. */
int wire_recv(void *sock, const wire_rx_t *rx, int flags, wire_msg_t **msg_p, wire_reject_t *rej);
/* wire_recv with an admit hook (NULL: none) asked before the JSON is read. */
int wire_recv_admit(void *sock, const wire_rx_t *rx, wire_admit_fn admit, void *admit_ctx,
                    int flags, wire_msg_t **msg_p, wire_reject_t *rej);

/* Sends [rid,] "WEFT1", the word of cmd, body serialised compactly. rid is
 * required on a ROUTER and ignored otherwise. flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, WIRE_AGAIN, WIRE_UNROUTABLE or -1. */
int wire_send(void *sock, const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, const json_t *body,
              int flags);
/* The same with the JSON text already serialised (not checked again). */
int wire_send_raw(void *sock, const uint8_t *rid, size_t rid_len, wire_cmd_t cmd, const char *json,
                  size_t len, int flags);
/* Sends ERROR {"error": name of code, "message": text} to rid. */
int wire_send_error(void *sock, const uint8_t *rid, size_t rid_len, wire_reject_code_t code,
                    const char *text, int flags);

/* Run ids: 1..WIRE_RUN_MAX bytes of [A-Za-z0-9._-], not starting with '.'. */
int wire_run_valid(const char *run);
/* "<run>:<attempt>" into out; returns its length, or -1 (weft_error). */
int wire_rid_format(char *out, size_t outsize, const char *run, int64_t attempt);
/* Splits a routing id "<run>:<attempt>" (attempt 1..INT32_MAX, no leading
 * zeros). Returns 0, or -1 when it is not a worker routing id. */
int wire_rid_parse(const uint8_t *rid, size_t len, char *run, size_t runsize, int64_t *attempt);

/* Common fields. wire_get_int: an integer field into *out; returns 0, or -1
 * (weft_error naming the field) when missing or not an integer. */
int wire_get_int(const json_t *body, const char *key, int64_t *out);
/* A string field, or NULL when missing or not a string. */
const char *wire_get_str(const json_t *body, const char *key);

/* Coordinator side of the sequence rules (docs/PROTOCOL.md): *acked is the
 * highest seq stored contiguously for one (run, attempt) stream. peer_acked is
 * the message's "acked" field (what the sender already had acknowledged, -1
 * if absent). Returns WIRE_SEQ_NEW (store it; *acked advanced), WIRE_SEQ_DUP
 * (stored before; drop it and ACK again) or WIRE_SEQ_GAP (an earlier message
 * is missing; drop it and ACK with "rewind"). */
enum { WIRE_SEQ_NEW = 0, WIRE_SEQ_DUP = 1, WIRE_SEQ_GAP = 2 };
int wire_seq_accept(int64_t *acked, int64_t seq, int64_t peer_acked);

/* Socket options of the helpers below. */
typedef struct {
    int64_t max_msg;          /* ZMQ_MAXMSGSIZE (ROUTER); 0: WIRE_MAX_JSON */
    int linger_ms;            /* ZMQ_LINGER */
    int sndhwm;               /* ZMQ_SNDHWM */
    int rcvhwm;               /* ZMQ_RCVHWM */
    int reconnect_ivl_ms;     /* ZMQ_RECONNECT_IVL (DEALER) */
    int reconnect_ivl_max_ms; /* ZMQ_RECONNECT_IVL_MAX (DEALER) */
    int immediate;            /* ZMQ_IMMEDIATE (DEALER); keep 0, see wire_opts_default */
    /* DEALER over CURVE (tcp endpoints of weftd): the server's public key
     * and this client's key pair, Z85; all NULL for a plain connection. */
    const char *curve_server;
    const char *curve_public;
    const char *curve_secret;
} wire_opts_t;

/* Defaults: max_msg WIRE_MAX_JSON, linger 0, hwm 1000, reconnect 100..2000 ms,
 * immediate 0. ZMQ_IMMEDIATE=1 on a DEALER that receives makes libzmq 4.3.4
 * abort (fq.cpp:112, "!_more") when its peer disconnects while a multipart
 * message is being read: a weftd crash would kill every worker. */
wire_opts_t wire_opts_default(void);

/* A ROUTER bound to endpoint with ROUTER_MANDATORY=1, ROUTER_HANDOVER=1 (a
 * reconnecting peer takes over its routing id), MAXMSGSIZE, LINGER, HWMs.
 * For ipc:// the socket file's folder must exist. NULL on error (weft_error). */
void *wire_router_new(void *ctx, const char *endpoint, const wire_opts_t *opts);
/* A DEALER with routing id rid (NULL: ZeroMQ picks one) connected to
 * endpoint, with reconnect interval, send HWM, LINGER, IMMEDIATE, and CURVE
 * client keys when opts names them. */
/* With endpoint NULL the DEALER is left unconnected: the caller connects it,
 * e.g. after zmq_socket_monitor, so that no connection event is missed. */
void *wire_dealer_new(void *ctx, const char *endpoint, const char *rid, const wire_opts_t *opts);

#endif
