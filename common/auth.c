/* auth.c: CURVE key files and roles (see auth.h). */
#include "common/auth.h"

#include "common/fsutil.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define AUTH_FILE_MAX 4096

/* A tenant name as a spec takes it: [A-Za-z0-9._-]{1,64}, no "..", not
 * starting with '.' or '-'. */
static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.' || s[0] == '-' || strstr(s, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') return false;
    }
    return true;
}

const char *auth_role_tenant(const char *role)
{
    if (strncmp(role, "tenant:", 7) || !name_ok(role + 7, 64)) return NULL;
    return role + 7;
}

const char *auth_role_run(const char *role)
{
    if (strncmp(role, "worker:", 7) || !name_ok(role + 7, 200)) return NULL;
    return role + 7;
}

bool auth_role_valid(const char *role)
{
    return !strcmp(role, "admin") || auth_role_tenant(role) || auth_role_run(role);
}

bool auth_z85_valid(const char *s)
{
    uint8_t bin[32];
    return strlen(s) == AUTH_Z85_LEN && zmq_z85_decode(bin, s) != NULL;
}

int auth_key_mint(auth_key_t *key, const char *role)
{
    memset(key, 0, sizeof *key);
    if (!auth_role_valid(role))
        return weft_error("role \"%.64s\" is not admin, tenant:NAME or worker:RUN", role);
    snprintf(key->role, sizeof key->role, "%s", role);
    if (zmq_curve_keypair(key->public_key, key->secret_key) < 0)
        return weft_error("cannot make a CURVE key pair: %s (is libzmq built with CURVE?)",
                          zmq_strerror(zmq_errno()));
    return 0;
}

int auth_key_write(const auth_key_t *key, const char *path, bool secret)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return weft_error("key file path too long: %s", path);
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return weft_error("%s exists and is not a regular file; remove it first", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, secret ? 0600 : 0644);
    if (fd < 0) return weft_error("%s: cannot create: %s", tmp, strerror(errno));
    char text[1024];
    int n = snprintf(text, sizeof text, "# weft CURVE key%s\nrole = %s\npublic-key = %s\n",
                     secret ? " pair: keep this file secret (mode 0600)" : "", key->role,
                     key->public_key);
    if (secret && key->secret_key[0])
        n += snprintf(text + n, sizeof text - (size_t)n, "secret-key = %s\n", key->secret_key);
    if (secret && key->server_key[0])
        n += snprintf(text + n, sizeof text - (size_t)n, "server-key = %s\n", key->server_key);
    int bad =
        fchmod(fd, secret ? 0600 : 0644) < 0 || write(fd, text, (size_t)n) != n || fsync(fd) < 0;
    if (close(fd) < 0) bad = 1;
    if (bad) {
        unlink(tmp);
        return weft_error("%s: cannot write: %s", tmp, strerror(errno));
    }
    if (weft_rename_durable(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Trims spaces at both ends of s in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

int auth_key_read(const char *path, auth_key_t *key)
{
    memset(key, 0, sizeof *key);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return weft_error("%s: cannot open key file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > AUTH_FILE_MAX) {
        close(fd);
        return weft_error("%s: not a key file (a small regular file made by weft keygen)", path);
    }
    char buf[AUTH_FILE_MAX + 1];
    ssize_t got = read(fd, buf, AUTH_FILE_MAX);
    close(fd);
    if (got < 0) return weft_error("%s: cannot read: %s", path, strerror(errno));
    buf[got] = 0;
    if (memchr(buf, 0, (size_t)got)) return weft_error("%s: not a key file (binary)", path);
    int line = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *s = trim(l);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) return weft_error("%s:%d: expected \"name = value\"", path, line);
        *eq = 0;
        char *name = trim(s), *value = trim(eq + 1);
        char *dst;
        size_t size;
        if (!strcmp(name, "role")) {
            dst = key->role;
            size = sizeof key->role;
        } else if (!strcmp(name, "public-key")) {
            dst = key->public_key;
            size = sizeof key->public_key;
        } else if (!strcmp(name, "secret-key")) {
            dst = key->secret_key;
            size = sizeof key->secret_key;
        } else if (!strcmp(name, "server-key")) {
            dst = key->server_key;
            size = sizeof key->server_key;
        } else {
            return weft_error("%s:%d: unknown setting \"%.40s\" (role, public-key, secret-key, "
                              "server-key)",
                              path, line, name);
        }
        if (dst[0]) return weft_error("%s:%d: %s given twice", path, line, name);
        if (strlen(value) >= size) return weft_error("%s:%d: %s is too long", path, line, name);
        if (dst != key->role && !auth_z85_valid(value))
            return weft_error("%s:%d: %s is not a Z85 CURVE key of %d characters", path, line, name,
                              AUTH_Z85_LEN);
        snprintf(dst, size, "%s", value);
    }
    if (!key->role[0] || !auth_role_valid(key->role))
        return weft_error("%s: needs a role: admin, tenant:NAME or worker:RUN", path);
    if (!key->public_key[0]) return weft_error("%s: has no public-key", path);
    if (key->secret_key[0]) {
        if (st.st_mode & 077)
            return weft_error("%s holds a secret key but is readable by others (mode %03o); "
                              "chmod 600 it",
                              path, (unsigned)(st.st_mode & 0777));
        uint8_t sec[32], pub[32];
        char derived[AUTH_Z85_LEN + 1];
        if (!zmq_z85_decode(sec, key->secret_key) ||
            zmq_curve_public(derived, key->secret_key) < 0 || strcmp(derived, key->public_key) ||
            !zmq_z85_decode(pub, key->public_key))
            return weft_error("%s: public-key does not belong to secret-key", path);
    }
    return 0;
}
