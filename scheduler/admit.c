/* admit.c: what weftd decides about a client's message from its command,
 * sender and size alone, before reading its JSON (wire_rx_t.admit): small
 * commands stay small, and each sender gets a budget of large-request bytes
 * per second, so that no client can hold the loop (docs/PROTOCOL.md, Limits). */
#include "scheduler/weftd.h"

#include <stdio.h>
#include <string.h>

/* Every client command but SUBMIT fits in this (a CANCEL of 1000 ids of 19
 * digits is 20 KB). */
#define ADMIT_SMALL (64 * 1024)
/* Large requests (SUBMIT above ADMIT_SMALL): bytes per second per sender,
 * and the most a sender may have in hand at once (at least --max-message). */
#define ADMIT_RATE  (0.5 * 1024 * 1024)
#define ADMIT_BURST (2.0 * 1024 * 1024)
/* Senders remembered: keys by role, local connections by routing id; the
 * least recently seen is forgotten first. */
#define ADMIT_SENDERS 64

typedef struct {
    char key[WIRE_RID_MAX + 2]; /* 'k' + role, or 'r' + routing id */
    size_t key_len;
    double tokens, seen;
} sender_t;

static sender_t senders[ADMIT_SENDERS];

/* The sender's bucket: its key (tenant:NAME, admin over tcp) when it has
 * one, else its connection (the local admin over ipc). */
static sender_t *sender_of(const wire_msg_t *m, double now, double burst)
{
    char key[sizeof senders[0].key];
    size_t n;
    if (m->user_id[0]) {
        n = (size_t)snprintf(key, sizeof key, "k%s", m->user_id);
        if (n >= sizeof key) n = sizeof key - 1;
    } else {
        key[0] = 'r';
        n = 1 + (m->rid_len < sizeof key - 1 ? m->rid_len : sizeof key - 1);
        memcpy(key + 1, m->rid, n - 1);
    }
    sender_t *oldest = &senders[0];
    for (int i = 0; i < ADMIT_SENDERS; i++) {
        sender_t *s = &senders[i];
        if (s->key_len == n && !memcmp(s->key, key, n)) return s;
        if (s->seen < oldest->seen) oldest = s;
    }
    memcpy(oldest->key, key, n);
    oldest->key_len = n;
    oldest->tokens = burst;
    oldest->seen = now;
    return oldest;
}

int weftd_admit(void *ctx, const wire_msg_t *m, size_t json_len, char *why, size_t whysize)
{
    (void)ctx;
    unsigned from = wire_cmd_senders(m->cmd);
    if (!(from & WIRE_FROM_CLIENT) || json_len > server.max_json) return 0;
    const char *word = wire_cmd_name(m->cmd);
    if (m->cmd != WIRE_SUBMIT && json_len > ADMIT_SMALL) {
        snprintf(why, whysize, "%s body of %zu bytes exceeds the limit of %d for %s", word,
                 json_len, ADMIT_SMALL, word);
        return WIRE_REJ_OVERSIZE;
    }
    if (json_len <= ADMIT_SMALL) return 0;
    double now = weftd_now();
    double burst = ADMIT_BURST > (double)server.max_json ? ADMIT_BURST : (double)server.max_json;
    sender_t *s = sender_of(m, now, burst);
    s->tokens += (now - s->seen) * ADMIT_RATE;
    if (s->tokens > burst) s->tokens = burst;
    s->seen = now;
    if ((double)json_len > s->tokens) {
        snprintf(why, whysize,
                 "this client sent more than %.0f MiB/s of large requests; send this %s again "
                 "in a moment",
                 ADMIT_RATE / (1024 * 1024), word);
        return WIRE_REJ_LIMIT;
    }
    s->tokens -= (double)json_len;
    return 0;
}
