/* prepare.c: weftd's data preparation. A job whose data is raw text or JSONL
 * waits in PREPARING while a child process (its own process group) shards
 * it into the data cache in weftd's home, named by the content hash of the
 * corpus and the tokenizer, so an unchanged corpus is sharded once.
 *
 * The cache cannot be poisoned by a corpus that changes under it: the child
 * reads the tenant's file once, through one open descriptor, into a private
 * copy while hashing it; names the cache file by that hash; shards the copy
 * (`weft shard`, the same code as the command) into a temporary file; checks
 * that its source_sha256 is the hash; and renames it into place, so that
 * inserting is idempotent when two preparations of one corpus race. A cache
 * file is used only while its source_sha256 matches its name. A model
 * carrying a BPE tokenizer shards with it (`weft shard --tokenizer MODEL`),
 * and its SHA-256 joins the cache name. A bad corpus fails its jobs with the
 * shard tool's message; a cancelled preparation's process group is ended. */
#include "scheduler/exec_local.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "jobs/plan.h"
#include "common/sha256.h"
#include "jobs/spec.h"
#include "model/tok_h5.h"
#include "scheduler/weftd.h"

#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sysexits.h>

#define CACHE_VERSION "byte-v1" /* tokenizer and shard settings of the cache */
#define CANCEL_GRACE  5.0       /* seconds between SIGTERM and SIGKILL of a cancelled one */

typedef struct prep {
    pid_t pid;
    char source[SPEC_PATH_MAX];
    char model[SPEC_PATH_MAX]; /* whose tokenizer shards it */
    char fmt[32];              /* unit_format() */
    int shards;            /* one or more per rank of the jobs waiting on it */
    char result[PATH_MAX]; /* the child writes the cache path here */
    char log[PATH_MAX];
    char copy[PATH_MAX]; /* the child's private copy of the corpus */
    char out[PATH_MAX];  /* the shards it writes before the rename */
    double cancelled;    /* when its jobs were all cancelled (0: not) */
    int signalled;       /* weftd ended it: its failure is no job's */
    struct prep *next;
} prep_t;

static prep_t *preps;

/* What a unit's raw data is sharded as: "text", "jsonl", "completion" or
 * "chat:<template>" (preparations of one file in two formats are two). */
static void unit_format(const spec_t *s, char fmt[32])
{
    spec_data_kind_t k = s->tenants[0].data_kind;
    snprintf(fmt, 32, "%s%s%s", spec_data_kind_name(k), k == SPEC_DATA_CHAT ? ":" : "",
             k == SPEC_DATA_CHAT ? s->tenants[0].chat_template : "");
}

/* The data path and kind of a preparing job's unit (its one tenant's). */
static int unit_data(const store_job_row_t *row, spec_t **spec, char **path,
                     spec_data_kind_t **kind)
{
    *spec = spec_parse(row->unit, strlen(row->unit), "/", row->name, NULL, NULL);
    if (!*spec) return -1;
    *path = (*spec)->tenants[0].data;
    *kind = &(*spec)->tenants[0].data_kind;
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

/* 1 when cache is a weft-shards file whose source_sha256 is hex. */
static int cache_matches(const char *cache, const char *hex)
{
    h5_quiet();
    if (H5Fis_hdf5(cache) <= 0) return 0;
    hid_t f = H5Fopen(cache, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    char sha[80] = "";
    int ok = h5_attr_read_str(f, "source_sha256", sha, sizeof sha) == 0 && !strcmp(sha, hex);
    H5Fclose(f);
    return ok;
}

/* The cache key is the file name's first 64 characters. */
static int cache_key_matches(const char *cache)
{
    const char *base = strrchr(cache, '/');
    base = base ? base + 1 : cache;
    char hex[65];
    if (strlen(base) < 64) return 0;
    memcpy(hex, base, 64);
    hex[64] = 0;
    return cache_matches(cache, hex);
}

/* Reads source once, through one descriptor, into copy (created 0600),
 * hashing what it reads. Refuses anything but a regular file (a FIFO would
 * block the read for ever). */
static int copy_and_hash(const char *source, const char *copy, char hex[65])
{
    int in = open(source, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (in < 0) return weft_error("cannot open data %s: %s", source, strerror(errno));
    struct stat st;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(in);
        return weft_error("data %s is not a regular file; give a file", source);
    }
    int out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return weft_error("cannot create %s: %s", copy, strerror(errno));
    }
    weft_sha256_t sha;
    weft_sha256_init(&sha);
    static char buf[1 << 20];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = weft_error("cannot read data %s: %s", source, strerror(errno));
            break;
        }
        if (n == 0) break;
        weft_sha256_update(&sha, buf, (size_t)n);
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = weft_error("cannot write %s: %s", copy, strerror(errno));
                break;
            }
            done += w;
        }
        if (rc < 0) break;
    }
    close(in);
    if (close(out) != 0 && rc == 0) rc = weft_error("cannot write %s: %s", copy, strerror(errno));
    uint8_t digest[32];
    weft_sha256_final(&sha, digest);
    weft_sha256_hex(digest, hex);
    return rc;
}

