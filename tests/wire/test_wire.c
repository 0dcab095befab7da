/* test_wire.c: the message layer over real ZeroMQ sockets on ipc:// in a
 * temp folder: every command round trips both ways, each kind of malformed
 * message is rejected with its reason, ROUTER_MANDATORY, EAGAIN, routing ids. */
#include "tests/check_main.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static char tmpdir[256];
static char endpoint[320];
static void *ctx;

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-test-wire-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/w.sock", tmpdir);
    ctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(ctx);
}

static void teardown(void)
{
    zmq_ctx_term(ctx);
    weft_rm_rf(tmpdir);
}

/* Receives on sock, waiting up to ms. */
static int recv_wait(void *sock, const wire_rx_t *rx, int ms, wire_msg_t **m, wire_reject_t *rej)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0) return WIRE_AGAIN;
    return wire_recv(sock, rx, ZMQ_DONTWAIT, m, rej);
}

/* An admit hook (wire_recv_admit): RESULTS is refused before its JSON is
 * read, whatever it holds; the hook sees the command and sender. */
static int admit_no_results(void *ctx, const wire_msg_t *m, size_t json_len, char *why,
                            size_t whysize)
{
    (void)ctx;
    if (m->cmd != WIRE_RESULTS) return 0;
    snprintf(why, whysize, "RESULTS of %zu bytes from %.*s refused", json_len, (int)m->rid_len,
             (const char *)m->rid);
    return WIRE_REJ_LIMIT;
}

/* A connected ROUTER/DEALER pair; the DEALER's first message makes the
 * ROUTER know it. */
static void pair_up(void **router, void **dealer, const char *rid)
{
    *router = wire_router_new(ctx, endpoint, NULL);
    ck_assert_msg(*router != NULL, "%s", weft_last_error());
    *dealer = wire_dealer_new(ctx, endpoint, rid, NULL);
    ck_assert_msg(*dealer != NULL, "%s", weft_last_error());
}

static void close_pair(void *router, void *dealer)
{
    zmq_close(dealer);
    zmq_close(router);
}

/* A body that passes the common-field checks for cmd. */
static json_t *body_for(wire_cmd_t cmd, int i)
{
    json_t *b = json_pack("{s:i, s:s}", "i", i, "word", wire_cmd_name(cmd));
    unsigned from = wire_cmd_senders(cmd);
    if (from == WIRE_FROM_WORKER) {
        json_object_set_new(b, "run", json_string("run-7"));
        json_object_set_new(b, "attempt", json_integer(2));
        if (cmd != WIRE_HEARTBEAT) json_object_set_new(b, "seq", json_integer(i));
    }
    if (cmd == WIRE_ACK) json_object_set_new(b, "seq", json_integer(i));
    if (cmd == WIRE_ERROR) json_object_set_new(b, "error", json_string("json"));
    return b;
}

START_TEST(command_table)
{
    for (int c = WIRE_NONE + 1; c < WIRE_CMD_COUNT; c++) {
        const char *w = wire_cmd_name((wire_cmd_t)c);
        ck_assert_ptr_nonnull(w);
        ck_assert_int_le(strlen(w), WIRE_CMD_MAX);
        ck_assert_int_eq(wire_cmd_lookup(w, strlen(w)), c);
        ck_assert_uint_ne(wire_cmd_senders((wire_cmd_t)c), 0);
    }
    ck_assert_int_eq(wire_cmd_lookup("metric", 6), WIRE_NONE);
    ck_assert_int_eq(wire_cmd_lookup("METRICS", 7), WIRE_NONE);
    ck_assert_int_eq(wire_cmd_lookup("METRIC", 5), WIRE_NONE);
    ck_assert_ptr_null(wire_cmd_name(WIRE_NONE));
    ck_assert_ptr_null(wire_cmd_name(WIRE_CMD_COUNT));
    ck_assert_uint_eq(wire_cmd_senders(WIRE_CANCEL), WIRE_FROM_CLIENT | WIRE_FROM_COORD);
    ck_assert_uint_eq(wire_cmd_senders(WIRE_METRIC), WIRE_FROM_WORKER);
    ck_assert_uint_eq(wire_cmd_senders(WIRE_PREEMPT), WIRE_FROM_COORD);
    ck_assert_uint_eq(wire_cmd_senders(WIRE_ADMIT), WIRE_FROM_COORD);
    ck_assert_int_eq(wire_cmd_lookup("ADMIT", 5), WIRE_ADMIT);
    ck_assert_str_eq(wire_reject_name(WIRE_REJ_OVERSIZE), "oversize");
    ck_assert_str_eq(wire_reject_name(WIRE_REJ_LIMIT), "limit");
}
END_TEST

