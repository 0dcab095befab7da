/* fsutil.c: fsync, durable rename, mkdir -p, rm -r (see fsutil.h). */
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int weft_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return weft_error("%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc < 0 ? weft_error("%s: fsync failed: %s", path, strerror(e)) : 0;
}

void weft_dirname(const char *path, char *out, size_t outsize)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, outsize, ".");
    else if (slash == path)
        snprintf(out, outsize, "/");
    else
        snprintf(out, outsize, "%.*s", (int)(slash - path), path);
}

int weft_path_join(char *buf, size_t bufsize, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na + 1 + nb + 1 > bufsize) return weft_error("path too long: %s/%s", a, b);
    memcpy(buf, a, na);
    buf[na] = '/';
    memcpy(buf + na + 1, b, nb + 1);
    return 0;
}

int weft_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    weft_dirname(path, dir, sizeof dir);
    return weft_fsync_path(dir);
}

int weft_rename_durable(const char *from, const char *to)
{
    if (rename(from, to) < 0)
        return weft_error("cannot rename %s to %s: %s", from, to, strerror(errno));
    return weft_fsync_parent(to);
}

int weft_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return weft_error("bad folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return weft_error("cannot create folder %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return weft_error("%s exists and is not a folder", path);
    return 0;
}

int weft_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : weft_error("%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 ? weft_error("cannot remove %s: %s", path, strerror(errno)) : 0;
    DIR *d = opendir(path);
    if (!d) return weft_error("cannot open folder %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (weft_rm_rf(sub) < 0) rc = -1;
    }
    closedir(d);
    if (rc == 0 && rmdir(path) < 0) rc = weft_error("cannot remove %s: %s", path, strerror(errno));
    return rc;
}

char *weft_read_file(const char *path, size_t maxbytes, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        weft_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > maxbytes) {
            fclose(f);
            free(buf);
            weft_error("%s: larger than the %zu-byte limit", path, maxbytes);
            return NULL;
        }
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        weft_error("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
