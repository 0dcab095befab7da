/* client.h: the `weft` commands' side of weftd: where to find it (the
 * options given before the subcommand, --home DIR or --endpoint EP), one
 * connection and one request (client.c), the job streams (client_watch.c)
 * and what the commands share (client_cmds.c). */
#ifndef WEFT_CLIENT_H
#define WEFT_CLIENT_H

#include "common/wire.h"

#include <limits.h>
#include <stdint.h>

typedef struct {
    char home[PATH_MAX];
    char endpoint[PATH_MAX];
} client_opts_t;

extern client_opts_t client_opts;

/* A DEALER to weftd. */
typedef struct {
    void *ctx, *sock;
    void *mon;           /* the socket's handshake (and, following, connection) events */
    char key_path[1024]; /* WEFT_KEY, to name in a refusal */
    char ep[PATH_MAX + 16];
    int follow;        /* a stream: watch connections come and go */
    int ups;           /* handshakes that succeeded */
    int down;          /* the connection is lost and not back yet */
    double down_since; /* monotonic seconds */
} conn_t;

/* client.c */
/* weftd's home: --home, else WEFT_HOME, else ~/.weft. */
int client_home(char *out, size_t n);
int conn_open(conn_t *c);
void conn_close(conn_t *c);
int conn_events(conn_t *c);
int conn_recv(conn_t *c, int timeout_ms, wire_msg_t **msg);
/* One request, one reply (takes body); NULL with weft_error set. */
json_t *client_request(wire_cmd_t cmd, json_t *body);
/* Reports the last error; the exit code: 69 when weftd is not there, else 1. */
int client_fail(void);

/* client_watch.c: follows jobs until each has ended; returns how many did
 * not succeed, or -1 with weft_error set. */
int client_watch(const int64_t *ids, int n, int json);

/* client_cmds.c */
void client_print_json(const json_t *j);
/* `weft COMMAND --help` (or -h) among the arguments: the usage on stdout. */
int client_asked_help(int argc, char **argv, const char *usage);
/* A job id from the command line; an option or anything else is refused. */
int client_parse_id(const char *s, int64_t *id);

#endif