START_TEST(round_trip_every_command)
{
    void *router, *dealer;
    pair_up(&router, &dealer, "run-7:2");
    wire_rx_t any = {0, 0};
    for (int c = WIRE_NONE + 1; c < WIRE_CMD_COUNT; c++) {
        json_t *b = body_for((wire_cmd_t)c, c);
        ck_assert_int_eq(wire_send(dealer, NULL, 0, (wire_cmd_t)c, b, 0), 0);
        wire_msg_t *m = NULL;
        wire_reject_t rej;
        int rc = recv_wait(router, &any, 5000, &m, &rej);
        ck_assert_msg(rc == 0, "%s: rc %d (%s)", wire_cmd_name((wire_cmd_t)c), rc, rej.text);
        ck_assert_int_eq(m->cmd, c);
        ck_assert_msg(json_equal(m->body, b), "%s body changed", wire_cmd_name((wire_cmd_t)c));
        ck_assert_uint_eq(m->rid_len, 7);
        ck_assert_mem_eq(m->rid, "run-7:2", 7);
        ck_assert_str_eq(m->user_id, "");
        /* and back, addressed by the routing id it came from */
        ck_assert_int_eq(wire_send(router, m->rid, m->rid_len, (wire_cmd_t)c, b, 0), 0);
        wire_msg_destroy(&m);
        ck_assert_ptr_null(m);
        rc = recv_wait(dealer, &any, 5000, &m, &rej);
        ck_assert_msg(rc == 0, "%s back: rc %d (%s)", wire_cmd_name((wire_cmd_t)c), rc, rej.text);
        ck_assert_int_eq(m->cmd, c);
        ck_assert(json_equal(m->body, b));
        ck_assert_uint_eq(m->rid_len, 0);
        wire_msg_destroy(&m);
        json_decref(b);
    }
    close_pair(router, dealer);
}
END_TEST

typedef struct {
    const char *what;
    int nframes;
    const char *frame[6];
    size_t len[6]; /* 0: strlen */
    wire_reject_code_t code;
} bad_t;

static char big_magic[100], big_word[40], big_json[300];

