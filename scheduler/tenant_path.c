/* tenant_path.c: publishing into a tenant's folder through directory
 * descriptors (see tenant_path.h). A symlink a tenant plants anywhere below
 * its folder, before or during the walk, makes openat fail (O_NOFOLLOW)
 * instead of leading the write elsewhere, and the final rename is made in
 * the folder that was opened, not in whatever a path names by then. */
#include "scheduler/tenant_path.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder c inside dfd, made 0700 if missing; never through a link. */
static int open_dir(int dfd, const char *c, const char *dst, const char *root)
{
    if (!strcmp(c, ".") || !strcmp(c, ".."))
        return weft_error("%s: \"%s\" in a path inside the tenant folder %s", dst, c, root);
    int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dfd, c, flags);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(dfd, c, 0700) < 0 && errno != EEXIST)
            return weft_error("%s: cannot make folder %s: %s", dst, c, strerror(errno));
        fd = openat(dfd, c, flags);
    }
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
        return weft_error("%s: %s is a symlink or not a folder, inside the tenant folder %s; "
                          "weft follows no links there",
                          dst, c, root);
    if (fd < 0) return weft_error("%s: cannot open folder %s: %s", dst, c, strerror(errno));
    return fd;
}

/* src into tmp inside dfd: a hard link when it can, else a copy. */
static int put_copy(const char *src, int dfd, const char *tmp, const char *dst)
{
    if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
        return weft_error("%s: cannot remove an old %s: %s", dst, tmp, strerror(errno));
    int out = -1;
    if (linkat(AT_FDCWD, src, dfd, tmp, 0) == 0) {
        out = openat(dfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    } else {
        int in = open(src, O_RDONLY | O_CLOEXEC);
        out = in < 0 ? -1
                     : openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        char buf[1 << 16];
        ssize_t n = 0;
        while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
            for (ssize_t off = 0; n > 0 && off < n;) {
                ssize_t w = write(out, buf + off, (size_t)(n - off));
                if (w < 0) n = -1;
                off += w;
            }
        if (in >= 0) close(in);
        if (n < 0 && out >= 0) close(out), out = -1;
    }
    if (out < 0 || fsync(out) < 0) {
        int e = errno;
        if (out >= 0) close(out);
        unlinkat(dfd, tmp, 0);
        return weft_error("cannot copy %s to %s: %s", src, dst, strerror(e));
    }
    close(out);
    return 0;
}

int tenant_publish(const char *tenants_dir, const char *src, const char *dst)
{
    size_t n = strlen(tenants_dir);
    if (strncmp(dst, tenants_dir, n) || dst[n] != '/')
        return weft_error("%s is not inside %s", dst, tenants_dir);
    const char *name = dst + n + 1, *slash = strchr(name, '/');
    char root[PATH_MAX], rest[PATH_MAX];
    if (!slash || slash == name || (size_t)(slash - dst) >= sizeof root ||
        snprintf(rest, sizeof rest, "%s", slash + 1) >= (int)sizeof rest)
        return weft_error("%s: no tenant folder", dst);
    memcpy(root, dst, (size_t)(slash - dst));
    root[slash - dst] = 0;
    /* the tenant's folder itself is the admin's: it may be a link */
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return weft_error("%s: cannot open the tenant folder %s: %s", dst, root, strerror(errno));
    char *base = strrchr(rest, '/');
    if (base) {
        *base++ = 0;
        for (char *save = NULL, *c = strtok_r(rest, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
            int fd = open_dir(dfd, c, dst, root);
            close(dfd);
            if (fd < 0) return -1;
            dfd = fd;
        }
    } else {
        base = rest;
    }
    char tmp[NAME_MAX + 8];
    int rc = 0;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
        snprintf(tmp, sizeof tmp, "%s.tmp", base) >= (int)sizeof tmp)
        rc = weft_error("%s: not a file name inside the tenant folder %s", dst, root);
    if (rc == 0) rc = put_copy(src, dfd, tmp, dst);
    if (rc == 0 && renameat(dfd, tmp, dfd, base) < 0) {
        rc = weft_error("cannot rename %s into place: %s", dst, strerror(errno));
        unlinkat(dfd, tmp, 0);
    }
    if (rc == 0 && fsync(dfd) < 0) rc = weft_error("%s: cannot sync its folder: %s", dst, strerror(errno));
    close(dfd);
    return rc;
}

int tenant_open_dir(const char *tenants_dir, const char *dir)
{
    size_t n = strlen(tenants_dir);
    if (strncmp(dir, tenants_dir, n) || dir[n] != '/')
        return weft_error("%s is not inside %s", dir, tenants_dir);
    const char *name = dir + n + 1, *slash = strchr(name, '/');
    char root[PATH_MAX], rest[PATH_MAX] = "";
    size_t len = slash ? (size_t)(slash - dir) : strlen(dir);
    if (!*name || slash == name || len >= sizeof root ||
        (slash && snprintf(rest, sizeof rest, "%s", slash + 1) >= (int)sizeof rest))
        return weft_error("%s: no tenant folder", dir);
    memcpy(root, dir, len);
    root[len] = 0;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return weft_error("%s: cannot open the tenant folder %s: %s", dir, root, strerror(errno));
    for (char *save = NULL, *c = strtok_r(rest, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int fd = open_dir(dfd, c, dir, root);
        close(dfd);
        if (fd < 0) return -1;
        dfd = fd;
    }
    return dfd;
}
