/* test_outbox.c: the worker's outbox against a real ROUTER on ipc://: order,
 * ACK trimming, replay after a restart (also after SIGKILL), torn and corrupt
 * spools, attempts, a late and a restarting coordinator, never blocking. */
#include "tests/check_main.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/outbox.h"
#include "common/wire.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static char tmpdir[256];
static char endpoint[320];
static char spool[320];
static void *ctx;

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-test-outbox-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/c.sock", tmpdir);
    snprintf(spool, sizeof spool, "%s/outbox.spool", tmpdir);
    ctx = zmq_ctx_new();
}

static void teardown(void)
{
    zmq_ctx_term(ctx);
    weft_rm_rf(tmpdir);
}

/* The outbox of run's attempt on the spool; the test fails where it cannot open. */
static outbox_t *open_ok(const char *run, int attempt)
{
    outbox_t *ob = outbox_open(spool, run, attempt);
    ck_assert_msg(ob != NULL, "%s", weft_last_error());
    return ob;
}

/* A coordinator as the protocol asks: stores each seq of one stream once,
 * in order (wire_seq_accept), and ACKs every message. drop_once makes it
 * lose that seq the first time it arrives (as on a broken connection). */
typedef struct {
    void *router;
    int64_t acked;
    int64_t *stored; /* seqs in the order they were stored */
    int64_t *steps;  /* the "step" field of each stored message */
    size_t nstored;
    int dups, gaps, other;
    int64_t drop_once;
    int64_t ignore_after; /* when set, seqs above it are never stored nor ACKed */
    wire_cmd_t last_cmd;
    json_t *last_body;
} coord_t;

static void coord_start(coord_t *c)
{
    c->router = wire_router_new(ctx, endpoint, NULL);
    ck_assert_msg(c->router != NULL, "%s", weft_last_error());
}

/* The last message the coordinator got holds the integer want at key. */
static void assert_last_int(const coord_t *c, const char *key, int64_t want)
{
    int64_t v = 0;
    ck_assert_msg(wire_get_int(c->last_body, key, &v) == 0 && v == want,
                  "the last message's %s is %lld, not %lld", key, (long long)v, (long long)want);
}

/* The coordinator started, and ob connected to it. */
static void coord_serve(coord_t *c, outbox_t *ob)
{
    coord_start(c);
    ck_assert_int_eq(outbox_connect(ob, ctx, endpoint, NULL), 0);
}

static void coord_stop(coord_t *c)
{
    zmq_close(c->router);
    c->router = NULL;
}

static void coord_free(coord_t *c)
{
    if (c->router) coord_stop(c);
    free(c->stored);
    free(c->steps);
    json_decref(c->last_body);
}

static void coord_ack(coord_t *c, const wire_msg_t *m, int rewind)
{
    json_t *ack = json_pack("{s:I, s:b}", "seq", (json_int_t)c->acked, "rewind", rewind);
    int rc = wire_send(c->router, m->rid, m->rid_len, WIRE_ACK, ack, ZMQ_DONTWAIT);
    ck_assert_int_ne(rc, -1);
    json_decref(ack);
}

/* Handles what arrives within ms. */
static void coord_poll(coord_t *c, int ms)
{
    zmq_pollitem_t it = {c->router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0) return;
    const wire_rx_t rx = {WIRE_FROM_WORKER, 0};
    for (;;) {
        wire_msg_t *m;
        wire_reject_t rej;
        int rc = wire_recv(c->router, &rx, ZMQ_DONTWAIT, &m, &rej);
        if (rc == WIRE_AGAIN) return;
        ck_assert_msg(rc == 0, "coordinator got a bad message: %s", rej.text);
        c->last_cmd = m->cmd;
        json_decref(c->last_body);
        c->last_body = json_incref(m->body);
        if (m->cmd == WIRE_HEARTBEAT) {
            c->other++;
            wire_msg_destroy(&m);
            continue;
        }
        int64_t seq, peer = -1, step = -1;
        ck_assert_int_eq(wire_get_int(m->body, "seq", &seq), 0);
        wire_get_int(m->body, "acked", &peer);
        wire_get_int(m->body, "step", &step);
        if (seq == c->drop_once || (c->ignore_after && seq > c->ignore_after)) {
            c->drop_once = 0;
            wire_msg_destroy(&m);
            continue;
        }
        int r = wire_seq_accept(&c->acked, seq, peer);
        if (r == WIRE_SEQ_NEW) {
            c->stored = realloc(c->stored, (c->nstored + 1) * sizeof *c->stored);
            c->steps = realloc(c->steps, (c->nstored + 1) * sizeof *c->steps);
            c->stored[c->nstored] = seq;
            c->steps[c->nstored++] = step;
        } else if (r == WIRE_SEQ_DUP) {
            c->dups++;
        } else {
            c->gaps++;
        }
        coord_ack(c, m, r == WIRE_SEQ_GAP);
        wire_msg_destroy(&m);
    }
}