START_TEST(malformed_messages_rejected_with_reason)
{
    memset(big_magic, 'W', sizeof big_magic - 1);
    memset(big_word, 'M', sizeof big_word - 1);
    snprintf(big_json, sizeof big_json, "{\"pad\":\"%0250d\"}", 0);
    const bad_t bad[] = {
        {"one frame", 1, {"WEFT1"}, {0}, WIRE_REJ_FRAMES},
        {"two frames", 2, {"WEFT1", "STATUS"}, {0}, WIRE_REJ_FRAMES},
        {"four frames", 4, {"WEFT1", "STATUS", "{}", "{}"}, {0}, WIRE_REJ_FRAMES},
        {"six frames", 6, {"WEFT1", "STATUS", "{}", "{}", "{}", "{}"}, {0}, WIRE_REJ_FRAMES},
        {"magic", 3, {"WEFT2", "STATUS", "{}"}, {0}, WIRE_REJ_MAGIC},
        {"empty magic", 3, {"", "STATUS", "{}"}, {0}, WIRE_REJ_MAGIC},
        {"long magic", 3, {big_magic, "STATUS", "{}"}, {0}, WIRE_REJ_FRAME_SIZE},
        {"long command", 3, {"WEFT1", big_word, "{}"}, {0}, WIRE_REJ_FRAME_SIZE},
        {"unknown command", 3, {"WEFT1", "BOGUS", "{}"}, {0}, WIRE_REJ_COMMAND},
        {"lower-case command", 3, {"WEFT1", "status", "{}"}, {0}, WIRE_REJ_COMMAND},
        {"binary command", 3, {"WEFT1", "ST\0TUS", "{}"}, {0, 6, 0}, WIRE_REJ_COMMAND},
        {"coordinator word", 3, {"WEFT1", "ACK", "{\"seq\":1}"}, {0}, WIRE_REJ_ROLE},
        {"oversize", 3, {"WEFT1", "STATUS", big_json}, {0}, WIRE_REJ_OVERSIZE},
        {"bad json", 3, {"WEFT1", "STATUS", "{\"a\":"}, {0}, WIRE_REJ_JSON},
        {"bad utf-8", 3, {"WEFT1", "STATUS", "{\"a\":\"\xff\"}"}, {0}, WIRE_REJ_JSON},
        {"duplicate key", 3, {"WEFT1", "STATUS", "{\"a\":1,\"a\":2}"}, {0}, WIRE_REJ_JSON},
        {"empty body", 3, {"WEFT1", "STATUS", ""}, {0}, WIRE_REJ_JSON},
        {"array", 3, {"WEFT1", "STATUS", "[1,2]"}, {0}, WIRE_REJ_NOT_OBJECT},
        {"number", 3, {"WEFT1", "STATUS", "42"}, {0}, WIRE_REJ_NOT_OBJECT},
        {"no seq", 3, {"WEFT1", "METRIC", "{\"run\":\"r1\",\"attempt\":3}"}, {0}, WIRE_REJ_FIELD},
        {"string seq",
         3,
         {"WEFT1", "METRIC", "{\"run\":\"r1\",\"attempt\":3,\"seq\":\"4\"}"},
         {0},
         WIRE_REJ_FIELD},
        {"attempt 0",
         3,
         {"WEFT1", "DONE", "{\"run\":\"r1\",\"attempt\":0,\"seq\":4}"},
         {0},
         WIRE_REJ_FIELD},
        {"bad run",
         3,
         {"WEFT1", "HELLO", "{\"run\":\"../x\",\"attempt\":3,\"seq\":4}"},
         {0},
         WIRE_REJ_FIELD},
        {"negative acked",
         3,
         {"WEFT1", "METRIC", "{\"run\":\"r1\",\"attempt\":3,\"seq\":4,\"acked\":-1}"},
         {0},
         WIRE_REJ_FIELD},
        {"other run",
         3,
         {"WEFT1", "METRIC", "{\"run\":\"r2\",\"attempt\":3,\"seq\":4}"},
         {0},
         WIRE_REJ_IDENTITY},
        {"other attempt",
         3,
         {"WEFT1", "HEARTBEAT", "{\"run\":\"r1\",\"attempt\":2}"},
         {0},
         WIRE_REJ_IDENTITY},
        {"refused by admit", 3, {"WEFT1", "RESULTS", "{not even json"}, {0}, WIRE_REJ_LIMIT},
    };
    wire_rx_t rx = {WIRE_FROM_CLIENT | WIRE_FROM_WORKER, 200};
    void *router, *dealer;
    pair_up(&router, &dealer, "r1:3");
    int counted[WIRE_REJ_COUNT] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_t *b = &bad[i];
        for (int f = 0; f < b->nframes; f++) {
            size_t len = b->len[f] ? b->len[f] : strlen(b->frame[f]);
            ck_assert_int_ge(
                zmq_send(dealer, b->frame[f], len, f < b->nframes - 1 ? ZMQ_SNDMORE : 0), 0);
        }
        wire_msg_t *m = NULL;
        wire_reject_t rej;
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        ck_assert_int_eq(zmq_poll(&it, 1, 5000), 1);
        int rc = wire_recv_admit(router, &rx, admit_no_results, NULL, ZMQ_DONTWAIT, &m, &rej);
        ck_assert_msg(rc == WIRE_REJECTED, "%s: rc %d, expected a rejection", b->what, rc);
        ck_assert_ptr_null(m);
        ck_assert_msg(rej.code == b->code, "%s: reason %s (%s), expected %s", b->what,
                      wire_reject_name(rej.code), rej.text, wire_reject_name(b->code));
        ck_assert_msg(rej.text[0] != '\0', "%s: no message", b->what);
        ck_assert_uint_eq(rej.rid_len, 4);
        ck_assert_mem_eq(rej.rid, "r1:3", 4);
        counted[rej.code]++;
        /* the sender can be told why */
        ck_assert_int_eq(wire_send_error(router, rej.rid, rej.rid_len, rej.code, rej.text, 0), 0);
        rc = recv_wait(dealer, NULL, 5000, &m, &rej);
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(m->cmd, WIRE_ERROR);
        ck_assert_str_eq(wire_get_str(m->body, "error"), wire_reject_name(b->code));
        wire_msg_destroy(&m);
    }
    for (int c = WIRE_REJ_FRAMES; c < WIRE_REJ_COUNT; c++)
        ck_assert_msg(counted[c] > 0, "reason %s never exercised", wire_reject_name(c));
    /* after all that, a valid message still gets through whole */
    json_t *ok =
        json_pack("{s:s, s:i, s:i, s:f}", "run", "r1", "attempt", 3, "seq", 9, "loss", 2.5);
    ck_assert_int_eq(wire_send(dealer, NULL, 0, WIRE_METRIC, ok, 0), 0);
    wire_msg_t *m = NULL;
    wire_reject_t rej;
    ck_assert_int_eq(recv_wait(router, &rx, 5000, &m, &rej), 0);
    ck_assert_int_eq(m->cmd, WIRE_METRIC);
    ck_assert(json_equal(m->body, ok));
    int64_t seq = 0;
    ck_assert_int_eq(wire_get_int(m->body, "seq", &seq), 0);
    ck_assert_int_eq(seq, 9);
    ck_assert_int_eq(wire_get_int(m->body, "loss", &seq), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "loss"));
    wire_msg_destroy(&m);
    json_decref(ok);
    close_pair(router, dealer);
}
END_TEST

