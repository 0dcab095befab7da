/* shard_sha256.c: SHA-256 compression of whole blocks with the x86 SHA-NI
 * instructions (two rounds per sha256rnds2, the message schedule from
 * sha256msg1/msg2), falling back to common/sha256.c on other CPUs. */
#include "shards/shard_sha256.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

/* h is the 8-word state, p is (nblocks, 64) message bytes. The state lives
 * in two registers as ABEF and CDGH; group g holds schedule words
 * W[4g..4g+3], W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]. */
__attribute__((target("sha,sse4.1"))) static void blocks_ni(uint32_t h[8], const uint8_t *p,
                                                            size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);
    t = _mm_shuffle_epi32(t, 0xB1);         /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);       /* EFGH */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8); /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);      /* CDGH */
    for (; nblocks > 0; nblocks--, p += 64) {
        __m128i abef = s0, cdgh = s1, w[4];
        for (int g = 0; g < 16; g++) {
            __m128i *x = &w[g & 3];
            if (g < 4) {
                *x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            } else {
                __m128i m = _mm_sha256msg1_epu32(*x, w[(g + 1) & 3]);
                m = _mm_add_epi32(m, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
                *x = _mm_sha256msg2_epu32(m, w[(g + 3) & 3]);
            }
            __m128i wk = _mm_add_epi32(*x, _mm_loadu_si128((const __m128i *)&weft_sha256_k[4 * g]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0E));
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);   /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);  /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0); /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

int shard_sha256_accelerated(void)
{
    static int have = -1;
    if (have < 0) {
        /* CPUID directly: clang before 16 knows no "sha" feature string. */
        unsigned a, b, c, d;
        have = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) &&
               __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
    }
    return have;
}

void shard_sha256_update(weft_sha256_t *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    if (!shard_sha256_accelerated()) {
        weft_sha256_update(s, p, n);
        return;
    }
    if (s->nbuf) { /* complete the pending block the plain way */
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        weft_sha256_update(s, p, take);
        p += take, n -= take;
    }
    size_t whole = n / 64;
    if (whole) {
        blocks_ni(s->h, p, whole);
        s->nbytes += whole * 64;
        p += whole * 64, n -= whole * 64;
    }
    weft_sha256_update(s, p, n);
}

#else

int shard_sha256_accelerated(void)
{
    return 0;
}

void shard_sha256_update(weft_sha256_t *s, const void *data, size_t n)
{
    weft_sha256_update(s, data, n);
}

#endif
