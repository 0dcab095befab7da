/* rng.h: the engine's random numbers: a small, seedable, checkpointable
 * generator (splitmix64) giving uniform and normal floats, the same bits on
 * every run for the same seed. */
#ifndef WEFT_RNG_H
#define WEFT_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} weft_rng_t;

void rng_seed(weft_rng_t *r, uint64_t seed);
uint64_t rng_u64(weft_rng_t *r);
/* Uniform in [0, 1), 24 random bits. */
float rng_uniform(weft_rng_t *r);
/* Normal(mean, std) by Box-Muller in double precision. */
float rng_normal(weft_rng_t *r, float mean, float std);

#endif
