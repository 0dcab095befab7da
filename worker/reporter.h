/* reporter.h: rank 0's voice. Every metric goes to OUTPUT/metrics.jsonl (one
 * JSON object a line) and, when weftd is there, the same stream goes out
 * through the on-disk outbox, pumped by a thread that also sends a heartbeat
 * every second and collects the coordinator's CANCEL, PREEMPT, STOP and
 * ADMIT orders.
 * Training never waits for the coordinator. */
#ifndef WEFT_REPORTER_H
#define WEFT_REPORTER_H

#include "common/wire.h"

#include <jansson.h>
#include <stdint.h>

typedef struct reporter reporter_t;

/* Opens OUTPUT/metrics.jsonl; keep_bytes >= 0 cuts it to that size first (a
 * resume drops the lines of steps the checkpoint does not cover). With an
 * endpoint, opens OUTPUT/outbox.spool for (run, attempt) and starts the
 * pump thread. NULL with weft_error on failure. */
reporter_t *reporter_new(const char *outdir, const char *run, int attempt, const char *endpoint,
                         int64_t keep_bytes);
void reporter_destroy(reporter_t **self_p);

/* Appends one metric line (and posts it as METRIC). Takes a reference. */
int reporter_metric(reporter_t *self, json_t *metric);
/* Posts HELLO, CHECKPOINT, DONE or FAIL to the coordinator (no-op without
 * one). Takes a reference. */
int reporter_post(reporter_t *self, wire_cmd_t cmd, json_t *body);
/* Bytes of metrics.jsonl written so far (for checkpoints). */
int64_t reporter_metrics_bytes(reporter_t *self);
/* fsync of metrics.jsonl and the outbox: before a checkpoint is committed. */
int reporter_sync(reporter_t *self);
/* The step shown in heartbeats. */
void reporter_set_step(reporter_t *self, int64_t step);
/* Orders received since the last call: a JSON array of tenant names to
 * cancel (NULL if none; caller decrefs) and whether to checkpoint and stop. */
json_t *reporter_orders(reporter_t *self, int *preempt);
/* Tenant names the coordinator stopped early (STOP) since the last call
 * (NULL if none; caller decrefs). */
json_t *reporter_stops(reporter_t *self);
/* Tenant names the coordinator admitted into the running pack (ADMIT: it
 * appended them to the run's spec file) since the last call (NULL if none;
 * caller decrefs). */
json_t *reporter_admits(reporter_t *self);
/* At the end: waits up to `seconds` for the coordinator to acknowledge
 * everything posted. 0 when all was acknowledged (or there is no
 * coordinator), 1 when some is left in the spool for the next attempt. */
int reporter_flush(reporter_t *self, double seconds);

#endif
