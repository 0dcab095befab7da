/* outbox.h: a worker group's on-disk outbox (rank 0): every message to the
 * coordinator is numbered and appended to a spool file before it is sent,
 * sent without ever blocking, dropped once ACKed, and replayed after reconnects.
 *
 * Durability. Each record is one write(2) to the spool, so a killed process
 * (SIGKILL, MPI_Abort) loses nothing. fsync runs only in outbox_sync() and
 * after CHECKPOINT, DONE and FAIL records: a step's METRIC that is not yet
 * synced can only be lost with the machine (power, kernel), and then the
 * training progress behind it is lost too; the next attempt resumes from the
 * newest checkpoint and posts those steps again. So the worker calls
 * outbox_sync() (or posts CHECKPOINT) before it renames a checkpoint into
 * place: every step a checkpoint covers is then durable in the spool or at
 * the coordinator. One fsync per step would cost more than a small step
 * (here a post takes 6-10 us, an fdatasync of the spool 2-6 ms).
 *
 * Numbering. Sequence numbers count one (run, attempt) stream from 1; they
 * are a transport number, not a step. Opening the spool of an older attempt
 * carries its unacknowledged records over, renumbered from 1 and marked
 * "from_attempt" (HELLO records are dropped). Duplicate content after a resume
 * is recognised by its keys (docs/PROTOCOL.md), not by seq.
 *
 * An outbox is used by one thread at a time (callers that pump from another
 * thread hold a lock around every call). */
#ifndef WEFT_OUTBOX_H
#define WEFT_OUTBOX_H

#include "common/wire.h"

#include <jansson.h>
#include <stdint.h>

typedef struct _outbox_t outbox_t;

/* Opens (or creates) the spool at path for run/attempt. An existing spool
 * of the same run is recovered (a torn last record is cut off with a
 * warning; corruption before the end is an error naming the line); one of an
 * older attempt is carried over; one of a newer attempt or another run is
 * refused. NULL on error (weft_error). */
outbox_t *outbox_open(const char *path, const char *run, int64_t attempt);
/* Closes the socket and the spool (without fsync) and frees. */
void outbox_destroy(outbox_t **self_p);

/* Creates the DEALER (routing id "<run>:<attempt>", never ZMQ_IMMEDIATE)
 * connected to endpoint, and a monitor of its connection. opts NULL:
 * defaults. */
int outbox_connect(outbox_t *self, void *ctx, const char *endpoint, const wire_opts_t *opts);

/* Stamps body with run, attempt and the next seq, appends it to the spool and
 * sends what it can without blocking. cmd is a worker command other than
 * HEARTBEAT. Returns the seq, or -1 (weft_error; nothing was stored). */
int64_t outbox_post(outbox_t *self, wire_cmd_t cmd, const json_t *body);

/* Sends a HEARTBEAT (body plus run, attempt, "last_seq", "acked") if the
 * DEALER is connected (as last seen by outbox_pump) and it can go now;
 * heartbeats are never stored. Returns 0, WIRE_AGAIN (dropped) or -1. */
int outbox_heartbeat(outbox_t *self, const json_t *body);

/* Does the socket work: reads connection events and ACKs (trimming the
 * spool), rewinds to the oldest unacknowledged record after a reconnect, a
 * "rewind" ACK or resend_ms without progress, then sends what it can. Waits up
 * to timeout_ms (0: never) for input. Returns 1 with *msg_p set when the
 * coordinator sent something else than ACK (CANCEL, PREEMPT, ...), 0
 * otherwise, -1 on error. */
int outbox_pump(outbox_t *self, int timeout_ms, wire_msg_t **msg_p);

/* fsync of the spool: every record posted so far is on disk. */
int outbox_sync(outbox_t *self);

/* Resend after this long without ACK progress (default 3000 ms). */
void outbox_set_resend_ms(outbox_t *self, int ms);
/* Compact the spool once this many acknowledged records sit in it (default
 * 4096; 0: after every ACK, for tests). */
void outbox_set_compact_every(outbox_t *self, int64_t records);

typedef struct {
    int64_t last_seq; /* highest seq assigned */
    int64_t acked;    /* highest seq acknowledged */
    int64_t pending;  /* records not yet acknowledged */
    int64_t unsent;   /* of those, not sent since the last rewind */
    int64_t sent;     /* sends, including resends */
    int64_t resent;   /* sends of a seq sent before */
    int64_t rejected; /* malformed messages received and dropped */
    int64_t compactions;
    int connected; /* 1 after a handshake, 0 after a disconnect */
} outbox_stats_t;

outbox_stats_t outbox_stats(const outbox_t *self);

#endif
