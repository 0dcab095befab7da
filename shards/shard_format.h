/* shard_format.h: the constants of the weft-shards file (see DESIGN.md and
 * docs/FORMATS-shards.md) and the small deterministic random functions that
 * the writer (shuffle, split) and the reader (window draws) share. */
#ifndef WEFT_SHARD_FORMAT_H
#define WEFT_SHARD_FORMAT_H

#include <stdint.h>

#define SHARD_FORMAT         "weft-shards"
#define SHARD_VERSION        1
#define SHARD_TOKENIZER_BYTE "byte"
#define SHARD_TOKENIZER_BPE  "bpe" /* adds tokenizer_sha256 and eot_id */
#define SHARD_BYTE_VOCAB     257 /* bytes 0..255, then end of document */
#define SHARD_BYTE_EOT       256

/* Dataset chunk sizes (elements). A token chunk is 128 KiB of uint16: a
 * random training window inflates one or two of them. */
#define SHARD_TOKEN_CHUNK  65536
#define SHARD_OFFSET_CHUNK 16384

/* SplitMix64's output function: a bijective 64-bit mix. */
static inline uint64_t shard_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* SplitMix64 generator: state advances by the golden gamma on each draw. */
static inline uint64_t shard_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return shard_mix64(*state);
}

/* Maps a uniform 64-bit value onto [0, n) (Lemire's multiply-shift). */
static inline uint64_t shard_scale(uint64_t x, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

/* Uniform integer in [0, n), n > 0, without bias (Lemire's rejection). */
static inline uint64_t shard_rand_below(uint64_t *state, uint64_t n)
{
    uint64_t x = shard_rand(state);
    unsigned __int128 m = (unsigned __int128)x * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t t = -n % n;
        while (low < t) {
            x = shard_rand(state);
            m = (unsigned __int128)x * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

#endif
