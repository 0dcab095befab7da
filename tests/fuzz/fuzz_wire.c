/* fuzz_wire.c: libFuzzer target for the wire-message decoder: the input is
 * cut into frames that are sent over real ZeroMQ sockets (inproc) and read
 * back with wire_recv, on a ROUTER (as weftd does) or on a DEALER (as a
 * worker or client does).
 *
 * Input: byte 0 chooses the case (bit 0: receive on the DEALER; bits 1-2: the
 * sending DEALER, routing ids "r1:1", "r1:2", "r-2:1" or one ZeroMQ picks;
 * bits 3-4: the accept mask; bit 5: a 64-byte JSON limit). The rest is the
 * frames, separated by the byte 0x1e (at most 8; the last takes the rest). */
#include "common/log.h"
#include "common/wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NDEALERS  4
#define MAXFRAMES 8

static void *ctx, *router, *dealer[NDEALERS];

static void setup(void)
{
    static const char *rids[NDEALERS] = {"r1:1", "r1:2", "r-2:1", NULL};
    ctx = zmq_ctx_new();
    router = wire_router_new(ctx, "inproc://weft-fuzz-wire", NULL);
    if (!router) abort();
    for (int i = 0; i < NDEALERS; i++) {
        dealer[i] = wire_dealer_new(ctx, "inproc://weft-fuzz-wire", rids[i], NULL);
        if (!dealer[i]) abort();
    }
}

static void send_frames(void *sock, const uint8_t *const *frame, const size_t *len, int n)
{
    for (int i = 0; i < n; i++)
        if (zmq_send(sock, frame[i], len[i], i < n - 1 ? ZMQ_SNDMORE : 0) < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) setup();
    if (size < 1) return 0;
    unsigned mode = data[0];
    static const unsigned accepts[4] = {0, WIRE_FROM_CLIENT, WIRE_FROM_WORKER,
                                        WIRE_FROM_CLIENT | WIRE_FROM_WORKER | WIRE_FROM_COORD};
    wire_rx_t rx = {.accept = accepts[(mode >> 3) & 3], .max_json = (mode & 32) ? 64 : 0};

    const uint8_t *frame[MAXFRAMES + 1];
    size_t len[MAXFRAMES + 1];
    int n = 0;
    const uint8_t *p = data + 1, *end = data + size;
    while (n < MAXFRAMES - 1) {
        const uint8_t *sep = memchr(p, 0x1e, (size_t)(end - p));
        if (!sep) break;
        frame[n] = p;
        len[n++] = (size_t)(sep - p);
        p = sep + 1;
    }
    frame[n] = p;
    len[n++] = (size_t)(end - p);

    void *rx_sock;
    if (mode & 1) {
        /* coordinator -> worker: the ROUTER addresses DEALER "r1:1" */
        const uint8_t *all[MAXFRAMES + 1];
        size_t all_len[MAXFRAMES + 1];
        all[0] = (const uint8_t *)"r1:1";
        all_len[0] = 4;
        memcpy(all + 1, frame, sizeof(frame[0]) * (size_t)n);
        memcpy(all_len + 1, len, sizeof(len[0]) * (size_t)n);
        send_frames(router, all, all_len, n + 1);
        rx_sock = dealer[0];
    } else {
        send_frames(dealer[(mode >> 1) & 3], frame, len, n);
        rx_sock = router;
    }

    wire_msg_t *msg = NULL;
    wire_reject_t rej;
    int rc = wire_recv(rx_sock, &rx, 0, &msg, &rej);
    if (rc == 0) {
        if (!msg || !json_is_object(msg->body) || !wire_cmd_name(msg->cmd)) abort();
        if (wire_cmd_senders(msg->cmd) == WIRE_FROM_WORKER) {
            int64_t attempt = 0, seq = 0, acked = 3;
            char run[WIRE_RUN_MAX + 1];
            if (!(mode & 1) &&
                wire_rid_parse(msg->rid, msg->rid_len, run, sizeof run, &attempt) < 0)
                abort(); /* a worker message got past the identity check */
            if (wire_get_int(msg->body, "seq", &seq) == 0) (void)wire_seq_accept(&acked, seq, -1);
        }
        wire_msg_destroy(&msg);
    } else if (rc == WIRE_REJECTED) {
        if (rej.code == WIRE_REJ_NONE || rej.code >= WIRE_REJ_COUNT || !rej.text[0]) abort();
        (void)wire_reject_name(rej.code);
    } else {
        fprintf(stderr, "wire_recv: %d %s\n", rc, weft_last_error());
        abort();
    }
    return 0;
}
