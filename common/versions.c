/* versions.c: a tenant's published versions (see versions.h). Folders are
 * opened with O_NOFOLLOW from the tenant folder's descriptor and links are
 * made and replaced with symlinkat + renameat, so a link planted inside the
 * folder is never followed by a write. */
#include "common/versions.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

int versions_open(const char *dir)
{
    if (weft_mkdir_p(dir, 0755) < 0) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return weft_error("cannot open folder %s: %s", dir, strerror(errno));
    return fd;
}

/* N of a name "v<N>" (N >= 1, no leading zero), else 0. */
static int version_of(const char *name)
{
    if (name[0] != 'v' || name[1] < '1' || name[1] > '9') return 0;
    long n = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9' || n > INT_MAX / 10 - 10) return 0;
        n = n * 10 + (*p - '0');
    }
    return (int)n;
}

/* The versions present (folders only), descending, malloc'ed into *out. */
static int list_versions(int dfd, int **out)
{
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return weft_error("cannot list a tenant's versions: %s", strerror(errno));
    }
    rewinddir(d);
    int n = 0, cap = 16;
    int *v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        int k = version_of(e->d_name);
        struct stat st;
        if (!k || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            int *w = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!w) free(v);
            v = w;
        }
        if (v) v[n++] = k;
    }
    closedir(d);
    if (!v) return weft_error("out of memory");
    for (int i = 1; i < n; i++) /* insertion sort, descending: a handful of versions */
        for (int j = i; j > 0 && v[j - 1] < v[j]; j--) {
            int t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *out = v;
    return n;
}