/* Pumps both sides until the coordinator has acked `until`, or fails. */
static void run_until(outbox_t *ob, coord_t *c, int64_t until, double limit_s)
{
    double t0 = weft_clock();
    while (c->acked < until || outbox_stats(ob).acked < until) {
        wire_msg_t *m = NULL;
        ck_assert_int_ge(outbox_pump(ob, 0, &m), 0);
        wire_msg_destroy(&m);
        if (c->router) coord_poll(c, 5);
        ck_assert_msg(weft_clock() - t0 < limit_s,
                      "coordinator acked %lld of %lld within %.0f s (outbox acked %lld)",
                      (long long)c->acked, (long long)until, limit_s,
                      (long long)outbox_stats(ob).acked);
    }
}

static int64_t post_metric(outbox_t *ob, int step)
{
    json_t *b = json_pack("{s:s, s:i, s:f}", "tenant", "acme", "step", step, "loss", 1.0 / step);
    int64_t seq = outbox_post(ob, WIRE_METRIC, b);
    ck_assert_msg(seq > 0, "%s", weft_last_error());
    json_decref(b);
    return seq;
}

/* Lines of the spool that hold messages, and the first message's seq. */
static int spool_records(long long *first)
{
    FILE *f = fopen(spool, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int n = 0;
    *first = -1;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == 'M') {
            if (n == 0) sscanf(line, "M %lld", first);
            n++;
        }
    }
    fclose(f);
    return n;
}

static void check_stored_in_order(const coord_t *c, int64_t from, int64_t to)
{
    ck_assert_int_eq(c->nstored, to - from + 1);
    for (size_t i = 0; i < c->nstored; i++) ck_assert_int_eq(c->stored[i], from + (int64_t)i);
}

START_TEST(numbered_in_order_and_ack_trims)
{
    outbox_t *ob = open_ok("run-a", 1);
    outbox_set_compact_every(ob, 0);
    for (int i = 1; i <= 5; i++) ck_assert_int_eq(post_metric(ob, i), i);
    long long first;
    ck_assert_int_eq(spool_records(&first), 5);
    ck_assert_int_eq(first, 1);
    coord_t c = {0};
    coord_serve(&c, ob);
    run_until(ob, &c, 5, 20);
    check_stored_in_order(&c, 1, 5);
    for (size_t i = 0; i < c.nstored; i++) ck_assert_int_eq(c.steps[i], (int64_t)i + 1);
    ck_assert_str_eq(wire_get_str(c.last_body, "run"), "run-a");
    outbox_stats_t s = outbox_stats(ob);
    ck_assert_int_eq(s.pending, 0);
    ck_assert_int_eq(s.last_seq, 5);
    ck_assert_int_ge(s.compactions, 1);
    ck_assert_int_eq(spool_records(&first), 0);
    /* a partial ACK trims exactly what it covers */
    for (int i = 6; i <= 9; i++) post_metric(ob, i);
    c.acked = 7; /* pretend 6..7 were stored, 8..9 not yet: ACK 7 */
    json_t *ack = json_pack("{s:i}", "seq", 7);
    char rid[64];
    int n = wire_rid_format(rid, sizeof rid, "run-a", 1);
    ck_assert_int_eq(wire_send(c.router, (uint8_t *)rid, (size_t)n, WIRE_ACK, ack, 0), 0);
    json_decref(ack);
    double t0 = weft_clock();
    while (outbox_stats(ob).acked < 7 && weft_clock() - t0 < 10) {
        wire_msg_t *m = NULL;
        outbox_pump(ob, 10, &m);
        wire_msg_destroy(&m);
    }
    s = outbox_stats(ob);
    ck_assert_int_eq(s.acked, 7);
    ck_assert_int_eq(s.pending, 2);
    ck_assert_int_eq(spool_records(&first), 2);
    ck_assert_int_eq(first, 8);
    outbox_destroy(&ob);
    ck_assert_ptr_null(ob);
    coord_free(&c);
}
END_TEST

