/* sha256.h: SHA-256 (FIPS 180-4) for content hashes: the backbone's
 * base_sha256, shard sources, checkpoint manifests, data-cache keys. */
#ifndef WEFT_SHA256_H
#define WEFT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} weft_sha256_t;

/* The 64 round constants (FIPS 180-4, 4.2.2), shared with accelerated code. */
extern const uint32_t weft_sha256_k[64];

void weft_sha256_init(weft_sha256_t *s);
void weft_sha256_update(weft_sha256_t *s, const void *data, size_t n);
/* Writes 32 bytes of digest. */
void weft_sha256_final(weft_sha256_t *s, uint8_t out[32]);
/* Lower-case hex of a 32-byte digest, NUL-terminated (65 bytes). */
void weft_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Hash of a whole file's bytes as hex; -1 with weft_error on I/O failure. */
int weft_sha256_file(const char *path, char hex[65]);

#endif
