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

#endif