START_TEST(restart_replays_exactly_the_unacked)
{
    outbox_t *ob = open_ok("run-b", 3);
    for (int i = 1; i <= 10; i++) post_metric(ob, i);
    coord_t c = {0};
    coord_serve(&c, ob);
    run_until(ob, &c, 10, 20);
    outbox_destroy(&ob);
    coord_free(&c);

    /* Posts 11..20 while the coordinator only stores up to 14. */
    ob = open_ok("run-b", 3);
    ck_assert_int_eq(outbox_stats(ob).pending, 0);
    for (int i = 11; i <= 20; i++) ck_assert_int_eq(post_metric(ob, i), i);
    coord_t c2 = {.acked = 10, .ignore_after = 14};
    coord_serve(&c2, ob);
    double t0 = weft_clock();
    while ((outbox_stats(ob).acked < 14 || outbox_stats(ob).unsent > 0) && weft_clock() - t0 < 20) {
        wire_msg_t *m = NULL;
        outbox_pump(ob, 0, &m);
        wire_msg_destroy(&m);
        coord_poll(&c2, 5);
    }
    ck_assert_int_eq(c2.acked, 14);
    ck_assert_int_eq(outbox_stats(ob).acked, 14);
    outbox_destroy(&ob); /* stopped with 15..20 sent but never acknowledged */
    coord_free(&c2);

    ob = open_ok("run-b", 3);
    outbox_stats_t s = outbox_stats(ob);
    ck_assert_int_eq(s.last_seq, 20);
    ck_assert_int_eq(s.acked, 14);
    ck_assert_int_eq(s.pending, 6);
    /* A fresh coordinator that stored up to 14 gets exactly 15..20, in order. */
    coord_t c3 = {.acked = 14};
    coord_serve(&c3, ob);
    run_until(ob, &c3, 20, 20);
    check_stored_in_order(&c3, 15, 20);
    for (size_t i = 0; i < c3.nstored; i++) ck_assert_int_eq(c3.steps[i], 15 + (int64_t)i);
    ck_assert_int_eq(c3.dups, 0);
    ck_assert_int_eq(post_metric(ob, 21), 21);
    outbox_destroy(&ob);
    coord_free(&c3);
}
END_TEST

START_TEST(sigkill_loses_nothing_posted)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        outbox_t *ob = outbox_open(spool, "run-k", 1);
        if (!ob) _exit(3);
        for (int i = 1; i <= 300; i++) {
            json_t *b = json_pack("{s:i}", "step", i);
            if (outbox_post(ob, WIRE_METRIC, b) != i) _exit(4);
            json_decref(b);
        }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    outbox_t *ob = open_ok("run-k", 1);
    ck_assert_int_eq(outbox_stats(ob).pending, 300);
    coord_t c = {0};
    coord_serve(&c, ob);
    run_until(ob, &c, 300, 30);
    check_stored_in_order(&c, 1, 300);
    for (size_t i = 0; i < c.nstored; i++) ck_assert_int_eq(c.steps[i], (int64_t)i + 1);
    outbox_destroy(&ob);
    coord_free(&c);
}
END_TEST

static void append_raw(const char *text)
{
    FILE *f = fopen(spool, "a");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(torn_tail_is_cut_corruption_is_refused)
{
    outbox_t *ob = outbox_open(spool, "run-t", 1);
    for (int i = 1; i <= 5; i++) post_metric(ob, i);
    outbox_destroy(&ob);
    append_raw("M 6 METRIC {\"ru");
    ob = open_ok("run-t", 1);
    ck_assert_int_eq(outbox_stats(ob).pending, 5);
    ck_assert_int_eq(post_metric(ob, 6), 6);
    outbox_destroy(&ob);
    ob = open_ok("run-t", 1);
    ck_assert_int_eq(outbox_stats(ob).pending, 6);
    outbox_destroy(&ob);

    /* a bad line with records after it is not a torn append */
    append_raw("garbage\n");
    append_raw("M 7 METRIC {\"step\":7}\n");
    ck_assert_ptr_null(outbox_open(spool, "run-t", 1));
    ck_assert_msg(strstr(weft_last_error(), spool) && strstr(weft_last_error(), "line 8"), "%s",
                  weft_last_error());

    /* not a spool at all, and someone else's spool */
    FILE *f = fopen(spool, "w");
    fputs("hello\n", f);
    fclose(f);
    ck_assert_ptr_null(outbox_open(spool, "run-t", 1));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "not a weft outbox spool"));
    unlink(spool);
    ob = outbox_open(spool, "run-x", 1);
    outbox_destroy(&ob);
    ck_assert_ptr_null(outbox_open(spool, "run-t", 1));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "belongs to run run-x"));
    /* a message that is not a stored worker message */
    ob = outbox_open(spool, "run-x", 1);
    json_t *b = json_object();
    ck_assert_int_eq(outbox_post(ob, WIRE_HEARTBEAT, b), -1);
    ck_assert_int_eq(outbox_post(ob, WIRE_STATUS, b), -1);
    json_t *arr = json_array();
    ck_assert_int_eq(outbox_post(ob, WIRE_METRIC, arr), -1);
    ck_assert_int_eq(outbox_stats(ob).last_seq, 0);
    ck_assert_int_eq(outbox_connect(ob, ctx, "bogus://x", NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "bogus://x"));
    ck_assert_int_eq(outbox_connect(ob, ctx, endpoint, NULL), 0);
    ck_assert_int_eq(outbox_connect(ob, ctx, endpoint, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "already connected"));
    json_decref(arr);
    json_decref(b);
    outbox_destroy(&ob);
    ck_assert_ptr_null(outbox_open(spool, "bad/run", 1));
}
END_TEST

