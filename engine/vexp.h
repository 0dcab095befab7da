/* vexp.h: exp in float32 as a static inline that gcc vectorises inside the
 * engine's loops (relative error about 2e-7); kernels.c and llama_kernels.c
 * share it, fast_expf (kernels.h) is the same function out of line. */
#ifndef WEFT_VEXP_H
#define WEFT_VEXP_H

#include <stdint.h>

/* exp(x) = 2^n · e^r with n = round(x/ln2), |r| <= ln2/2, e^r by its Taylor
 * polynomial to r^7 (error < 2e-8 on that range). Branch-free. */
static inline float vexpf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by the 1.5·2^23 trick: branch-free, no libm call */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* A NaN input stays NaN through p; its exponent is taken as 0 so that
     * no NaN is converted to an integer. */
    int32_t ni = n == n ? (int32_t)n : 0;
    union {
        uint32_t i;
        float f;
    } s = {.i = (uint32_t)(ni + 127) << 23};
    return p * s.f;
}

#endif
