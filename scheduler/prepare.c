/* prepare.c: weftd's data preparation. A job whose data is raw text or JSONL
 * waits in PREPARING while a child process shards it (`weft shard`, the same
 * code as the command) into the data cache in weftd's home, named by the
 * content hash of the corpus and the tokenizer, so an unchanged corpus is
 * sharded once. A model carrying a BPE tokenizer shards with it (`weft shard
 * --tokenizer MODEL`), and its SHA-256 joins the cache name. A bad corpus
 * fails its jobs with the shard tool's message. */
#include "fsutil.h"
#include "log.h"
#include "sha256.h"
#include "spec.h"
#include "tok_h5.h"
#include "weftd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_VERSION "byte-v1" /* tokenizer and shard settings of the cache */

typedef struct prep {
    pid_t pid;
    char source[SPEC_PATH_MAX];
    char model[SPEC_PATH_MAX]; /* whose tokenizer shards it */
    int shards;                /* one or more per rank of the jobs waiting on it */
    char result[PATH_MAX];     /* the child writes the cache path here */
    char log[PATH_MAX];
    struct prep *next;
} prep_t;

static prep_t *preps;

/* The data path and kind of a preparing job's unit. */
static int unit_data(const store_job_row_t *row, spec_t **spec, char **path,
                     spec_data_kind_t **kind)
{
    *spec = spec_parse(row->unit, strlen(row->unit), "/", row->name, NULL, NULL);
    if (!*spec) return -1;
    if ((*spec)->mode == SPEC_LORA) {
        *path = (*spec)->tenants[0].data;
        *kind = &(*spec)->tenants[0].data_kind;
    } else {
        *path = (*spec)->data;
        *kind = &(*spec)->data_kind;
    }
    return 0;
}

