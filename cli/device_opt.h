/* device_opt.h: --device cpu|cuda and --precision fp32|tf32|bf16 for the
 * commands that run the engine once (weft grad, weft generate). */
#ifndef WEFT_DEVICE_OPT_H
#define WEFT_DEVICE_OPT_H

#include <string.h>

#include "common/log.h"

#ifdef WEFT_HAVE_CUDA
#include "engine/cuda/gpt2_cuda.h"
#endif

/* 0 cpu, 1 cuda; -1 and one line for anything else, or cuda in a build
 * without it. */
static inline int device_opt_parse(const char *v)
{
    if (!strcmp(v, "cpu")) return 0;
    if (!strcmp(v, "cuda")) {
#ifdef WEFT_HAVE_CUDA
        return 1;
#else
        return weft_error("--device cuda needs a weft built with CUDA (./configure --with-cuda "
                          "where nvcc is); this build has none: use --device cpu");
#endif
    }
    return weft_error("--device %.40s: use cpu or cuda", v);
}

/* Whether the device (device_opt_parse's) runs at --precision, with an
 * adapter or without: 0, or -1 and one line (adapters run on the CPU only,
 * the CPU engine in fp32 only). */
static inline int device_opt_check(int device, const char *precision, int adapter)
{
    if (device == 1 && adapter)
        return weft_error("--device cuda: LoRA adapters run on the CPU in this version; drop "
                          "--adapter or use --device cpu");
    if (strcmp(precision, "fp32") && device != 1)
        return weft_error("--precision %.40s needs --device cuda; the CPU engine runs fp32 only",
                          precision);
    return 0;
}

#endif
