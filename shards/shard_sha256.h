/* shard_sha256.h: SHA-256 updates for hashing whole corpora: the same
 * weft_sha256_t state and digests as common/sha256.h, but whole 64-byte
 * blocks go through the x86 SHA extensions when the CPU has them. */
#ifndef WEFT_SHARD_SHA256_H
#define WEFT_SHARD_SHA256_H

#include "common/sha256.h"

#include <stddef.h>

/* Same result as weft_sha256_update(s, data, n); finish with
 * weft_sha256_final. */
void shard_sha256_update(weft_sha256_t *s, const void *data, size_t n);

/* 1 when the SHA extensions are in use on this CPU. */
int shard_sha256_accelerated(void);

#endif
