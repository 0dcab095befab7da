/* bench_shard.c: `weft-bench shard`: generates a synthetic text corpus,
 * runs the real shard writer on it in a child process, and reports input
 * MB/s and the child's peak RSS for a small and a large input. */
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shard_format.h"
#include "shards/shard_writer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sysexits.h>

#define NWORDS    8192
#define FILE_MB   16 /* corpus files of this size */
#define FOLLOWERS 4

typedef struct {
    char words[NWORDS][12];
    uint8_t wlen[NWORDS];
    uint32_t cdf[NWORDS];               /* Zipf(1) cumulative weights, scaled to 2^32 */
    uint16_t follow[NWORDS][FOLLOWERS]; /* each word's usual successors */
} lexicon_t;

static int lexicon_word(const lexicon_t *lx, uint64_t *state);

/* English letter frequencies, per 10000 letters, a to z. */
static const uint16_t letter_freq[26] = {817, 149, 278, 425, 1270, 223, 202, 609, 697,
                                         15,  77,  403, 241, 675,  751, 193, 10,  599,
                                         633, 906, 276, 98,  236,  15,  197, 7};
#define LETTER_TOTAL 10002

/* Made-up words of 1-10 letters drawn with English letter frequencies, used
 * with Zipfian word frequencies: compresses roughly like English prose. */
static void lexicon_init(lexicon_t *lx, uint64_t seed)
{
    double h = 0, acc = 0;
    for (int i = 0; i < NWORDS; i++) h += 1.0 / (i + 1);
    for (int i = 0; i < NWORDS; i++) {
        int n = 1 + (int)shard_rand_below(&seed, 3) + (int)shard_rand_below(&seed, 4) +
                (i > 64 ? (int)shard_rand_below(&seed, 4) : 0);
        for (int k = 0; k < n; k++) {
            uint64_t u = shard_rand_below(&seed, LETTER_TOTAL), c = 0;
            while (u >= letter_freq[c]) u -= letter_freq[c++];
            lx->words[i][k] = (char)('a' + c);
        }
        lx->wlen[i] = (uint8_t)n;
        acc += 1.0 / (i + 1) / h;
        lx->cdf[i] = acc >= 1.0 ? UINT32_MAX : (uint32_t)(acc * 4294967296.0);
    }
    lx->cdf[NWORDS - 1] = UINT32_MAX;
    for (int i = 0; i < NWORDS; i++)
        for (int k = 0; k < FOLLOWERS; k++) lx->follow[i][k] = (uint16_t)lexicon_word(lx, &seed);
}