START_TEST(transport_limit_drops_huge_frames)
{
    /* Above ZMQ_MAXMSGSIZE the peer is cut off before anything reaches us. */
    wire_opts_t o = wire_opts_default();
    o.max_msg = 1000;
    void *router = wire_router_new(ctx, endpoint, &o);
    ck_assert_ptr_nonnull(router);
    void *bad = wire_dealer_new(ctx, endpoint, "bad:1", NULL);
    char *huge = malloc(5000);
    memset(huge, ' ', 5000);
    huge[0] = '{';
    huge[4999] = '}';
    zmq_send(bad, "WEFT1", 5, ZMQ_SNDMORE);
    zmq_send(bad, "STATUS", 6, ZMQ_SNDMORE);
    zmq_send(bad, huge, 5000, 0);
    free(huge);
    wire_msg_t *m = NULL;
    wire_reject_t rej;
    ck_assert_int_eq(recv_wait(router, NULL, 500, &m, &rej), WIRE_AGAIN);
    void *good = wire_dealer_new(ctx, endpoint, "good:1", NULL);
    json_t *b = json_pack("{s:s}", "q", "x");
    ck_assert_int_eq(wire_send(good, NULL, 0, WIRE_STATUS, b, 0), 0);
    ck_assert_int_eq(recv_wait(router, NULL, 5000, &m, &rej), 0);
    ck_assert_mem_eq(m->rid, "good:1", 6);
    wire_msg_destroy(&m);
    json_decref(b);
    zmq_close(bad);
    zmq_close(good);
    zmq_close(router);
}
END_TEST

