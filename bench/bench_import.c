/* bench_import.c: `weft-bench import`: writes a weft-model file of the given
 * Llama-family preset of weft init-model (default qwen2.5-0.5b: Qwen2, L24
 * C896, 14/2 heads, I4864, V151936, tied) from random values, exports it as a
 * BF16 Hugging Face folder, then imports it in a child process per run and
 * reports input MB/s on one core and the child's peak RSS against the
 * output model's size. */
#include "bench/bench.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "engine/gpt2.h"
#include "model/hf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sysexits.h>

/* The engine's Llama-family preset as `weft init-model --preset NAME`
 * makes it (gpt2_config_preset), in import's terms. */
static int preset_config(const char *name, hf_config_t *c)
{
    gpt2_config_t g;
    if (gpt2_config_preset(name, &g) < 0) return -1;
    if (g.arch != ARCH_LLAMA) return weft_error("preset '%s' is not a Llama-family model", name);
    const llama_config_t *x = &g.llama;
    memset(c, 0, sizeof *c);
    c->family = x->bias == 7u ? HF_QWEN2 : HF_LLAMA;
    c->n_layer = g.n_layer;
    c->n_head = g.n_head;
    c->n_embd = g.n_embd;
    c->vocab_size = g.vocab_size;
    c->n_ctx = g.n_ctx;
    c->n_kv_head = x->n_kv_head;
    c->head_dim = x->head_dim;
    c->n_inner = x->n_inner;
    c->rms_norm_eps = x->rms_norm_eps;
    c->rope_theta = x->rope_theta;
    c->tie_word_embeddings = x->tie_word_embeddings;
    c->qkv_bias = (x->bias & 7u) == 7u;
    snprintf(c->tokenizer, sizeof c->tokenizer, "none");
    return 0;
}

/* A version-2 model file of random normal(0, 0.02)-ish values. */
static int write_model(const hf_config_t *c, const char *path)
{
    hf_tensor_t *tab;
    size_t n;
    if (hf_tensor_table(c, &tab, &n) < 0) return -1;
    h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        free(tab);
        return weft_error("%s: cannot create", path);
    }
    int rc = hf_config_write_attrs(f, c) | h5_attr_write_str(f, "tokenizer", c->tokenizer);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        size_t numel = (size_t)(tab[j].shape[0] * tab[j].shape[1]);
        float *buf = malloc(numel * sizeof *buf);
        if (!buf) {
            rc = weft_error("out of memory");
            break;
        }
        for (size_t i = 0; i < numel; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.07f;
        }
        char ds[160];
        snprintf(ds, sizeof ds, "/%s", tab[j].h5);
        hsize_t dims[2] = {tab[j].shape[0], tab[j].shape[1]};
        rc = h5_write_f32(f, ds, tab[j].ndim, dims, buf);
        free(buf);
    }
    if (H5Fclose(f) < 0 && rc == 0) rc = weft_error("%s: cannot finish", path);
    free(tab);
    return rc;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* One import in a child: its wall seconds and peak RSS (MiB). */
static int run_import(const char *dir, const char *out, double *secs, double *cpu, double *rss_mb)
{
    unlink(out); /* not timed: freeing the last run's output */
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) return weft_error("fork failed");
    if (pid == 0) _exit(hf_import(dir, out, NULL) == 0 ? 0 : (weft_report(), 1));
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return weft_error("the import failed");
    *secs = bench_now() - t0;
    *cpu = bench_ru_cpu_s(&ru);
    *rss_mb = bench_ru_rss_mb(&ru);
    return 0;
}

