/* testutil.c: scratch folders, files, the `weft` binary and document lists
 * for the shards tests (see testutil.h). */
#include "tests/shards/testutil.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char tu_dir[256];
static char log_path[300];

void tu_setup(void)
{
    snprintf(tu_dir, sizeof tu_dir, "/tmp/weft-test-shards-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tu_dir));
    snprintf(log_path, sizeof log_path, "%s.log", tu_dir);
    h5_quiet();
}

void tu_teardown(void)
{
    weft_rm_rf(tu_dir);
    unlink(log_path);
}

const char *tu_path(const char *name)
{
    static char ring[16][PATH_MAX];
    static int next;
    char *p = ring[next++ % 16];
    snprintf(p, PATH_MAX, "%s/%s", tu_dir, name);
    return p;
}

void tu_put(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(tu_path(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

uint8_t *tu_get(const char *path, size_t *n)
{
    return (uint8_t *)weft_read_file(path, (size_t)1 << 32, n);
}

int tu_weft(char **out, ...)
{
    char *argv[32], bin[PATH_MAX];
    const char *top = getenv("top_builddir");
    snprintf(bin, sizeof bin, "%s/weft", top ? top : ".");
    argv[0] = bin;
    int argc = 1;
    va_list ap;
    va_start(ap, out);
    while (argc < 31 && (argv[argc] = va_arg(ap, char *))) argc++;
    va_end(ap);
    argv[argc] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(bin, argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    size_t n;
    *out = weft_read_file(log_path, 1 << 20, &n);
    ck_assert_ptr_nonnull(*out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int scan_dir(int want_tmp)
{
    DIR *d = opendir(tu_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0, tmp = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (strstr(e->d_name, ".tmp.")) tmp = 1;
    }
    closedir(d);
    return want_tmp ? tmp : n;
}

int tu_entries(void)
{
    return scan_dir(0);
}
int tu_has_tmp(void)
{
    return scan_dir(1);
}

shard_opts_t tu_opts(const char *out, char **inputs, int ninputs)
{
    return (shard_opts_t){.format = SHARD_INPUT_TEXT,
                          .field = "text",
                          .shards = 1,
                          .output = out,
                          .inputs = inputs,
                          .ninputs = ninputs};
}

void tu_docs_add(tu_docs_t *d, const void *data, size_t len)
{
    d->data = realloc(d->data, (size_t)(d->n + 1) * sizeof *d->data);
    d->len = realloc(d->len, (size_t)(d->n + 1) * sizeof *d->len);
    ck_assert(d->data && d->len);
    d->data[d->n] = malloc(len + 1);
    memcpy(d->data[d->n], data, len);
    d->len[d->n++] = len;
}

void tu_docs_read(shardset_t *ss, shardset_split_t split, tu_docs_t *d)
{
    int64_t n = shardset_docs(ss, split), prev_end = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t a, b;
        ck_assert_int_eq(shardset_doc_range(ss, split, i, &a, &b), 0);
        ck_assert_int_eq(a, prev_end); /* documents tile the split */
        prev_end = b;
        int32_t *tok = malloc((size_t)(b - a) * sizeof *tok);
        uint8_t *bytes = malloc((size_t)(b - a));
        ck_assert_int_eq(shardset_read(ss, split, a, b - a, tok), 0);
        ck_assert_int_eq(tok[b - a - 1], shardset_eot(ss));
        for (int64_t k = 0; k + 1 < b - a; k++) {
            ck_assert_int_lt(tok[k], 256);
            bytes[k] = (uint8_t)tok[k];
        }
        tu_docs_add(d, bytes, (size_t)(b - a - 1));
        free(tok);
        free(bytes);
    }
    ck_assert_int_eq(prev_end, shardset_tokens(ss, split));
}

typedef struct {
    const uint8_t *p;
    size_t n;
} view_t;

static int cmp_view(const void *x, const void *y)
{
    const view_t *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->p, b->p, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

static view_t *sorted(tu_docs_t *d)
{
    view_t *v = malloc((size_t)(d->n + 1) * sizeof *v);
    for (int64_t i = 0; i < d->n; i++) v[i] = (view_t){d->data[i], d->len[i]};
    qsort(v, (size_t)d->n, sizeof *v, cmp_view);
    return v;
}

void tu_docs_assert_same(tu_docs_t *a, tu_docs_t *b)
{
    ck_assert_int_eq(a->n, b->n);
    view_t *va = sorted(a), *vb = sorted(b);
    for (int64_t i = 0; i < a->n; i++) {
        ck_assert_uint_eq(va[i].n, vb[i].n);
        ck_assert_msg(!memcmp(va[i].p, vb[i].p, va[i].n), "document %lld differs", (long long)i);
    }
    free(va);
    free(vb);
}

void tu_docs_free(tu_docs_t *d)
{
    for (int64_t i = 0; i < d->n; i++) free(d->data[i]);
    free(d->data);
    free(d->len);
    *d = (tu_docs_t){0};
}
