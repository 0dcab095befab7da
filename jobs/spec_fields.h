/* spec_fields.h: the table of train and lora settings (type, range, scope)
 * that the parser, the sweep expander, the writer and the docs agree on.
 * Internal to jobs/; other areas read spec.h. */
#ifndef WEFT_SPEC_FIELDS_H
#define WEFT_SPEC_FIELDS_H

#include "jobs/spec.h"

#include <libconfig.h>

typedef enum {
    F_INT,      /* int, in [lo, hi] */
    F_INT64,    /* int64_t, in [lo, hi] */
    F_FLOAT,    /* double; an integer literal is accepted */
    F_BOOL,     /* true | false */
    F_SCHEDULE, /* "cosine" | "linear" | "constant" */
    F_BETAS,    /* [b1, b2], each in [lo, hi) */
    F_TARGETS,  /* ["attn.c_attn", ...], at least one, no repeats */
    F_ENUM      /* one of the field's names, stored as an int (its index) */
} ftype_t;

enum {
    F_LO_OPEN = 1u << 0, /* value must be > lo (else >= lo) */
    F_HI_OPEN = 1u << 1, /* value must be < hi (else <= hi) */
    F_SHARED = 1u << 2,  /* one value for every tenant of a spec or pack */
};

typedef struct {
    const char *section; /* "train" or "lora" */
    const char *key;
    ftype_t type;
    size_t off; /* into spec_train_t or spec_lora_t */
    double lo, hi;
    unsigned flags;
    const char *const *names; /* F_ENUM: the words, NULL-terminated */
} field_t;

extern const field_t spec_fields[];
extern const int spec_nfields;

/* The field section.key names, or NULL. */
const field_t *field_find(const char *section, const char *key);
/* Sets the field in base (a spec_train_t or spec_lora_t) from a libconfig
 * setting, checking type and range. On error returns -1 with a sentence in
 * why ("must be > 0, got -1"). */
int field_set(const field_t *f, void *base, const config_setting_t *s, char *why, size_t whysize);
/* The field's value in canonical libconfig text. */
void field_format(const field_t *f, const void *base, char *buf, size_t bufsize);
/* Sets the field from canonical text (as stored in a sweep). */
int field_set_text(const field_t *f, void *base, const char *text, char *why, size_t whysize);
/* Pointer to the struct a field lives in. */
void *field_base(const field_t *f, spec_train_t *train, spec_lora_t *lora);
const void *field_cbase(const field_t *f, const spec_train_t *train, const spec_lora_t *lora);

/* Shortest text that reads back as exactly v, always with '.' or 'e'. */
void spec_fmt_double(double v, char *buf, size_t bufsize);
/* Integer text, with libconfig's L suffix outside the 32-bit range. */
void spec_fmt_int64(int64_t v, char *buf, size_t bufsize);

/* Appends one line to a diagnostics list (NULL is allowed and ignored). */
void spec_diag_add(spec_diag_t *self, const char *line);

void spec_train_defaults(spec_train_t *t);
void spec_lora_defaults(spec_lora_t *l);

#endif