static int find_weft(char *out, size_t n)
{
    char exe[PATH_MAX], dir[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return weft_error("cannot find weftd's own folder");
    exe[k] = 0;
    weft_dirname(exe, dir, sizeof dir);
    if (weft_path_join(out, n, dir, "weft") < 0 || access(out, X_OK) < 0)
        return weft_error("the weft command is not beside weftd (%s)", dir);
    return 0;
}

/* Child: hash the corpus, name the cache file, shard into it if missing. */
static void child(const char *source, spec_data_kind_t kind, int shards, const char *model,
                  const char *result)
{
    char hex[65], weft[PATH_MAX], cache[PATH_MAX], name[160], nshards[16], tok[16], toksha[65];
    snprintf(nshards, sizeof nshards, "%d", shards);
    if (weft_sha256_file(source, hex) < 0 || tok_h5_info(model, tok, toksha) < 0) {
        fprintf(stderr, "%s\n", weft_last_error());
        _exit(65);
    }
    int bpe = !strcmp(tok, TOK_KIND_BPE);
    snprintf(name, sizeof name, "%.64s-%s-%s-s%d%s%.64s.h5", hex,
             kind == SPEC_DATA_JSONL ? "jsonl" : "text", CACHE_VERSION, shards, bpe ? "-bpe-" : "",
             bpe ? toksha : "");
    if (weft_path_join(cache, sizeof cache, server.data_dir, name) < 0 ||
        find_weft(weft, sizeof weft) < 0) {
        fprintf(stderr, "%s\n", weft_last_error());
        _exit(1);
    }
    FILE *f = fopen(result, "w");
    if (!f || fprintf(f, "%s", cache) < 0 || fclose(f) != 0) _exit(1);
    if (access(cache, R_OK) == 0) _exit(0);
    const char *fmt = kind == SPEC_DATA_JSONL ? "jsonl" : "text";
    if (bpe)
        execl(weft, weft, "shard", "--format", fmt, "--quiet", "--tokenizer", model, "--shards",
              nshards, "--val-fraction", "0.1", "-o", cache, source, (char *)NULL);
    else
        execl(weft, weft, "shard", "--format", fmt, "--quiet", "--shards", nshards,
              "--val-fraction", "0.1", "-o", cache, source, (char *)NULL);
    fprintf(stderr, "cannot run %s: %s\n", weft, strerror(errno));
    _exit(1);
}

static int start(const char *source, spec_data_kind_t kind, int shards, const char *model)
{
    prep_t *p = calloc(1, sizeof *p);
    if (!p) return weft_error("out of memory");
    snprintf(p->source, sizeof p->source, "%s", source);
    snprintf(p->model, sizeof p->model, "%s", model);
    p->shards = shards;
    static unsigned counter;
    char name[64];
    snprintf(name, sizeof name, "prep-%d-%u", (int)getpid(), counter++);
    if (weft_path_join(p->result, sizeof p->result, server.data_dir, name) < 0 ||
        snprintf(p->log, sizeof p->log, "%s.log", p->result) >= (int)sizeof p->log) {
        free(p);
        return -1;
    }
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = fork();
    if (pid < 0) {
        free(p);
        if (fd >= 0) close(fd);
        return weft_error("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        child(source, kind, shards, model, p->result);
    }
    if (fd >= 0) close(fd);
    p->pid = pid;
    p->next = preps;
    preps = p;
    weft_info("sharding %s (pid %d)", source, (int)pid);
    return 0;
}

static int preparing(const char *source, int shards, const char *model)
{
    for (prep_t *p = preps; p; p = p->next)
        if (!strcmp(p->source, source) && p->shards == shards && !strcmp(p->model, model)) return 1;
    return 0;
}

/* Moves every PREPARING job on source forward: to QUEUED with its data now
 * the cache file, or to FAILED with why. */
static int finish(const char *source, int shards, const char *model, const char *cache,
                  const char *why)
{
    store_job_row_t *rows;
    size_t n;
    if (store_list(server.store, JOB_PREPARING, NULL, 0, 0, 100000, &rows, &n) < 0) return -1;
    if (store_begin(server.store) < 0) {
        store_job_rows_free(rows, n);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        spec_t *s;
        char *path;
        spec_data_kind_t *kind;
        if (unit_data(&rows[i], &s, &path, &kind) < 0) continue;
        if (!strcmp(path, source) && s->resources.ranks == shards && !strcmp(s->model, model)) {
            if (cache) {
                snprintf(path, SPEC_PATH_MAX, "%s", cache);
                *kind = SPEC_DATA_SHARDS;
                char *text = spec_write(s);
                rc = text ? store_job_set_unit(server.store, rows[i].id, text) : -1;
                free(text);
                if (rc == 0)
                    rc = store_job_transition(server.store, rows[i].id, JOB_QUEUED, "data ready");
            } else {
                rc = store_job_transition(server.store, rows[i].id, JOB_FAILED, why);
            }
        }
        spec_destroy(&s);
    }
    store_job_rows_free(rows, n);
    if (rc == 0) return store_commit(server.store);
    store_rollback(server.store);
    return -1;
}

/* Last non-empty line of a file, for the error a job fails with. */
static void last_line(const char *path, char *out, size_t n)
{
    char *text = weft_read_file(path, 1u << 20, NULL);
    snprintf(out, n, "sharding failed");
    if (!text) return;
    char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r')) *--end = 0;
    char *line = strrchr(text, '\n');
    snprintf(out, n, "%s", line ? line + 1 : text);
    free(text);
}

int prepare_reaped(pid_t pid, int code)
{
    for (prep_t **pp = &preps; *pp; pp = &(*pp)->next) {
        prep_t *p = *pp;
        if (p->pid != pid) continue;
        *pp = p->next;
        char cache[PATH_MAX] = "", why[512];
        char *text = code == 0 ? weft_read_file(p->result, PATH_MAX, NULL) : NULL;
        if (text) snprintf(cache, sizeof cache, "%s", text);
        free(text);
        if (code == 0 && cache[0] && access(cache, R_OK) == 0) {
            weft_info("sharded %s into %s", p->source, cache);
            finish(p->source, p->shards, p->model, cache, NULL);
        } else {
            last_line(p->log, why, sizeof why);
            weft_warn("sharding %s failed: %s", p->source, why);
            finish(p->source, p->shards, p->model, NULL, why);
        }
        unlink(p->result);
        unlink(p->log);
        free(p);
        return 1;
    }
    return 0;
}

int prepare_cron(void)
{
    store_job_row_t *rows;
    size_t n;
    if (store_list(server.store, JOB_PREPARING, NULL, 0, 0, 100000, &rows, &n) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        spec_t *s;
        char *path;
        spec_data_kind_t *kind;
        if (unit_data(&rows[i], &s, &path, &kind) < 0) continue;
        int shards = s->resources.ranks;
        if (!preparing(path, shards, s->model) && start(path, *kind, shards, s->model) < 0)
            weft_warn("%s", weft_last_error());
        spec_destroy(&s);
    }
    store_job_rows_free(rows, n);
    return 0;
}