START_TEST(new_attempt_carries_unacked_over)
{
    outbox_t *ob = outbox_open(spool, "run-n", 1);
    json_t *hello = json_pack("{s:i}", "ranks", 2);
    ck_assert_int_eq(outbox_post(ob, WIRE_HELLO, hello), 1);
    json_decref(hello);
    for (int i = 1; i <= 4; i++) post_metric(ob, i);
    json_t *ck = json_pack("{s:i}", "step", 4);
    ck_assert_int_eq(outbox_post(ob, WIRE_CHECKPOINT, ck), 6);
    json_decref(ck);
    outbox_destroy(&ob);

    ob = open_ok("run-n", 2);
    outbox_stats_t s = outbox_stats(ob);
    ck_assert_int_eq(s.pending, 5); /* the HELLO of attempt 1 is dropped */
    ck_assert_int_eq(s.last_seq, 5);
    ck_assert_int_eq(s.acked, 0);
    coord_t c = {0};
    coord_serve(&c, ob);
    run_until(ob, &c, 5, 20);
    check_stored_in_order(&c, 1, 5);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(c.steps[i], i + 1);
    ck_assert_int_eq(c.last_cmd, WIRE_CHECKPOINT);
    assert_last_int(&c, "attempt", 2);
    assert_last_int(&c, "from_attempt", 1);
    outbox_destroy(&ob);
    coord_free(&c);
    /* the old attempt may not write to the spool any more */
    ck_assert_ptr_null(outbox_open(spool, "run-n", 1));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "stale"));
}
END_TEST

START_TEST(stale_attempt_cannot_clobber_the_spool)
{
    outbox_t *old = outbox_open(spool, "run-c", 1);
    for (int i = 1; i <= 3; i++) post_metric(old, i);
    /* a newer attempt opens the spool while the old group still runs */
    outbox_t *cur = open_ok("run-c", 2);
    ck_assert_int_eq(post_metric(cur, 4), 4);
    /* the old one gets its ACKs and would compact: it must leave the file alone */
    outbox_set_compact_every(old, 0);
    coord_t c = {0};
    coord_serve(&c, old);
    run_until(old, &c, 3, 20);
    ck_assert_int_eq(outbox_stats(old).compactions, 0);
    outbox_destroy(&old);
    outbox_destroy(&cur);
    coord_free(&c);
    cur = open_ok("run-c", 2);
    ck_assert_int_eq(outbox_stats(cur).last_seq, 4);
    ck_assert_int_eq(outbox_stats(cur).pending, 4);
    outbox_destroy(&cur);
}
END_TEST