/* Runs `weft shard` on the private copy into out; its exit code. */
static int run_shard(const char *weft, spec_data_kind_t kind, const char *tmpl, int shards,
                     const char *model, int bpe, const char *copy, const char *out)
{
    char nshards[16];
    snprintf(nshards, sizeof nshards, "%d", shards);
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork: %s", strerror(errno)), 1;
    if (pid == 0) {
        const char *argv[24];
        int n = 0;
        argv[n++] = weft, argv[n++] = "shard", argv[n++] = "--format";
        argv[n++] = spec_data_kind_name(kind);
        if (kind == SPEC_DATA_CHAT) argv[n++] = "--template", argv[n++] = tmpl;
        if (bpe) argv[n++] = "--tokenizer", argv[n++] = model;
        argv[n++] = "--quiet", argv[n++] = "--force", argv[n++] = "--shards", argv[n++] = nshards;
        argv[n++] = "--val-fraction", argv[n++] = "0.1", argv[n++] = "-o", argv[n++] = out;
        argv[n++] = copy, argv[n] = NULL;
        execv(weft, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", weft, strerror(errno));
        _exit(1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Child: copy and hash the corpus, name the cache file, shard into it if it
 * is missing or does not match its name. */
static void child(const char *source, spec_data_kind_t kind, const char *fmt, int shards,
                  const char *model, const char *result, const char *copy, const char *out)
{
    char hex[65], weft[PATH_MAX], cache[PATH_MAX], name[192], tok[16], toksha[65];
    if (copy_and_hash(source, copy, hex) < 0 || tok_h5_info(model, tok, toksha) < 0) {
        fprintf(stderr, "%s\n", weft_last_error());
        unlink(copy);
        _exit(EX_DATAERR);
    }
    int bpe = !strcmp(tok, TOK_KIND_BPE);
    char fname[32];
    snprintf(fname, sizeof fname, "%s", fmt);
    for (char *p = fname; *p; p++)
        if (*p == ':') *p = '-';
    snprintf(name, sizeof name, "%.64s-%s-%s-s%d%s%.64s.h5", hex, fname, CACHE_VERSION, shards,
             bpe ? "-bpe-" : "", bpe ? toksha : "");
    if (weft_path_join(cache, sizeof cache, server.data_dir, name) < 0 ||
        find_weft(weft, sizeof weft) < 0) {
        fprintf(stderr, "%s\n", weft_last_error());
        unlink(copy);
        _exit(1);
    }
    int code = 0;
    if (access(cache, F_OK) == 0 && !cache_matches(cache, hex))
        fprintf(stderr, "cache file %s does not hold what its name says; sharding again\n", cache);
    if (!cache_matches(cache, hex)) {
        const char *colon = strchr(fmt, ':');
        code = run_shard(weft, kind, colon ? colon + 1 : "plain", shards, model, bpe, copy, out);
        if (code == 0 && !cache_matches(out, hex)) {
            fprintf(stderr, "the sharded data of %s does not match its hash %s\n", source, hex);
            code = 1;
        }
        if (code == 0 && weft_rename_durable(out, cache) < 0) {
            fprintf(stderr, "%s\n", weft_last_error());
            code = 1;
        }
        unlink(out);
    }
    unlink(copy);
    if (code != 0) _exit(code);
    FILE *f = fopen(result, "w");
    if (!f || fprintf(f, "%s", cache) < 0 || fclose(f) != 0) _exit(1);
    _exit(0);
}

static int start(const char *source, spec_data_kind_t kind, const char *fmt, int shards,
                 const char *model)
{
    prep_t *p = calloc(1, sizeof *p);
    if (!p) return weft_error("out of memory");
    snprintf(p->source, sizeof p->source, "%s", source);
    snprintf(p->model, sizeof p->model, "%s", model);
    snprintf(p->fmt, sizeof p->fmt, "%s", fmt);
    p->shards = shards;
    static unsigned counter;
    char name[64];
    snprintf(name, sizeof name, "prep-%d-%u", (int)getpid(), counter++);
    if (weft_path_join(p->result, sizeof p->result, server.data_dir, name) < 0 ||
        snprintf(p->log, sizeof p->log, "%s.log", p->result) >= (int)sizeof p->log ||
        snprintf(p->copy, sizeof p->copy, "%s.src", p->result) >= (int)sizeof p->copy ||
        snprintf(p->out, sizeof p->out, "%s.h5", p->result) >= (int)sizeof p->out) {
        free(p);
        return -1;
    }
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_t pid = fork();
    if (pid < 0) {
        free(p);
        if (fd >= 0) close(fd);
        return weft_error("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        exec_local_child_signals();
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        child(source, kind, fmt, shards, model, p->result, p->copy, p->out);
    }
    setpgid(pid, pid); /* also here, so that a cancel right away reaches the group */
    if (fd >= 0) close(fd);
    p->pid = pid;
    p->next = preps;
    preps = p;
    weft_info("sharding %s (pid %d)", source, (int)pid);
    return 0;
}

static prep_t *preparing(const char *source, const char *fmt, int shards, const char *model)
{
    for (prep_t *p = preps; p; p = p->next)
        if (!strcmp(p->source, source) && p->shards == shards && !strcmp(p->model, model) &&
            !strcmp(p->fmt, fmt))
            return p;
    return NULL;
}

/* Moves every PREPARING job on source forward: to QUEUED with its data now
 * the cache file, or to FAILED with why. */
static int finish(const char *source, const char *fmt, int shards, const char *model,
                  const char *cache,
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
        char ufmt[32];
        unit_format(s, ufmt);
        if (!strcmp(path, source) && s->resources.ranks == shards && !strcmp(s->model, model) &&
            !strcmp(ufmt, fmt)) {
            if (cache) {
                snprintf(path, SPEC_PATH_MAX, "%s", cache);
                *kind = SPEC_DATA_SHARDS;
                char *text = spec_write(s);
                rc = text ? store_job_set_unit(server.store, rows[i].id, text) : -1;
                free(text);
                /* the sharded data against the run, before any packing */
                if (rc == 0 && prepare_check_unit(s) < 0)
                    rc = store_job_transition(server.store, rows[i].id, JOB_FAILED,
                                              weft_last_error());
                else if (rc == 0)
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

int prepare_check_unit(const spec_t *unit)
{
    plan_model_t m;
    int have = plan_model_read(unit->model, &m) == 0; /* the worker says more if not */
    return plan_check_unit_data(unit, have ? &m : NULL, 0);
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
    if (*(line ? line + 1 : text)) snprintf(out, n, "%s", line ? line + 1 : text);
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
        int verified = code == 0 && cache[0] && cache_key_matches(cache);
        if (code == 0 && !verified)
            weft_warn("cache file %s does not hold what its name says; not used", cache);
        if (verified) {
            weft_info("sharded %s into %s", p->source, cache);
            finish(p->source, p->fmt, p->shards, p->model, cache, NULL);
        } else if (p->signalled) {
            /* Ended because every job waiting on it was cancelled. A job
             * that came for the same data since then still waits, and the
             * next round starts a preparation for it. */
            weft_info("sharding %s ended (its jobs were cancelled)", p->source);
        } else {
            if (code == 0)
                snprintf(why, sizeof why, "the sharded data did not verify; submit again");
            else
                last_line(p->log, why, sizeof why);
            weft_warn("sharding %s failed: %s", p->source, why);
            finish(p->source, p->fmt, p->shards, p->model, NULL, why);
        }
        unlink(p->result);
        unlink(p->log);
        unlink(p->copy);
        unlink(p->out);
        free(p);
        return 1;
    }
    return 0;
}

/* A preparation no PREPARING job waits for any more (all cancelled) is
 * ended: SIGTERM to its process group (weft shard removes its temporary
 * file), SIGKILL if it is still there CANCEL_GRACE seconds later. */
static void end_unwanted(const unsigned char *wanted)
{
    int i = 0;
    double now = weftd_now();
    for (prep_t *p = preps; p; p = p->next, i++) {
        if (wanted[i]) {
            p->cancelled = 0;
        } else if (!p->cancelled) {
            weft_info("sharding %s: no job waits for it; ending pid %d", p->source, (int)p->pid);
            kill(-p->pid, SIGTERM);
            p->cancelled = now;
            p->signalled = 1;
        } else if (now - p->cancelled > CANCEL_GRACE) {
            kill(-p->pid, SIGKILL);
        }
    }
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
        char fmt[32];
        unit_format(s, fmt);
        if (!preparing(path, fmt, shards, s->model) &&
            start(path, *kind, fmt, shards, s->model) < 0)
            weft_warn("%s", weft_last_error());
        spec_destroy(&s);
    }
    size_t np = 0;
    for (prep_t *p = preps; p; p = p->next) np++;
    unsigned char *wanted = calloc(np ? np : 1, 1);
    for (size_t i = 0; wanted && i < n; i++) {
        spec_t *s;
        char *path;
        spec_data_kind_t *kind;
        if (unit_data(&rows[i], &s, &path, &kind) < 0) continue;
        char fmt[32];
        unit_format(s, fmt);
        int k = 0;
        for (prep_t *p = preps; p; p = p->next, k++)
            if (!strcmp(p->source, path) && p->shards == s->resources.ranks &&
                !strcmp(p->fmt, fmt) &&
                !strcmp(p->model, s->model))
                wanted[k] = 1;
        spec_destroy(&s);
    }
    if (wanted) end_unwanted(wanted);
    free(wanted);
    store_job_rows_free(rows, n);
    return 0;
}