int versions_current(int dfd, int *n)
{
    char target[64];
    *n = 0;
    ssize_t len = readlinkat(dfd, "current", target, sizeof target - 1);
    if (len < 0 && errno == ENOENT) return 0;
    if (len < 0) return weft_error("current is not a link to a version: %s", strerror(errno));
    target[len] = 0;
    int k = version_of(target);
    struct stat st;
    if (!k || fstatat(dfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return weft_error("current points at \"%s\", not at a version folder v<N>; remove it or "
                          "point it at one",
                          target);
    *n = k;
    return 0;
}

/* The "run" of v<k>/version.json into run (empty when unreadable). */
static void version_run(int dfd, int k, char *run, size_t size)
{
    char name[32];
    run[0] = 0;
    snprintf(name, sizeof name, "v%d", k);
    int vfd = openat(dfd, name, DIR_FLAGS);
    int fd = vfd < 0 ? -1 : openat(vfd, VERSIONS_META, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (vfd >= 0) close(vfd);
    if (fd < 0) return;
    char buf[16384];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return;
    json_t *j = json_loadb(buf, (size_t)got, 0, NULL);
    const char *r = json_string_value(json_object_get(j, "run"));
    if (r) snprintf(run, size, "%s", r);
    json_decref(j);
}

int versions_find_run(int dfd, const char *run, int *n)
{
    int *v = NULL, found = 0;
    int count = list_versions(dfd, &v);
    if (count < 0) return -1;
    for (int i = 0; i < count && !found; i++) {
        char r[256];
        version_run(dfd, v[i], r, sizeof r);
        if (r[0] && !strcmp(r, run)) *n = v[i], found = 1;
    }
    free(v);
    return found;
}

/* fsync of every file and folder under dfd/name, and of the folder itself. */
static int fsync_tree(int dfd, const char *name)
{
    int fd = openat(dfd, name, DIR_FLAGS);
    if (fd < 0) return weft_error("cannot open %s: %s", name, strerror(errno));
    int dup_fd = dup(fd);
    DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
    int rc = d ? 0 : weft_error("cannot list %s", name);
    struct dirent *e;
    while (rc == 0 && d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = weft_error("%s/%s: %s", name, e->d_name, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = fsync_tree(fd, e->d_name);
        } else if (S_ISREG(st.st_mode)) {
            int f = openat(fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (f < 0 || fsync(f) < 0) rc = weft_error("cannot sync %s/%s", name, e->d_name);
            if (f >= 0) close(f);
        } else {
            rc = weft_error("%s/%s is neither a file nor a folder", name, e->d_name);
        }
    }
    if (d) closedir(d);
    if (rc == 0 && fsync(fd) < 0) rc = weft_error("cannot sync %s: %s", name, strerror(errno));
    close(fd);
    return rc;
}

int versions_install(int dfd, const char *staged, const char *run, int *n)
{
    int found = versions_find_run(dfd, run, n);
    if (found < 0) return -1;
    if (found) return versions_remove(dfd, staged);
    if (fsync_tree(dfd, staged) < 0) return -1;
    int *v = NULL;
    int count = list_versions(dfd, &v);
    if (count < 0) return -1;
    int next = count ? v[0] + 1 : 1;
    free(v);
    for (int tries = 0; tries < 100; tries++, next++) {
        char name[32];
        snprintf(name, sizeof name, "v%d", next);
        if (renameat(dfd, staged, dfd, name) == 0) {
            if (fsync(dfd) < 0) return weft_error("cannot sync the versions' folder");
            *n = next;
            return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            return weft_error("cannot install %s as %s: %s", staged, name, strerror(errno));
    }
    return weft_error("cannot find a free version number after v%d", next);
}

/* name -> target, through name.tmp renamed over name. A real folder at name
 * (the layout before versions) is removed first. */
static int put_link(int dfd, const char *name, const char *target)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
        return weft_error("cannot remove %s: %s", tmp, strerror(errno));
    if (symlinkat(target, dfd, tmp) < 0)
        return weft_error("cannot make the link %s: %s", tmp, strerror(errno));
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
        versions_remove(dfd, name) < 0)
        return -1;
    if (renameat(dfd, tmp, dfd, name) < 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        return weft_error("cannot replace %s: %s", name, strerror(e));
    }
    return 0;
}

int versions_promote(int dfd, int n)
{
    char target[32];
    snprintf(target, sizeof target, "v%d", n);
    if (put_link(dfd, "current", target) < 0 ||
        put_link(dfd, "adapter.h5", "current/adapter.h5") < 0 ||
        put_link(dfd, "peft", "current/peft") < 0)
        return -1;
    if (fsync(dfd) < 0) return weft_error("cannot sync the versions' folder");
    return 0;
}

int versions_prune(int dfd, int keep)
{
    int cur = 0, *v = NULL;
    if (versions_current(dfd, &cur) < 0) cur = 0; /* a broken current protects nothing */
    int count = list_versions(dfd, &v);
    if (count < 0) return -1;
    int rc = 0;
    for (int i = keep; rc == 0 && i < count; i++) {
        if (v[i] == cur) continue;
        char name[32];
        snprintf(name, sizeof name, "v%d", v[i]);
        rc = versions_remove(dfd, name);
    }
    free(v);
    return rc;
}

int versions_remove(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : weft_error("cannot remove %s: %s", name, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) < 0)
            return weft_error("cannot remove %s: %s", name, strerror(errno));
        return 0;
    }
    int fd = openat(dfd, name, DIR_FLAGS);
    int dup_fd = fd < 0 ? -1 : dup(fd);
    DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
    int rc = d ? 0 : weft_error("cannot open %s: %s", name, strerror(errno));
    struct dirent *e;
    while (rc == 0 && d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) rc = versions_remove(fd, e->d_name);
    if (d) closedir(d);
    if (fd >= 0) close(fd);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
        rc = weft_error("cannot remove %s: %s", name, strerror(errno));
    return rc;
}

/* The regular file src as dfd/name: a hard link, else a copy. */
static int copy_file(const char *src, int dfd, const char *name)
{
    if (linkat(AT_FDCWD, src, dfd, name, 0) == 0) return 0;
    int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int out =
        in < 0 ? -1 : openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    char buf[1 << 16];
    ssize_t k = 0;
    while (out >= 0 && (k = read(in, buf, sizeof buf)) > 0)
        for (ssize_t off = 0; k > 0 && off < k;) {
            ssize_t w = write(out, buf + off, (size_t)(k - off));
            if (w < 0) {
                k = -1;
                break;
            }
            off += w;
        }
    int e = errno;
    if (in >= 0) close(in);
    if (out >= 0 && close(out) < 0) k = -1;
    if (in < 0 || out < 0 || k < 0) return weft_error("cannot copy %s: %s", src, strerror(e));
    return 0;
}

int versions_copy_in(int dfd, const char *name, const char *src)
{
    if (versions_remove(dfd, name) < 0) return -1;
    if (mkdirat(dfd, name, 0755) < 0)
        return weft_error("cannot make %s: %s", name, strerror(errno));
    int fd = openat(dfd, name, DIR_FLAGS);
    DIR *d = opendir(src);
    int rc = fd >= 0 && d ? 0 : weft_error("cannot open %s or %s: %s", src, name, strerror(errno));
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        struct stat st;
        if (weft_path_join(p, sizeof p, src, e->d_name) < 0 || lstat(p, &st) < 0)
            rc = weft_error("cannot read %s/%s", src, e->d_name);
        else if (S_ISDIR(st.st_mode))
            rc = versions_copy_in(fd, e->d_name, p);
        else if (S_ISREG(st.st_mode))
            rc = copy_file(p, fd, e->d_name);
        else
            rc = weft_error("%s is neither a file nor a folder", p);
    }
    if (d) closedir(d);
    if (fd >= 0) close(fd);
    return rc;
}
