/* rng.c: splitmix64 and the uniform/normal draws built on it (see rng.h).
 * splitmix64 passes BigCrush and its whole state is one integer, which is
 * what a checkpoint stores. */
#include "engine/rng.h"
#include "common/splitmix.h"

#include <math.h>

void rng_seed(weft_rng_t *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t rng_u64(weft_rng_t *r)
{
    return weft_splitmix64(&r->state);
}

float rng_uniform(weft_rng_t *r)
{
    return (float)(rng_u64(r) >> 40) / 16777216.0f;
}

float rng_normal(weft_rng_t *r, float mean, float std)
{
    /* u1 in (0, 1] so that log(u1) is finite */
    double u1 = ((double)(rng_u64(r) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(rng_u64(r) >> 11) / 9007199254740992.0;
    double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    return (float)(mean + std * z);
}