int bench_import(int argc, char **argv)
{
    const char *shape = "qwen2.5-0.5b", *dir = NULL;
    int runs = 3, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            shape = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: weft-bench import [--shape PRESET] [--dir DIR] [--runs N] "
                            "[--json]\n"
                            "PRESET: a Llama-family preset of weft init-model (qwen2.5-0.5b, "
                            "smollm2-135m, llama-tiny); with --dir, a checkpoint already there "
                            "is reused\n");
            return EX_USAGE;
        }
    }
    hf_config_t cfg, *c = &cfg;
    if (preset_config(shape, c) < 0 || runs < 1 || runs > 20) {
        weft_report();
        fprintf(stderr, "weft-bench import: bad --shape '%s' or --runs\n", shape);
        return EX_USAGE;
    }
    char tmpl[] = "/tmp/weft-bench-import-XXXXXX", work[PATH_MAX - 64], model[PATH_MAX],
         hf[PATH_MAX], out[PATH_MAX];
    if (!dir && !(dir = mkdtemp(tmpl))) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(work, sizeof work, "%s", dir);
    snprintf(model, sizeof model, "%s/model.h5", work);
    snprintf(hf, sizeof hf, "%s/hf-bf16", work);
    snprintf(out, sizeof out, "%s/imported.h5", work);
    double *secs = calloc((size_t)runs, sizeof *secs), *rss = calloc((size_t)runs, sizeof *rss),
           *cpu = calloc((size_t)runs, sizeof *cpu);
    int rc = 1;
    char st_path[PATH_MAX + 32];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", hf);
    if (!secs || !rss || !cpu) goto out;
    if (file_size(st_path) > 0) {
        fprintf(stderr, "weft-bench import: reusing %s\n", hf);
    } else {
        fprintf(stderr, "weft-bench import: writing a %s model file and its BF16 export in %s\n",
                shape, work);
        if (write_model(c, model) < 0 || hf_export(model, hf, 1) < 0) goto out;
        unlink(model);
    }
    double in_mb = (double)file_size(st_path) / 1e6;
    for (int r = 0; r < runs; r++)
        if (run_import(hf, out, &secs[r], &cpu[r], &rss[r]) < 0) goto out;
    double out_mb = (double)file_size(out) / 1e6;
    double load[3] = {0};
    if (getloadavg(load, 3) < 0) load[0] = load[1] = load[2] = -1;
    printf("weft import, %s BF16 checkpoint, one process, page cache warm, %d runs; load "
           "average %.2f %.2f %.2f on %ld CPUs\n",
           shape, runs, load[0], load[1], load[2], sysconf(_SC_NPROCESSORS_ONLN));
    printf("(wall includes the fsync of the output and waits for a shared CPU; CPU = user + "
           "sys of the importer)\n");
    printf("%-8s %9s %9s %10s %9s %10s %12s %13s\n", "run", "input MB", "wall s", "MB/s wall",
           "CPU s", "MB/s CPU", "peak RSS MB", "RSS / output");
    for (int r = 0; r < runs; r++)
        printf("%-8d %9.1f %9.3f %10.1f %9.3f %10.1f %12.1f %13.3f\n", r + 1, in_mb, secs[r],
               in_mb / secs[r], cpu[r], in_mb / cpu[r], rss[r] * 1.048576,
               rss[r] * 1.048576 / out_mb);
    double ms = bench_median(secs, (size_t)runs), mc = bench_median(cpu, (size_t)runs),
           mr = bench_median(rss, (size_t)runs) * 1.048576;
    printf("%-8s %9.1f %9.3f %10.1f %9.3f %10.1f %12.1f %13.3f\n", "median", in_mb, ms, in_mb / ms,
           mc, in_mb / mc, mr, mr / out_mb);
    printf("output model %.1f MB; targets: >= 300 MB/s on one core, RSS <= 1.2 x output\n", out_mb);
    if (json)
        printf("{\"bench\":\"import\",\"shape\":\"%s\",\"input_mb\":%.1f,\"output_mb\":%.1f,"
               "\"median_wall_s\":%.4f,\"median_cpu_s\":%.4f,\"mb_per_s_wall\":%.1f,"
               "\"mb_per_s_cpu\":%.1f,\"peak_rss_mb\":%.1f,\"rss_ratio\":%.3f}\n",
               shape, in_mb, out_mb, ms, mc, in_mb / ms, in_mb / mc, mr, mr / out_mb);
    rc = 0;
out:
    if (rc) weft_report();
    free(secs);
    free(rss);
    free(cpu);
    unlink(out);
    if (!strncmp(work, "/tmp/weft-bench-import-", 23)) weft_rm_rf(work);
    return rc;
}
