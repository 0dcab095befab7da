/* fuzz_dispatch.c: libFuzzer target for weftd's dispatcher: messages sent
 * over real inproc sockets are read with weftd's own receive options and
 * handed to api_handle or monitor_handle inside a store transaction, as
 * weftd's round does, against a real SQLite store in a scratch home
 * (/tmp/weft-fuzz-dispatch, holding base.h5 for SUBMITs to name).
 *
 * Input: byte 0 chooses the sender's role (bits 0-1: admin, tenant:acme,
 * tenant:globex, worker:1) and its connection (bits 2-3: routing ids "1:1",
 * "2:1", "c1", "c2"); the rest is the frames, separated by the byte 0x1e. */
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "scheduler/weftd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SHARED    "/tmp/weft-fuzz-dispatch" /* base.h5, named by the seeds */
#define NDEALERS  4
#define MAXFRAMES 8

static void *dealer[NDEALERS];
static char home[64]; /* this process's own home: runs may go on in parallel */

static void remove_home(void)
{
    weft_rm_rf(home);
}

static void setup(void)
{
    static const char *rids[NDEALERS] = {"1:1", "2:1", "c1", "c2"};
    char tmp[96], db[96];
    snprintf(tmp, sizeof tmp, SHARED "/base.h5.%d", (int)getpid());
    FILE *f = weft_mkdir_p(SHARED, 0755) == 0 ? fopen(tmp, "w") : NULL;
    if (!f) abort();
    fputs("a backbone stand-in: SUBMIT only hashes it\n", f);
    if (fclose(f) != 0 || rename(tmp, SHARED "/base.h5") < 0) abort();
    snprintf(home, sizeof home, "/tmp/weft-fuzz-dispatch-XXXXXX");
    if (!mkdtemp(home)) abort();
    atexit(remove_home);
    snprintf(server.home, sizeof server.home, "%s", home);
    snprintf(server.runs_dir, sizeof server.runs_dir, "%s/runs", home);
    snprintf(server.data_dir, sizeof server.data_dir, "%s/data", home);
    snprintf(server.tenants_dir, sizeof server.tenants_dir, "%s/tenants", home);
    snprintf(db, sizeof db, "%s/weft.db", home);
    if (weft_mkdir_p(server.runs_dir, 0700) < 0 || weft_mkdir_p(server.data_dir, 0700) < 0 ||
        weft_mkdir_p(server.tenants_dir, 0700) < 0)
        abort();
    server.slots = 2;
    server.pack_size = 4;
    server.liveness = 30;
    server.max_watchers = 64;
    server.max_watch_client = 4;
    server.max_json = 64 * 1024;
    server.max_spec = 16 * 1024;
    server.max_tenants = 64;
    server.max_trials = 64;
    server.lock_fd = -1;
    server.store = store_open(db);
    server.zctx = zmq_ctx_new();
    server.router = wire_router_new(server.zctx, "inproc://weft-fuzz-dispatch", NULL);
    if (!server.store || !server.router) abort();
    for (int i = 0; i < NDEALERS; i++)
        if (!(dealer[i] =
                  wire_dealer_new(server.zctx, "inproc://weft-fuzz-dispatch", rids[i], NULL)))
            abort();
}

static void drop_replies(void)
{
    for (size_t i = 0; i < server.nreplies; i++) json_decref(server.replies[i].body);
    server.nreplies = 0;
    char buf[256];
    for (int i = 0; i < NDEALERS; i++)
        while (zmq_recv(dealer[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) continue;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server.store) setup();
    if (size < 1) return 0;
    static const char *roles[4] = {"", "tenant:acme", "tenant:globex", "worker:1"};
    unsigned mode = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    int n = 0;
    void *d = dealer[(mode >> 2) & 3];
    for (;;) {
        const uint8_t *sep = n < MAXFRAMES - 1 ? memchr(p, 0x1e, (size_t)(end - p)) : NULL;
        size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);
        if (zmq_send(d, p, len, sep ? ZMQ_SNDMORE : 0) < 0) abort();
        n++;
        if (!sep) break;
        p = sep + 1;
    }
    wire_rx_t rx = {.accept = WIRE_FROM_CLIENT | WIRE_FROM_WORKER, .max_json = server.max_json};
    wire_msg_t *msg = NULL;
    wire_reject_t rej;
    int rc = wire_recv(server.router, &rx, 0, &msg, &rej);
    if (rc == WIRE_REJECTED) return 0;
    if (rc != 0) abort();
    snprintf(msg->user_id, sizeof msg->user_id, "%s", roles[mode & 3]);
    if (store_begin(server.store) < 0) abort();
    int hr = wire_cmd_senders(msg->cmd) & WIRE_FROM_WORKER ? monitor_handle(msg) : api_handle(msg);
    wire_msg_destroy(&msg);
    if (hr == 0 && store_commit(server.store) == 0) {
        api_watch_cron();
    } else {
        store_rollback(server.store);
        monitor_reload();
    }
    drop_replies();
    return 0;
}
