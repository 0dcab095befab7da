/* ckpt.c: atomic checkpoint folders (see ckpt.h). The MANIFEST is JSON:
 *   {"format":"weft-checkpoint","version":1,"step":N,
 *    "files":[{"name":"state.h5","bytes":123,"sha256":"..."}, ...]}
 * Invariants: (1) a folder named ckpt-<step>/ is complete, because it is
 * renamed into place only after every byte and the manifest are on disk;
 * (2) a committed checkpoint is never modified; (3) pruning removes only
 * committed checkpoints older than the newest `keep`. */
#include "worker/ckpt.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANIFEST      "MANIFEST"
#define MAX_KEEP_SCAN 4096

struct ckpt_writer {
    char run_dir[PATH_MAX];
    char tmp_dir[PATH_MAX];
    char final_dir[PATH_MAX];
    int64_t step;
};

static int dir_for(char *buf, size_t n, const char *run_dir, int64_t step, const char *suffix)
{
    int w = snprintf(buf, n, "%s/ckpt-%" PRId64 "%s", run_dir, step, suffix);
    return w < 0 || (size_t)w >= n ? weft_error("checkpoint path too long in %s", run_dir) : 0;
}

ckpt_writer_t *ckpt_writer_new(const char *run_dir, int64_t step)
{
    if (step < 0) {
        weft_error("checkpoint step %" PRId64 " is negative", step);
        return NULL;
    }
    ckpt_writer_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->step = step;
    if (snprintf(self->run_dir, sizeof self->run_dir, "%s", run_dir) >= (int)sizeof self->run_dir ||
        dir_for(self->tmp_dir, sizeof self->tmp_dir, run_dir, step, ".tmp") < 0 ||
        dir_for(self->final_dir, sizeof self->final_dir, run_dir, step, "") < 0 ||
        weft_mkdir_p(run_dir, 0755) < 0 || weft_rm_rf(self->tmp_dir) < 0 ||
        weft_mkdir_p(self->tmp_dir, 0755) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

int ckpt_writer_path(ckpt_writer_t *self, const char *name, char *buf, size_t bufsize)
{
    if (!*name || strchr(name, '/') || !strcmp(name, MANIFEST) || name[0] == '.')
        return weft_error("bad checkpoint file name '%s'", name);
    return weft_path_join(buf, bufsize, self->tmp_dir, name);
}

void ckpt_writer_destroy(ckpt_writer_t **self_p)
{
    if (!*self_p) return;
    weft_rm_rf((*self_p)->tmp_dir);
    free(*self_p);
    *self_p = NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the regular files in dir (excluding MANIFEST). */
static int list_files(const char *dir, char ***names_p, size_t *n_p)
{
    DIR *d = opendir(dir);
    if (!d) return weft_error("cannot open %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, MANIFEST)) continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown) break;
        names = grown;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, cmp_name);
    *names_p = names;
    *n_p = n;
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int write_manifest(ckpt_writer_t *self)
{
    char **names = NULL;
    size_t n = 0;
    if (list_files(self->tmp_dir, &names, &n) < 0) return -1;
    json_t *files = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX], hex[65];
        struct stat st;
        if (weft_path_join(path, sizeof path, self->tmp_dir, names[i]) < 0) {
            rc = -1;
            break;
        }
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            rc = weft_error("checkpoint file %s is not a regular file", path);
            break;
        }
        if (weft_fsync_path(path) < 0 || weft_sha256_file(path, hex) < 0) {
            rc = -1;
            break;
        }
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", names[i], "bytes",
                                               (json_int_t)st.st_size, "sha256", hex));
    }
    free_names(names, n);
    if (rc < 0) {
        json_decref(files);
        return -1;
    }
    json_t *m = json_pack("{s:s, s:i, s:I, s:o}", "format", "weft-checkpoint", "version", 1, "step",
                          (json_int_t)self->step, "files", files);
    char path[PATH_MAX];
    if (weft_path_join(path, sizeof path, self->tmp_dir, MANIFEST) < 0) rc = -1;
    if (rc == 0 && json_dump_file(m, path, JSON_INDENT(1) | JSON_SORT_KEYS) < 0)
        rc = weft_error("cannot write %s: %s", path, strerror(errno));
    json_decref(m);
    if (rc == 0) rc = weft_fsync_path(path);
    if (rc == 0) rc = weft_fsync_path(self->tmp_dir);
    return rc;
}