START_TEST(late_and_restarting_coordinator_gets_each_once)
{
    outbox_t *ob = outbox_open(spool, "run-l", 1);
    outbox_set_resend_ms(ob, 60000); /* only the reconnect may trigger resends */
    ck_assert_int_eq(outbox_connect(ob, ctx, endpoint, NULL), 0);
    /* nobody there yet */
    for (int i = 1; i <= 2000; i++) {
        post_metric(ob, i);
        if (i % 100 == 0) {
            wire_msg_t *m = NULL;
            ck_assert_int_eq(outbox_pump(ob, 0, &m), 0);
        }
    }
    /* at most a high-water mark's worth went into ZeroMQ's queue */
    ck_assert_int_le(outbox_stats(ob).sent, 1000);
    coord_t c = {0};
    coord_start(&c);
    run_until(ob, &c, 2000, 60);
    /* the coordinator dies mid-stream and comes back with its stored state */
    for (int i = 2001; i <= 2500; i++) {
        post_metric(ob, i);
        wire_msg_t *m = NULL;
        outbox_pump(ob, 0, &m);
        wire_msg_destroy(&m);
        if (i < 2200) coord_poll(&c, 0);
        if (i == 2200) coord_stop(&c);
    }
    int64_t before = c.acked;
    ck_assert_int_lt(before, 2500);
    coord_start(&c);
    run_until(ob, &c, 2500, 60);
    check_stored_in_order(&c, 1, 2500);
    for (size_t i = 0; i < c.nstored; i++) ck_assert_int_eq(c.steps[i], (int64_t)i + 1);
    outbox_stats_t s = outbox_stats(ob);
    ck_assert_int_eq(s.pending, 0);
    ck_assert_int_ge(s.sent, 2500);
    outbox_destroy(&ob);
    coord_free(&c);
}
END_TEST

START_TEST(lost_message_is_resent_on_rewind)
{
    outbox_t *ob = outbox_open(spool, "run-g", 1);
    outbox_set_resend_ms(ob, 60000); /* only the coordinator's rewind can help */
    coord_t c = {.drop_once = 3};
    coord_serve(&c, ob);
    for (int i = 1; i <= 6; i++) post_metric(ob, i);
    run_until(ob, &c, 6, 20);
    check_stored_in_order(&c, 1, 6);
    ck_assert_int_ge(c.gaps, 1);
    ck_assert_int_ge(outbox_stats(ob).resent, 1);
    outbox_destroy(&ob);
    coord_free(&c);
}
END_TEST

START_TEST(silent_coordinator_triggers_resend)
{
    outbox_t *ob = outbox_open(spool, "run-s", 1);
    outbox_set_resend_ms(ob, 200);
    coord_t c = {0};
    coord_serve(&c, ob);
    for (int i = 1; i <= 3; i++) post_metric(ob, i);
    /* Swallow everything without an ACK for a while: the outbox sends again. */
    double t0 = weft_clock();
    int received = 0;
    while (weft_clock() - t0 < 1.0) {
        wire_msg_t *m = NULL;
        outbox_pump(ob, 0, &m);
        wire_reject_t rej;
        zmq_pollitem_t it = {c.router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) > 0 && wire_recv(c.router, NULL, ZMQ_DONTWAIT, &m, &rej) == 0) {
            received++;
            wire_msg_destroy(&m);
        }
    }
    ck_assert_int_ge(received, 6);
    ck_assert_int_ge(outbox_stats(ob).resent, 3);
    run_until(ob, &c, 3, 20);
    check_stored_in_order(&c, 1, 3);
    outbox_destroy(&ob);
    coord_free(&c);
}
END_TEST

START_TEST(posting_never_blocks_without_a_peer)
{
    outbox_t *ob = outbox_open(spool, "run-q", 1);
    ck_assert_int_eq(outbox_connect(ob, ctx, endpoint, NULL), 0);
    double t0 = weft_clock(), worst = 0;
    for (int i = 1; i <= 5000; i++) {
        double t = weft_clock();
        post_metric(ob, i);
        if (i % 10 == 0) {
            wire_msg_t *m = NULL;
            ck_assert_int_eq(outbox_pump(ob, 0, &m), 0);
        }
        if (weft_clock() - t > worst) worst = weft_clock() - t;
    }
    double total = weft_clock() - t0;
    /* A blocking send would hang here for good; the bounds only catch that. */
    ck_assert_msg(total < 20.0, "5000 posts took %.1f s", total);
    ck_assert_msg(worst < 2.0, "one post took %.3f s", worst);
    outbox_stats_t s = outbox_stats(ob);
    ck_assert_int_le(s.sent, 1000); /* ZeroMQ queues up to its high-water mark */
    ck_assert_int_eq(s.unsent, 5000 - s.sent);
    ck_assert_int_eq(s.last_seq, 5000);
    ck_assert_int_eq(outbox_stats(ob).connected, 0);
    ck_assert_int_eq(outbox_heartbeat(ob, NULL), WIRE_AGAIN);
    ck_assert_int_eq(outbox_sync(ob), 0);
    outbox_destroy(&ob);
}
END_TEST