START_TEST(router_mandatory_reports_unroutable)
{
    void *router, *dealer;
    pair_up(&router, &dealer, "live:1");
    json_t *b = json_pack("{s:i}", "seq", 1);
    /* the ROUTER learns "live:1" from its first message */
    json_t *h = json_pack("{s:s, s:i, s:i}", "run", "live", "attempt", 1, "seq", 1);
    ck_assert_int_eq(wire_send(dealer, NULL, 0, WIRE_HELLO, h, 0), 0);
    wire_msg_t *m = NULL;
    wire_reject_t rej;
    ck_assert_int_eq(recv_wait(router, NULL, 5000, &m, &rej), 0);
    wire_msg_destroy(&m);
    ck_assert_int_eq(wire_send(router, (const uint8_t *)"gone:1", 6, WIRE_ACK, b, ZMQ_DONTWAIT),
                     WIRE_UNROUTABLE);
    ck_assert_int_eq(wire_send(router, (const uint8_t *)"gone:1", 6, WIRE_ACK, b, 0),
                     WIRE_UNROUTABLE);
    ck_assert_int_eq(wire_send(router, (const uint8_t *)"live:1", 6, WIRE_ACK, b, ZMQ_DONTWAIT), 0);
    ck_assert_int_eq(recv_wait(dealer, NULL, 5000, &m, &rej), 0);
    ck_assert_int_eq(m->cmd, WIRE_ACK);
    wire_msg_destroy(&m);
    /* a ROUTER needs a routing id to send at all */
    ck_assert_int_eq(wire_send(router, NULL, 0, WIRE_ACK, b, 0), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "routing id"));
    json_decref(b);
    json_decref(h);
    close_pair(router, dealer);
}
END_TEST

START_TEST(eagain_is_distinct)
{
    /* Nothing listens: with IMMEDIATE nothing is queued, so DONTWAIT says AGAIN
     * (a send-only use; see wire_opts_default for why it is off by default). */
    wire_opts_t o = wire_opts_default();
    ck_assert_int_eq(o.immediate, 0);
    o.immediate = 1;
    void *d = wire_dealer_new(ctx, endpoint, "w:1", &o);
    ck_assert_ptr_nonnull(d);
    json_t *b = json_pack("{s:s, s:i, s:i}", "run", "w", "attempt", 1, "seq", 1);
    ck_assert_int_eq(wire_send(d, NULL, 0, WIRE_METRIC, b, ZMQ_DONTWAIT), WIRE_AGAIN);
    wire_msg_t *m = NULL;
    wire_reject_t rej;
    ck_assert_int_eq(wire_recv(d, NULL, ZMQ_DONTWAIT, &m, &rej), WIRE_AGAIN);
    ck_assert_ptr_null(m);
    zmq_close(d);
    /* Without IMMEDIATE the DEALER queues up to its HWM, then says AGAIN. */
    o = wire_opts_default();
    o.sndhwm = 10;
    d = wire_dealer_new(ctx, endpoint, "w:1", &o);
    int sent = 0;
    while (sent < 100000 && wire_send(d, NULL, 0, WIRE_METRIC, b, ZMQ_DONTWAIT) == 0) sent++;
    ck_assert_int_ge(sent, 1);
    ck_assert_int_le(sent, 100);
    ck_assert_int_eq(wire_send(d, NULL, 0, WIRE_METRIC, b, ZMQ_DONTWAIT), WIRE_AGAIN);
    /* bodies must be objects */
    json_t *arr = json_array();
    ck_assert_int_eq(wire_send(d, NULL, 0, WIRE_METRIC, arr, ZMQ_DONTWAIT), -1);
    ck_assert_int_eq(wire_send(d, NULL, 0, WIRE_NONE, b, ZMQ_DONTWAIT), -1);
    json_decref(arr);
    json_decref(b);
    zmq_close(d);
}
END_TEST