/* Parses "ckpt-<digits>" (no suffix); -1 when the name is not one. */
static int64_t step_of(const char *name)
{
    if (strncmp(name, "ckpt-", 5) || !name[5]) return -1;
    int64_t step = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*p - '0');
    }
    return step;
}

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Committed checkpoint steps in run_dir, newest first. */
static int list_steps(const char *run_dir, int64_t **steps_p, size_t *n_p)
{
    *steps_p = NULL;
    *n_p = 0;
    DIR *d = opendir(run_dir);
    if (!d) return errno == ENOENT ? 0 : weft_error("cannot open %s: %s", run_dir, strerror(errno));
    int64_t *steps = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_KEEP_SCAN) {
        int64_t s = step_of(e->d_name);
        if (s < 0) continue;
        int64_t *grown = realloc(steps, (n + 1) * sizeof *steps);
        if (!grown) break;
        steps = grown;
        steps[n++] = s;
    }
    closedir(d);
    if (n > 1) qsort(steps, n, sizeof *steps, cmp_i64_desc);
    *steps_p = steps;
    *n_p = n;
    return 0;
}

static void prune(const char *run_dir, int keep)
{
    int64_t *steps;
    size_t n;
    if (list_steps(run_dir, &steps, &n) < 0) return;
    for (size_t i = (size_t)keep; i < n; i++) {
        char dir[PATH_MAX];
        if (dir_for(dir, sizeof dir, run_dir, steps[i], "") == 0 && weft_rm_rf(dir) < 0)
            weft_warn("cannot remove old checkpoint: %s", weft_last_error());
    }
    free(steps);
}

int ckpt_writer_commit(ckpt_writer_t **self_p, int keep)
{
    ckpt_writer_t *self = *self_p;
    int rc = 0;
    struct stat st;
    if (keep < 1)
        rc = weft_error("keep_checkpoints must be at least 1 (got %d)", keep);
    else if (lstat(self->final_dir, &st) == 0)
        rc = weft_error("%s already exists; a checkpoint is never overwritten", self->final_dir);
    if (rc == 0) rc = write_manifest(self);
    if (rc == 0 && rename(self->tmp_dir, self->final_dir) < 0)
        rc = weft_error("cannot rename %s: %s", self->tmp_dir, strerror(errno));
    if (rc == 0) rc = weft_fsync_path(self->run_dir);
    if (rc == 0) prune(self->run_dir, keep);
    ckpt_writer_destroy(self_p);
    return rc;
}

int ckpt_verify(const char *ckpt_dir)
{
    char path[PATH_MAX];
    if (weft_path_join(path, sizeof path, ckpt_dir, MANIFEST) < 0) return -1;
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) return weft_error("%s: unreadable manifest (%s)", path, jerr.text);
    const char *format = NULL;
    json_t *files = NULL;
    int version = 0;
    int rc = 0;
    if (json_unpack(m, "{s:s, s:i, s:o}", "format", &format, "version", &version, "files", &files) <
            0 ||
        strcmp(format, "weft-checkpoint") || version != 1 || !json_is_array(files))
        rc = weft_error("%s: not a weft-checkpoint version 1 manifest", path);
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        if (rc < 0) break;
        const char *name, *sha;
        json_int_t bytes;
        if (json_unpack(f, "{s:s, s:I, s:s}", "name", &name, "bytes", &bytes, "sha256", &sha) < 0 ||
            strchr(name, '/')) {
            rc = weft_error("%s: malformed file entry %zu", path, i);
            break;
        }
        char fp[PATH_MAX], hex[65];
        struct stat st;
        if (weft_path_join(fp, sizeof fp, ckpt_dir, name) < 0)
            rc = -1;
        else if (lstat(fp, &st) < 0 || !S_ISREG(st.st_mode))
            rc = weft_error("%s: missing file %s", ckpt_dir, name);
        else if (st.st_size != (off_t)bytes)
            rc = weft_error("%s: %s has %lld bytes, manifest says %lld", ckpt_dir, name,
                            (long long)st.st_size, (long long)bytes);
        else if (weft_sha256_file(fp, hex) < 0)
            rc = -1;
        else if (strcmp(hex, sha))
            rc = weft_error("%s: %s fails its SHA-256 check", ckpt_dir, name);
    }
    json_decref(m);
    return rc;
}

int ckpt_find_latest(const char *run_dir, char *dir, size_t dirsize, int64_t *step)
{
    int64_t *steps;
    size_t n;
    if (list_steps(run_dir, &steps, &n) < 0) return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        char d[PATH_MAX];
        if (dir_for(d, sizeof d, run_dir, steps[i], "") < 0) continue;
        if (ckpt_verify(d) < 0) {
            weft_warn("skipping broken checkpoint: %s", weft_last_error());
            continue;
        }
        if (snprintf(dir, dirsize, "%s", d) >= (int)dirsize) {
            free(steps);
            return weft_error("checkpoint path too long");
        }
        *step = steps[i];
        found = 1;
    }
    free(steps);
    return found;
}
