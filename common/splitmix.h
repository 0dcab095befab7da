/* splitmix.h: SplitMix64, the one generator behind every seeded stream in
 * weft (the engine's initialisation and dropout, the shard reader's window
 * order): its state is one integer, which is what a checkpoint stores. */
#ifndef WEFT_SPLITMIX_H
#define WEFT_SPLITMIX_H

#include <stdint.h>

/* SplitMix64's output function: a bijective 64-bit mix. */
static inline uint64_t weft_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The generator: the state advances by the golden gamma on each draw. */
static inline uint64_t weft_splitmix64(uint64_t *state)
{
    return weft_mix64(*state += 0x9e3779b97f4a7c15ULL);
}

#endif
