/* spec_lex.c: checks of a spec's raw text before libconfig reads it: UTF-8,
 * and integer literals that libconfig 1.5 wraps (atoi/strtoul into an int,
 * atoll saturating), found by a scanner that skips strings and comments the
 * way libconfig's does, then matched to the settings that hold them. */
#include "jobs/spec_lex.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int spec_lex_utf8(const char *text, size_t len, int *column, unsigned char *byte)
{
    const unsigned char *s = (const unsigned char *)text;
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n;
        unsigned min, cp;
        if (c < 0x80) {
            if (c == '\n') line++, line_start = i + 1;
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, min = 0x10000, cp = c & 0x07;
        } else {
            goto bad;
        }
        if (i + n > len) goto bad;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += n;
        continue;
    bad:
        if (column) *column = (int)(i - line_start) + 1;
        if (byte) *byte = s[i];
        return line;
    }
    return 0;
}

static int wides_add(spec_wides_t *w, int line, int64_t value, bool past64, const char *text,
                     size_t n)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 8;
        spec_wide_t *v = realloc(w->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        w->v = v, w->cap = cap;
    }
    spec_wide_t *e = &w->v[w->n++];
    *e = (spec_wide_t){.line = line, .value = value, .past64 = past64};
    snprintf(e->text, sizeof e->text, "%.*s", (int)(n < sizeof e->text ? n : sizeof e->text - 1),
             text);
    return 0;
}

static bool name_char(int c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '*';
}

/* Classifies the number token t[0..n): returns 1 and sets *v (true value,
 * saturated) for an integer literal outside what libconfig reads as written,
 * with *add_l when an L suffix makes libconfig read *v; else 0. */
static int wide_literal(const char *t, size_t n, int64_t *v, bool *past64, bool *add_l)
{
    size_t nl = 0;
    while (nl < 2 && nl < n && t[n - 1 - nl] == 'L') nl++;
    size_t body = n - nl;
    char digits[64];
    if (body == 0 || body >= sizeof digits) {
        if (body < sizeof digits) return 0;
        /* a very long literal: only digits can make it one */
        for (size_t k = (t[0] == '-' || t[0] == '+'); k < body; k++)
            if (!isdigit((unsigned char)t[k])) return 0;
        *v = t[0] == '-' ? INT64_MIN : INT64_MAX;
        *past64 = true, *add_l = true;
        return 1;
    }
    memcpy(digits, t, body);
    digits[body] = 0;
    if (body > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        for (size_t k = 2; k < body; k++)
            if (!isxdigit((unsigned char)digits[k])) return 0;
        errno = 0;
        unsigned long long u = strtoull(digits + 2, NULL, 16);
        if (errno == ERANGE || u > (unsigned long long)INT64_MAX) {
            *v = INT64_MAX, *past64 = true, *add_l = false;
            return 1;
        }
        if (nl || u <= INT32_MAX) return 0;
        *v = (int64_t)u, *past64 = false, *add_l = true;
        return 1;
    }
    size_t k = digits[0] == '-' || digits[0] == '+';
    if (k == body) return 0;
    for (; k < body; k++)
        if (!isdigit((unsigned char)digits[k])) return 0;
    errno = 0;
    long long x = strtoll(digits, NULL, 10);
    if (errno == ERANGE) {
        *v = x, *past64 = true, *add_l = nl == 0;
        return 1;
    }
    if (nl || (x >= INT32_MIN && x <= INT32_MAX)) return 0;
    *v = x, *past64 = false, *add_l = true;
    return 1;
}

char *spec_lex_widen(const char *src, spec_wides_t *wides)
{
    size_t len = strlen(src);
    /* at most one L per two bytes of input */
    char *out = malloc(len + len / 2 + 2);
    if (!out) return NULL;
    size_t o = 0;
    int line = 1;
    for (size_t i = 0; i < len;) {
        char c = src[i];
        size_t start = i;
        if (c == '#' || (c == '/' && src[i + 1] == '/')) {
            while (i < len && src[i] != '\n') i++;
        } else if (c == '/' && src[i + 1] == '*') {
            for (i += 2; i < len && !(src[i] == '*' && src[i + 1] == '/'); i++) line += src[i] == '\n';
            i = i < len ? i + 2 : len;
        } else if (c == '"') {
            for (i++; i < len && src[i] != '"'; i++) {
                if (src[i] == '\\' && i + 1 < len) i++;
                line += src[i] == '\n';
            }
            i = i < len ? i + 1 : len;
        } else if (isalpha((unsigned char)c) || c == '*') {
            while (i < len && name_char((unsigned char)src[i])) i++;
        } else if (isdigit((unsigned char)c) || c == '.' ||
                   ((c == '-' || c == '+') &&
                    (isdigit((unsigned char)src[i + 1]) || src[i + 1] == '.'))) {
            i++;
            while (i < len && (isalnum((unsigned char)src[i]) || src[i] == '.' ||
                               ((src[i] == '-' || src[i] == '+') &&
                                (src[i - 1] == 'e' || src[i - 1] == 'E'))))
                i++;
            memcpy(out + o, src + start, i - start);
            o += i - start;
            int64_t v;
            bool past64, add_l;
            if (wide_literal(src + start, i - start, &v, &past64, &add_l)) {
                if (wides_add(wides, line, v, past64, src + start, i - start)) {
                    free(out);
                    return NULL;
                }
                if (add_l) out[o++] = 'L';
            }
            continue;
        } else {
            line += c == '\n';
            i++;
        }
        memcpy(out + o, src + start, i - start);
        o += i - start;
    }
    out[o] = 0;
    return out;
}

static void match(const config_setting_t *s, int parent_line, char *path, size_t cap,
                  spec_wides_t *w, void (*report)(void *, const spec_wide_t *, const char *),
                  void *arg)
{
    int line = (int)config_setting_source_line(s);
    if (!line) line = parent_line;
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
        int64_t v = config_setting_get_int64(s);
        for (int i = 0; i < w->n; i++)
            if (!w->v[i].found && w->v[i].line == line && w->v[i].value == v) {
                w->v[i].found = true;
                report(arg, &w->v[i], path);
                break;
            }
        return;
    }
    if (type != CONFIG_TYPE_GROUP && type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) return;
    size_t n = strlen(path);
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        if (type == CONFIG_TYPE_GROUP && name)
            snprintf(path + n, cap - n, "%s%s", n ? "." : "", name);
        else
            snprintf(path + n, cap - n, "[%d]", i);
        match(e, line, path, cap, w, report, arg);
        path[n] = 0;
    }
}

void spec_lex_match(const config_setting_t *root, spec_wides_t *wides,
                    void (*report)(void *arg, const spec_wide_t *w, const char *path), void *arg)
{
    char path[512] = "";
    match(root, 0, path, sizeof path, wides, report, arg);
}

void spec_wides_free(spec_wides_t *wides)
{
    free(wides->v);
    *wides = (spec_wides_t){0};
}
