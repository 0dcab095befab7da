/* spec_lex.h: checks of a spec's raw text that libconfig 1.5 cannot make:
 * the text is UTF-8, and no integer literal is silently wrapped (past 32 bits
 * without an L suffix, or past 64 bits with one). Internal to jobs/. */
#ifndef WEFT_SPEC_LEX_H
#define WEFT_SPEC_LEX_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first byte of text that is not UTF-8 (line from 1, column in bytes
 * from 1), or 0 when all of it is. */
int spec_lex_utf8(const char *text, size_t len, int *column, unsigned char *byte);

/* One integer literal that libconfig would read as another value. */
typedef struct {
    int line;
    int64_t value;   /* its true value (saturated when past 64 bits) */
    bool past64;     /* does not fit in 64 bits even with an L suffix */
    bool found;      /* matched to a setting by spec_lex_match */
    char text[40];   /* as written (cut at 39 bytes) */
} spec_wide_t;

typedef struct {
    spec_wide_t *v;
    int n, cap;
} spec_wides_t;

/* A copy of src (NUL-terminated) in which every integer literal past 32 bits
 * without an L suffix has one added, so that libconfig reads its true value;
 * each such literal, and each past 64 bits, is listed in wides. Lines are
 * unchanged. NULL when out of memory. */
char *spec_lex_widen(const char *src, spec_wides_t *wides);

/* Calls report(arg, w, path) for each setting under root that holds a listed
 * literal (path as "train.seed", "tenants[1].lr", "sweep.train.steps[0]"),
 * marking it found. */
void spec_lex_match(const config_setting_t *root, spec_wides_t *wides,
                    void (*report)(void *arg, const spec_wide_t *w, const char *path), void *arg);

void spec_wides_free(spec_wides_t *wides);

#endif