START_TEST(routing_ids)
{
    char out[300], run[WIRE_RUN_MAX + 1];
    int64_t a = 0;
    ck_assert_int_eq(wire_rid_format(out, sizeof out, "night-1.b_2", 17), 14);
    ck_assert_str_eq(out, "night-1.b_2:17");
    ck_assert_int_eq(wire_rid_parse((uint8_t *)out, strlen(out), run, sizeof run, &a), 0);
    ck_assert_str_eq(run, "night-1.b_2");
    ck_assert_int_eq(a, 17);
    ck_assert_int_eq(wire_rid_format(out, sizeof out, "r", 0), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "attempt"));
    ck_assert_int_eq(wire_rid_format(out, sizeof out, "a/b", 1), -1);
    ck_assert_int_eq(wire_rid_format(out, 4, "abc", 1), -1);
    const char *bad[] = {
        "",   "abc",   "abc:", "abc:0",  "abc:01", "abc:-1", "abc:2147483648", "abc:99999999999",
        ":1", "a b:1", ".x:1", "abc:1x", "a:b:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(
            wire_rid_parse((const uint8_t *)bad[i], strlen(bad[i]), run, sizeof run, &a) == -1,
            "\"%s\" parsed", bad[i]);
    ck_assert_int_eq(wire_rid_parse((const uint8_t *)"\0abc:1", 6, run, sizeof run, &a), -1);
    ck_assert_int_eq(wire_rid_parse((const uint8_t *)"abc:2147483647", 14, run, sizeof run, &a), 0);
    ck_assert_int_eq(a, 2147483647);
    /* the longest run id still makes a legal routing id */
    char longrun[WIRE_RUN_MAX + 2];
    memset(longrun, 'r', WIRE_RUN_MAX);
    longrun[WIRE_RUN_MAX] = '\0';
    int n = wire_rid_format(out, sizeof out, longrun, 2147483647);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, WIRE_RID_MAX);
    ck_assert_int_eq(wire_rid_parse((uint8_t *)out, (size_t)n, run, sizeof run, &a), 0);
    longrun[WIRE_RUN_MAX] = 'r';
    longrun[WIRE_RUN_MAX + 1] = '\0';
    ck_assert_int_eq(wire_run_valid(longrun), 0);
    ck_assert_int_eq(wire_rid_format(out, sizeof out, longrun, 1), -1);
    /* a DEALER refuses an empty routing id */
    ck_assert_ptr_null(wire_dealer_new(ctx, endpoint, "", NULL));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "routing id"));
}
END_TEST

START_TEST(sequence_acceptance)
{
    int64_t acked = 0;
    ck_assert_int_eq(wire_seq_accept(&acked, 1, -1), WIRE_SEQ_NEW);
    ck_assert_int_eq(acked, 1);
    ck_assert_int_eq(wire_seq_accept(&acked, 1, -1), WIRE_SEQ_DUP);
    ck_assert_int_eq(wire_seq_accept(&acked, 3, 0), WIRE_SEQ_GAP);
    ck_assert_int_eq(acked, 1);
    ck_assert_int_eq(wire_seq_accept(&acked, 2, 0), WIRE_SEQ_NEW);
    ck_assert_int_eq(wire_seq_accept(&acked, 3, 0), WIRE_SEQ_NEW);
    ck_assert_int_eq(acked, 3);
    /* a coordinator that lost its mark learns it from the sender */
    acked = 0;
    ck_assert_int_eq(wire_seq_accept(&acked, 11, 10), WIRE_SEQ_NEW);
    ck_assert_int_eq(acked, 11);
    ck_assert_int_eq(wire_seq_accept(&acked, 5, 10), WIRE_SEQ_DUP);
    ck_assert_int_eq(acked, 11);
}
END_TEST

START_TEST(bind_errors_are_clear)
{
    ck_assert_ptr_null(wire_router_new(ctx, "ipc:///nonexistent-dir/x/y.sock", NULL));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "/nonexistent-dir/x/y.sock"));
    ck_assert_ptr_null(wire_dealer_new(ctx, "bogus://x", "a:1", NULL));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "bogus://x"));
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(command_table),
                            CHECK_TEST(round_trip_every_command),
                            CHECK_TEST(malformed_messages_rejected_with_reason),
                            CHECK_TEST(transport_limit_drops_huge_frames),
                            CHECK_TEST(router_mandatory_reports_unroutable),
                            CHECK_TEST(eagain_is_distinct),
                            CHECK_TEST(routing_ids),
                            CHECK_TEST(sequence_acceptance),
                            CHECK_TEST(bind_errors_are_clear)};
    return check_main(
        (check_opts_t){.suite = "wire", .timeout = 60, .setup = setup, .teardown = teardown}, tests,
        CHECK_NTESTS(tests));
}
