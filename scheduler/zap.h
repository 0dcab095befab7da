/* zap.h: weftd's ZAP handler (ZeroMQ RFC 27) on inproc://zeromq.zap.01, in
 * a thread of its own. A CURVE client is admitted only when its public key
 * is listed, with its role: a client key from the clients folder (*.pub) or
 * a worker key weftd minted for a run; the role becomes the connection's
 * User-Id. NULL-mechanism connections (the ipc socket in its 0700 home, or
 * a tcp endpoint started with --insecure-tcp) are admin. All else is
 * refused before any of its messages reaches the ROUTER. */
#ifndef WEFT_ZAP_H
#define WEFT_ZAP_H

#include <stdint.h>

typedef struct zap zap_t;

/* Binds the handler in zctx (before any CURVE socket binds) and loads every
 * *.pub file of clients_dir (which may be missing: no client keys). */
zap_t *zap_new(void *zctx, const char *clients_dir);
void zap_destroy(zap_t **self_p);
/* Client keys loaded. */
int zap_clients(zap_t *self);
/* Reads clients_dir again and replaces the client keys with its *.pub files
 * (run keys stay); the number of client keys, or -1 with weft_error and the
 * old keys kept when a file is bad. Open connections are not re-checked:
 * ZAP runs at the handshake, so a removed key's live connections last until
 * they close (each `weft` command opens its own). */
int zap_reload_clients(zap_t *self, const char *clients_dir);
/* Admits public_key as worker:RUN, replacing an earlier key of that run. */
int zap_add_run(zap_t *self, const char *run, const char *public_key);
void zap_remove_run(zap_t *self, const char *run);
/* Handshakes refused so far. */
int64_t zap_refused(zap_t *self);

#endif