START_TEST(coordinator_orders_heartbeats_and_bad_input)
{
    outbox_t *ob = outbox_open(spool, "run-o", 4);
    coord_t c = {0};
    coord_serve(&c, ob);
    post_metric(ob, 1);
    post_metric(ob, 2);
    run_until(ob, &c, 2, 20);
    double t0 = weft_clock();
    while (!outbox_stats(ob).connected && weft_clock() - t0 < 10) {
        wire_msg_t *m = NULL;
        outbox_pump(ob, 20, &m);
        wire_msg_destroy(&m);
    }
    ck_assert_int_eq(outbox_stats(ob).connected, 1);
    /* a heartbeat goes out unstored, with the stream's position */
    json_t *hb = json_pack("{s:i}", "step", 2);
    t0 = weft_clock();
    while (c.other == 0 && weft_clock() - t0 < 10) {
        outbox_heartbeat(ob, hb);
        coord_poll(&c, 20);
    }
    json_decref(hb);
    ck_assert_int_eq(c.last_cmd, WIRE_HEARTBEAT);
    assert_last_int(&c, "last_seq", 2);
    assert_last_int(&c, "acked", 2);
    ck_assert_ptr_null(json_object_get(c.last_body, "seq"));
    ck_assert_int_eq(outbox_stats(ob).last_seq, 2);
    long long first;
    ck_assert_int_le(spool_records(&first), 2);

    /* garbage, then PREEMPT: the garbage is counted, PREEMPT handed over */
    char rid[64];
    int n = wire_rid_format(rid, sizeof rid, "run-o", 4);
    zmq_send(c.router, rid, (size_t)n, ZMQ_SNDMORE);
    zmq_send(c.router, "WEFT9", 5, ZMQ_SNDMORE);
    zmq_send(c.router, "ACK", 3, ZMQ_SNDMORE);
    zmq_send(c.router, "{}", 2, 0);
    json_t *p = json_pack("{s:s}", "reason", "slurm");
    ck_assert_int_eq(wire_send(c.router, (uint8_t *)rid, (size_t)n, WIRE_PREEMPT, p, 0), 0);
    json_decref(p);
    wire_msg_t *m = NULL;
    int rc = 0;
    t0 = weft_clock();
    while (rc == 0 && weft_clock() - t0 < 10) rc = outbox_pump(ob, 50, &m);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(m->cmd, WIRE_PREEMPT);
    ck_assert_str_eq(wire_get_str(m->body, "reason"), "slurm");
    wire_msg_destroy(&m);
    ck_assert_int_eq(outbox_stats(ob).rejected, 1);

    /* an ACK beyond the end (the spool lost its tail): numbering jumps past it */
    json_t *ack = json_pack("{s:i}", "seq", 40);
    ck_assert_int_eq(wire_send(c.router, (uint8_t *)rid, (size_t)n, WIRE_ACK, ack, 0), 0);
    json_decref(ack);
    t0 = weft_clock();
    while (outbox_stats(ob).acked < 40 && weft_clock() - t0 < 10) {
        outbox_pump(ob, 20, &m);
        wire_msg_destroy(&m);
    }
    ck_assert_int_eq(outbox_stats(ob).acked, 40);
    ck_assert_int_eq(post_metric(ob, 3), 41);
    outbox_destroy(&ob);
    /* ... and it survives a reopen */
    ob = outbox_open(spool, "run-o", 4);
    ck_assert_int_eq(outbox_stats(ob).last_seq, 41);
    ck_assert_int_eq(outbox_stats(ob).pending, 1);
    outbox_destroy(&ob);
    coord_free(&c);
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(numbered_in_order_and_ack_trims),
                            CHECK_TEST(restart_replays_exactly_the_unacked),
                            CHECK_TEST(sigkill_loses_nothing_posted),
                            CHECK_TEST(torn_tail_is_cut_corruption_is_refused),
                            CHECK_TEST(new_attempt_carries_unacked_over),
                            CHECK_TEST(stale_attempt_cannot_clobber_the_spool),
                            CHECK_TEST(late_and_restarting_coordinator_gets_each_once),
                            CHECK_TEST(lost_message_is_resent_on_rewind),
                            CHECK_TEST(silent_coordinator_triggers_resend),
                            CHECK_TEST(posting_never_blocks_without_a_peer),
                            CHECK_TEST(coordinator_orders_heartbeats_and_bad_input)};
    return check_main(
        (check_opts_t){.suite = "outbox", .timeout = 120, .setup = setup, .teardown = teardown},
        tests, CHECK_NTESTS(tests));
}
