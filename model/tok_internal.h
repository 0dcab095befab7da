/* tok_internal.h: the tokenizer's insides, shared by tokenizer.c (reading
 * the files, decoding) and bpe.c (encoding). Not for use outside model/. */
#ifndef WEFT_TOK_INTERNAL_H
#define WEFT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/tokenizer.h"

#include <pcre2.h>

#define TOK_MAX_SPLITS 4 /* regex split steps of a pre-tokenizer Sequence */

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    int special;
    int as_text; /* tok_added_as_text: encoded as ordinary text */
} tok_added_t;

/* (left, right) -> (rank, merged id); key (uint64)left << 32 | right. */
typedef struct {
    uint64_t key;
    uint32_t rank;
    int32_t id;
} tok_merge_t;

/* One cached piece: its bytes and ids live in the cache's arenas. */
typedef struct {
    uint64_t hash;
    uint32_t koff, klen, ioff, nid;
} tok_cache_slot_t;

struct tok_t {
    char *name;
    char sha256[65];
    uint8_t *src1, *src2; /* tokenizer.json (src2 NULL), or vocab.json and merges.txt */
    size_t nsrc1, nsrc2;

    int32_t nvocab;   /* highest id + 1 */
    int32_t nmodel;   /* model vocabulary's highest id + 1 */
    char **model_tok; /* model vocabulary: id -> byte-level string (NULL: none) */
    uint32_t *model_len;
    int32_t *vmap; /* string -> id, open addressing over model_tok */
    size_t vmap_cap;
    uint8_t **dec; /* id -> decoded bytes (NULL: no token) */
    uint32_t *dec_len;
    int32_t byte_id[256]; /* id of each byte's single-symbol token */

    tok_merge_t *merges;
    size_t merges_cap;
    int ignore_merges;

    int nfc;
    int nsplit; /* regex split steps, in order */
    pcre2_code *re[TOK_MAX_SPLITS];
    pcre2_match_data *md;
    int add_prefix_space;

    tok_added_t *added;
    int nadded;
    uint8_t added_first[256]; /* 1 where an added token starts with that byte */
    size_t added_maxlen;
    int32_t eot;

    /* tok_pieces: called for each pre-token instead of encoding it */
    int (*piece_fn)(void *arg, const char *piece, size_t n, int32_t added_id);
    void *piece_arg;

    /* encoding scratch and the cache of pieces */
    tok_cache_slot_t *cache;
    size_t cache_cap, cache_n;
    uint8_t *ckeys;
    size_t nckeys, capckeys;
    int32_t *cids;
    size_t ncids, capcids;
    char *norm; /* NFC / UTF-8 repair output */
    size_t normcap;
    int32_t *sym, *prev, *next; /* merge scratch, one per byte of a piece */
    size_t symcap;
    void *heap;
    size_t heapcap;
};

uint64_t tok_hash(const void *p, size_t n);
/* Merge lookup: the entry for (a, b) or NULL. */
const tok_merge_t *tok_merge_find(const tok_t *t, int32_t a, int32_t b);
/* Vocabulary lookup of a byte-level string, or -1. */
int32_t tok_vocab_find(const tok_t *t, const char *s, size_t n);
/* GPT-2's byte-to-unicode table: the code point standing for byte b. */
uint32_t tok_byte_cp(int b);

/* Length of the valid UTF-8 prefix of s (n when all valid). */
size_t tok_utf8_valid(const uint8_t *s, size_t n);
/* Copies s into out replacing each maximal invalid subpart with U+FFFD;
 * out needs 3n bytes. Returns the bytes written. */
size_t tok_utf8_repair(const uint8_t *s, size_t n, uint8_t *out);

/* bpe.c: sets up the regexes of the pre-tokenizer. */
int tok_compile(tok_t *t, const char **patterns, const int *literal, int n);
void tok_encoder_free(tok_t *t);

#endif
