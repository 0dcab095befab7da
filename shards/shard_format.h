/* shard_format.h: the constants of the weft-shards file (see DESIGN.md and
 * docs/FORMATS-shards.md) and the small deterministic random functions that
 * the writer (shuffle, split) and the reader (window draws) share. */
#ifndef WEFT_SHARD_FORMAT_H
#define WEFT_SHARD_FORMAT_H

#include "common/splitmix.h"

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

/* Maps a uniform 64-bit value onto [0, n) (Lemire's multiply-shift). */
static inline uint64_t shard_scale(uint64_t x, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

/* Uniform integer in [0, n), n > 0, without bias (Lemire's rejection). */
static inline uint64_t shard_rand_below(uint64_t *state, uint64_t n)
{
    uint64_t x = weft_splitmix64(state);
    unsigned __int128 m = (unsigned __int128)x * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t t = -n % n;
        while (low < t) {
            x = weft_splitmix64(state);
            m = (unsigned __int128)x * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

#endif
