/* bench_engine_cuda.c: `weft-bench engine --device cuda [--vs-torch]`: the
 * CUDA engine's training step (engine/cuda/bench_cuda.c) and, with
 * --vs-torch, PyTorch eager on the same shape (bench_torch_cuda.py) first,
 * in the same call. A build without CUDA says so in one line (78). */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_engine_cuda(int argc, char **argv);

#ifdef WEFT_HAVE_CUDA
int bench_cuda_main(int argc, char **argv);

int bench_engine_cuda(int argc, char **argv)
{
    const char *preset = "gpt2", *B = "16", *T = "1024", *steps = "10", *prec = "bf16";
    const char *script = NULL, *peak = NULL;
    int vs_torch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--vs-torch")) {
            vs_torch = 1;
            continue;
        }
        if (!strcmp(a, "--json")) continue; /* bench_cuda always ends with a JSON line */
        if (!v) {
            fprintf(stderr, "weft-bench engine: %s needs a value\n", a);
            return 64;
        }
        if (!strcmp(a, "--preset"))
            preset = v;
        else if (!strcmp(a, "--batch"))
            B = v;
        else if (!strcmp(a, "--seq"))
            T = v;
        else if (!strcmp(a, "--steps"))
            steps = v;
        else if (!strcmp(a, "--precision"))
            prec = v;
        else if (!strcmp(a, "--torch-script"))
            script = v;
        else if (!strcmp(a, "--peak-tflops"))
            peak = v;
        else if (strcmp(a, "--device") && strcmp(a, "--threads")) {
            fprintf(stderr, "weft-bench engine --device cuda: unknown option '%s'\n", a);
            return 64;
        }
        i++;
    }
    char path[4096], json[64] = "";
    if (vs_torch) {
        const char *src = getenv("top_srcdir");
        if (!script) {
            snprintf(path, sizeof path, "%s/engine/cuda/bench_torch_cuda.py", src ? src : ".");
            script = path;
        }
        snprintf(json, sizeof json, "/tmp/weft-bench-torch-XXXXXX");
        int fd = mkstemp(json);
        if (fd < 0) return fprintf(stderr, "weft-bench engine: cannot make a temporary file\n"), 1;
        close(fd);
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "python3 '%s' --preset '%s' --batch '%s' --seq '%s' --steps '%s' --json > '%s'",
                 script, preset, B, T, steps, json);
        if (strchr(script, '\'') || system(cmd) != 0) {
            fprintf(stderr, "weft-bench engine: PyTorch's run failed (%s); timing weft alone\n",
                    script);
            unlink(json);
            vs_torch = 0;
        }
    }
    char *args[16];
    int n = 0;
    args[n++] = "weft-bench engine --device cuda";
    args[n++] = "--preset", args[n++] = (char *)preset;
    args[n++] = "-B", args[n++] = (char *)B;
    args[n++] = "-T", args[n++] = (char *)T;
    args[n++] = "--steps", args[n++] = (char *)steps;
    args[n++] = "--precision", args[n++] = (char *)prec;
    if (peak) args[n++] = "--peak-tflops", args[n++] = (char *)peak;
    if (vs_torch) args[n++] = "--torch-json", args[n++] = json;
    args[n] = NULL;
    int rc = bench_cuda_main(n, args);
    if (vs_torch) unlink(json);
    return rc;
}
#else
int bench_engine_cuda(int argc, char **argv)
{
    (void)argc, (void)argv;
    weft_error("weft-bench engine --device cuda needs a weft built with CUDA (./configure "
               "--with-cuda where nvcc is); this build has none");
    weft_report();
    return 78;
}
#endif