/* A word by Zipfian frequency. */
static int lexicon_word(const lexicon_t *lx, uint64_t *state)
{
    uint32_t u = (uint32_t)(weft_splitmix64(state) >> 32);
    int lo = 0, hi = NWORDS - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (lx->cdf[mid] >= u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Appends one document of about target bytes to buf: sentences of words,
 * paragraphs ending with a newline. JSONL documents are written as one line
 * {"text": "..."} with escaped newlines and quotes. */
static size_t make_doc(const lexicon_t *lx, uint64_t *state, char *buf, size_t target, int jsonl)
{
    size_t n = 0;
    if (jsonl)
        n += (size_t)sprintf(buf, "{\"id\": %llu, \"text\": \"",
                             (unsigned long long)(*state % 1000000));
    int sentence_start = 1, line_start = 1, w = 0;
    while (n < target) {
        /* mostly a usual successor of the last word: recurring phrases */
        w = shard_rand_below(state, 4) ? lx->follow[w][shard_rand_below(state, FOLLOWERS)]
                                       : lexicon_word(lx, state);
        if (!line_start) buf[n++] = ' ';
        memcpy(buf + n, lx->words[w], lx->wlen[w]);
        if (sentence_start) buf[n] = (char)(buf[n] - 32);
        n += lx->wlen[w];
        sentence_start = line_start = 0;
        uint64_t r = shard_rand_below(state, 100);
        if (r < 8) {
            buf[n++] = '.';
            sentence_start = 1;
            if (shard_rand_below(state, 6) == 0) { /* end of paragraph */
                if (jsonl) buf[n++] = '\\';
                buf[n++] = jsonl ? 'n' : '\n';
                line_start = 1;
            }
        } else if (r < 10) {
            buf[n++] = ',';
        } else if (r == 10 && jsonl) {
            memcpy(buf + n, " \\\"quoted\\\"", 11);
            n += 11;
        }
    }
    if (jsonl) {
        memcpy(buf + n, "\"}\n", 3);
        n += 3;
    } else {
        memcpy(buf + n, ".\n---\n", 6);
        n += 6;
    }
    return n;
}

/* Writes about mb MB of documents (200 B to ~20 KB each) into files of
 * FILE_MB in dir; fills paths (room for 64) and returns their count. */
static int make_corpus(const char *dir, int mb, int jsonl, char paths[][PATH_MAX], int *nfiles)
{
    lexicon_t *lx = malloc(sizeof *lx);
    char *doc = malloc(64 << 10);
    if (!lx || !doc) {
        free(lx);
        free(doc);
        return weft_error("out of memory");
    }
    lexicon_init(lx, 42);
    uint64_t state = 7;
    int64_t total = (int64_t)mb << 20, done = 0;
    int rc = 0;
    *nfiles = 0;
    while (rc == 0 && done < total && *nfiles < 64) {
        char *path = paths[(*nfiles)++];
        int n =
            snprintf(path, PATH_MAX, "%s/corpus-%02d.%s", dir, *nfiles, jsonl ? "jsonl" : "txt");
        FILE *f = n > 0 && n < PATH_MAX ? fopen(path, "w") : NULL;
        if (!f) {
            rc = weft_error("cannot create %s", path);
            break;
        }
        int64_t in_file = 0;
        while (done < total && in_file < ((int64_t)FILE_MB << 20)) {
            /* lengths: 200 B + an exponential-ish tail up to ~20 KB */
            size_t target = 200 + (size_t)shard_rand_below(&state, 2000) *
                                      (1 + (size_t)shard_rand_below(&state, 10));
            size_t len = make_doc(lx, &state, doc, target, jsonl);
            if (fwrite(doc, 1, len, f) != len) rc = weft_error("cannot write %s", path);
            done += (int64_t)len;
            in_file += (int64_t)len;
        }
        if (fclose(f) != 0) rc = weft_error("cannot write %s", path);
    }
    free(lx);
    free(doc);
    return rc;
}

typedef struct {
    double seconds, cpu_seconds, mb_s, cpu_mb_s, rss_mb;
    int64_t in_bytes, out_bytes, docs;
} run_t;

/* Runs the writer in a child so its peak RSS is its own (wait4's ru_maxrss). */
static int run_writer(shard_opts_t *o, run_t *r)
{
    double t0 = bench_now();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork failed");
    if (pid == 0) {
        shard_stats_t st;
        _exit(shard_write(o, &st) < 0 ? (weft_report(), 1) : 0);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return weft_error("wait4 failed");
    r->seconds = bench_now() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return weft_error("the shard writer failed (status %d)", status);
    r->rss_mb = bench_ru_rss_mb(&ru);
    r->cpu_seconds = bench_ru_cpu_s(&ru);
    struct stat st;
    r->in_bytes = 0;
    for (int i = 0; i < o->ninputs; i++)
        if (stat(o->inputs[i], &st) == 0) r->in_bytes += st.st_size;
    r->out_bytes = stat(o->output, &st) == 0 ? st.st_size : 0;
    r->mb_s = (double)r->in_bytes / 1e6 / r->seconds;
    r->cpu_mb_s = (double)r->in_bytes / 1e6 / r->cpu_seconds;
    return 0;
}

typedef struct {
    const char *format;
    int mb;
    double mb_s, mb_s_min, mb_s_max, cpu_mb_s, rss_mb, ratio;
    int64_t in_bytes;
} row_t;

static int bench_row(const char *dir, int mb, int jsonl, int reps, row_t *row)
{
    char paths[64][PATH_MAX], *argv[64], out[PATH_MAX];
    int nfiles = 0;
    if (make_corpus(dir, mb, jsonl, paths, &nfiles) < 0) return -1;
    for (int i = 0; i < nfiles; i++) argv[i] = paths[i];
    int n = snprintf(out, sizeof out, "%s/out.h5", dir);
    if (n < 0 || (size_t)n >= sizeof out) return weft_error("temp path too long");
    shard_opts_t o = {.format = jsonl ? SHARD_INPUT_JSONL : SHARD_INPUT_TEXT,
                      .field = "text",
                      .shards = 8,
                      .val_fraction = 0.01,
                      .seed = 1,
                      .force = 1,
                      .output = out,
                      .ninputs = nfiles,
                      .inputs = argv};
    double speeds[16], cpu[16], rss = 0;
    run_t r = {0};
    int rc = 0;
    for (int k = 0; rc == 0 && k < reps; k++) {
        rc = run_writer(&o, &r);
        speeds[k] = r.mb_s;
        cpu[k] = r.cpu_mb_s;
        if (r.rss_mb > rss) rss = r.rss_mb;
    }
    unlink(out);
    for (int i = 0; i < nfiles; i++) unlink(paths[i]);
    if (rc < 0) return -1;
    *row = (row_t){.format = jsonl ? "jsonl" : "text",
                   .mb = mb,
                   .rss_mb = rss,
                   .ratio = (double)r.out_bytes / (double)r.in_bytes,
                   .in_bytes = r.in_bytes};
    row->mb_s_min = row->mb_s_max = speeds[0];
    for (int k = 1; k < reps; k++) {
        if (speeds[k] < row->mb_s_min) row->mb_s_min = speeds[k];
        if (speeds[k] > row->mb_s_max) row->mb_s_max = speeds[k];
    }
    row->mb_s = bench_median(speeds, (size_t)reps);
    row->cpu_mb_s = bench_median(cpu, (size_t)reps);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: weft-bench shard [--mb 200] [--reps 3] [--json] [--corpus DIR]\n"
                 "Shards a generated text corpus of MB/4 and MB megabytes (and a JSONL one\n"
                 "of MB/4) with the real writer in a child process; prints the median input\n"
                 "MB/s and the child's peak RSS. The corpus is in the page cache.\n"
                 "--corpus DIR only writes the MB-megabyte text corpus into DIR.\n");
}

int bench_shard(int argc, char **argv)
{
    int mb = 200, reps = 3, json = 0;
    const char *corpus = NULL;
    const bench_opt_t opts[] = {BENCH_INT_OPT("mb", &mb), BENCH_INT_OPT("reps", &reps),
                                BENCH_FLAG_OPT("json", &json), BENCH_STR_OPT("corpus", &corpus)};
    int p = bench_options(argc, argv, opts, BENCH_NOPTS(opts), usage);
    if (p) return p > 0 ? 0 : EX_USAGE;
    if (mb < 4 || mb > 4096 || reps < 1 || reps > 16) {
        fprintf(stderr, "weft-bench shard: --mb must be 4..4096 and --reps 1..16\n");
        return EX_USAGE;
    }
    h5_quiet();
    if (corpus) {
        char paths[64][PATH_MAX];
        int nfiles = 0;
        if (make_corpus(corpus, mb, 0, paths, &nfiles) < 0) {
            weft_report();
            return 1;
        }
        printf("%d files in %s\n", nfiles, corpus);
        return 0;
    }
    char dir[] = "/tmp/weft-bench-shard-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "weft-bench shard: cannot create a temporary folder in /tmp\n");
        return 1;
    }
    struct {
        int mb, jsonl;
    } plan[] = {{mb / 4, 0}, {mb, 0}, {mb / 4, 1}};
    row_t rows[3];
    int rc = 0;
    printf("weft shard: deflate 1 + shuffle + fletcher32, 8 shards, median of %d runs\n", reps);
    printf("%-6s %9s %8s %10s %12s %12s %7s\n", "format", "input MB", "MB/s", "(min-max)",
           "MB/CPU-s", "peak RSS MB", "out/in");
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = bench_row(dir, plan[i].mb, plan[i].jsonl, reps, &rows[i]);
        if (rc == 0)
            printf("%-6s %9.1f %8.1f %4.0f-%-5.0f %12.1f %12.1f %7.3f\n", rows[i].format,
                   (double)rows[i].in_bytes / 1e6, rows[i].mb_s, rows[i].mb_s_min, rows[i].mb_s_max,
                   rows[i].cpu_mb_s, rows[i].rss_mb, rows[i].ratio);
        fflush(stdout);
    }
    weft_rm_rf(dir);
    if (rc < 0) {
        weft_report();
        return 1;
    }
    if (json)
        printf("{\"bench\":\"shard\",\"reps\":%d,\"text_small_mb\":%.1f,\"text_small_mb_s\":%.1f,"
               "\"text_small_cpu_mb_s\":%.1f,\"text_small_rss_mb\":%.1f,\"text_mb\":%.1f,"
               "\"text_mb_s\":%.1f,\"text_cpu_mb_s\":%.1f,\"text_rss_mb\":%.1f,\"jsonl_mb\":%.1f,"
               "\"jsonl_mb_s\":%.1f,\"jsonl_cpu_mb_s\":%.1f,\"jsonl_rss_mb\":%.1f,"
               "\"target_mb_s\":50,\"target_rss_mb\":200}\n",
               reps, (double)rows[0].in_bytes / 1e6, rows[0].mb_s, rows[0].cpu_mb_s, rows[0].rss_mb,
               (double)rows[1].in_bytes / 1e6, rows[1].mb_s, rows[1].cpu_mb_s, rows[1].rss_mb,
               (double)rows[2].in_bytes / 1e6, rows[2].mb_s, rows[2].cpu_mb_s, rows[2].rss_mb);
    return 0;
}
