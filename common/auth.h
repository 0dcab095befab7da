/* auth.h: CURVE key files and roles. A key file holds lines "name = value":
 * role, public-key and, in a secret file, secret-key; a worker's key file
 * also names the coordinator's server-key. Keys are Z85 (40 characters).
 * Roles: "admin", "tenant:NAME" (NAME as a tenant name in a spec) and
 * "worker:RUN" (a run id of the wire protocol), the last minted by weftd. */
#ifndef WEFT_AUTH_H
#define WEFT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_Z85_LEN  40 /* a 32-byte key in Z85 */
#define AUTH_ROLE_MAX 224

typedef struct {
    char role[AUTH_ROLE_MAX];
    char public_key[AUTH_Z85_LEN + 1];
    char secret_key[AUTH_Z85_LEN + 1]; /* "" in a public file */
    char server_key[AUTH_Z85_LEN + 1]; /* "" unless the file names its server */
} auth_key_t;

/* Is role "admin", "tenant:NAME" or "worker:RUN"? */
bool auth_role_valid(const char *role);
/* The NAME of "tenant:NAME", else NULL. */
const char *auth_role_tenant(const char *role);
/* The RUN of "worker:RUN", else NULL. */
const char *auth_role_run(const char *role);
/* Is s a Z85-encoded 32-byte key? */
bool auth_z85_valid(const char *s);

/* A fresh key pair with role (zmq_curve_keypair). */
int auth_key_mint(auth_key_t *key, const char *role);
/* Writes key durably to path (temporary file, fsync, rename): with the
 * secret key and server key, mode 0600 ("secret"), else only the role and
 * public key, mode 0644. Never follows a symlink at path. */
int auth_key_write(const auth_key_t *key, const char *path, bool secret);
/* Reads a key file. A file holding a secret key must not be readable by
 * group or others. Every problem names the file and line. */
int auth_key_read(const char *path, auth_key_t *key);

#endif
