/* safetensors.c: the safetensors header parser, mapped reader, sharded
 * checkpoint and streaming writer (see safetensors.h). Checks follow the
 * reference implementation (huggingface/safetensors, lib.rs/tensor.rs). */
#include "model/safetensors.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_NDTYPES] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},         [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},         [ST_I64] = {"I64", 8},         [ST_U64] = {"U64", 8},
};

const char *st_dtype_name(st_dtype_t d)
{
    return d < ST_NDTYPES ? dtypes[d].name : "?";
}
size_t st_dtype_size(st_dtype_t d)
{
    return d < ST_NDTYPES ? dtypes[d].size : 0;
}

/* ---- conversions ---- */

float st_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f)
        u = sign | 0x7f800000u | (man << 13); /* inf, NaN */
    else if (exp)
        u = sign | ((exp + 112) << 23) | (man << 13);
    else if (!man)
        u = sign;
    else { /* subnormal: normalise (exactly representable in float32) */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

/* ---- header ---- */

void st_header_free(st_header_t *h)
{
    for (size_t i = 0; i < h->n; i++) free(h->tensors[i].name);
    for (size_t i = 0; i < h->nmeta; i++) {
        free(h->meta_keys[i]);
        free(h->meta_values[i]);
    }
    free(h->tensors);
    free(h->meta_keys);
    free(h->meta_values);
    memset(h, 0, sizeof *h);
}

const char *st_header_meta(const st_header_t *h, const char *key)
{
    for (size_t i = 0; i < h->nmeta; i++)
        if (!strcmp(h->meta_keys[i], key)) return h->meta_values[i];
    return NULL;
}

static int whole(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_tensor(const char *name, const json_t *info, st_tensor_t *t)
{
    if (!json_is_object(info))
        return weft_error("header: tensor '%s' is not an object {dtype, shape, data_offsets}",
                          name);
    const json_t *dt = json_object_get(info, "dtype"), *shape = json_object_get(info, "shape"),
                 *off = json_object_get(info, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(off))
        return weft_error("header: tensor '%s' lacks dtype, shape or data_offsets", name);
    t->dtype = ST_NDTYPES;
    for (int d = 0; d < ST_NDTYPES; d++)
        if (!strcmp(json_string_value(dt), dtypes[d].name)) t->dtype = (st_dtype_t)d;
    if (t->dtype == ST_NDTYPES)
        return weft_error("header: tensor '%s' has unknown dtype '%s'", name,
                          json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_RANK)
        return weft_error("header: tensor '%s' has rank %zu (at most %d)", name, nd, ST_MAX_RANK);
    t->ndim = (int)nd;
    t->numel = 1;
    for (size_t i = 0; i < nd; i++) {
        if (whole(json_array_get(shape, i), &t->shape[i]) < 0)
            return weft_error("header: tensor '%s': shape entry %zu is not a whole number", name,
                              i);
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel))
            return weft_error("header: tensor '%s': shape overflows", name);
    }
    if (json_array_size(off) != 2 || whole(json_array_get(off, 0), &t->begin) < 0 ||
        whole(json_array_get(off, 1), &t->end) < 0)
        return weft_error("header: tensor '%s': data_offsets must be [begin, end], whole numbers",
                          name);
    if (t->end < t->begin)
        return weft_error("header: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                          name, (unsigned long long)t->begin, (unsigned long long)t->end);
    uint64_t bytes;
    if (__builtin_mul_overflow(t->numel, (uint64_t)dtypes[t->dtype].size, &bytes) ||
        bytes != t->end - t->begin)
        return weft_error("header: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but "
                          "%llu elements of %s need %llu",
                          name, (unsigned long long)t->begin, (unsigned long long)t->end,
                          (unsigned long long)(t->end - t->begin), (unsigned long long)t->numel,
                          dtypes[t->dtype].name,
                          (unsigned long long)(t->numel * dtypes[t->dtype].size));
    if (!(t->name = strdup(name))) return weft_error("out of memory");
    return 0;
}

static int parse_meta(const json_t *meta, st_header_t *h)
{
    if (json_is_null(meta)) return 0;
    if (!json_is_object(meta))
        return weft_error("header: __metadata__ must be an object of strings");
    size_t n = json_object_size(meta);
    h->meta_keys = calloc(n ? n : 1, sizeof *h->meta_keys);
    h->meta_values = calloc(n ? n : 1, sizeof *h->meta_values);
    if (!h->meta_keys || !h->meta_values) return weft_error("out of memory");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)meta, k, v)
    {
        if (!json_is_string(v))
            return weft_error("header: __metadata__ value of '%s' is not a string", k);
        h->meta_keys[h->nmeta] = strdup(k);
        h->meta_values[h->nmeta] = strdup(json_string_value(v));
        h->nmeta++;
        if (!h->meta_keys[h->nmeta - 1] || !h->meta_values[h->nmeta - 1])
            return weft_error("out of memory");
    }
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const st_tensor_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

int st_header_parse(const char *text, size_t len, uint64_t data_len, st_header_t *h)
{
    memset(h, 0, sizeof *h);
    if (len > ST_MAX_HEADER)
        return weft_error("header of %zu bytes is over the %u-byte limit", len, ST_MAX_HEADER);
    if (len == 0 || text[0] != '{')
        return weft_error("header does not start with '{' (not a safetensors file?)");
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return weft_error("header is not valid JSON (%s at byte %d)", err.text, err.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = weft_error("header is not a JSON object");
        goto out;
    }
    size_t n = json_object_size(root);
    h->tensors = calloc(n ? n : 1, sizeof *h->tensors);
    if (!h->tensors) {
        rc = weft_error("out of memory");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (!strcmp(k, "__metadata__")) {
            if ((rc = parse_meta(v, h)) < 0) goto out;
            continue;
        }
        if ((rc = parse_tensor(k, v, &h->tensors[h->n])) < 0) goto out;
        h->n++;
    }
    /* Contiguous from 0, no gap, no overlap, ending at the end of the data. */
    qsort(h->tensors, h->n, sizeof *h->tensors, by_offset);
    uint64_t at = 0;
    for (size_t i = 0; i < h->n; i++) {
        const st_tensor_t *t = &h->tensors[i];
        if (t->begin != at) {
            rc = weft_error("header: tensor '%s' begins at byte %llu of the data but the tensors "
                            "before it end at %llu (%s)",
                            t->name, (unsigned long long)t->begin, (unsigned long long)at,
                            t->begin < at ? "overlapping offsets" : "a gap");
            goto out;
        }
        at = t->end;
    }
    if (at != data_len)
        rc = weft_error("header describes %llu bytes of tensor data but the file holds %llu (%s)",
                        (unsigned long long)at, (unsigned long long)data_len,
                        at > data_len ? "truncated" : "trailing bytes");
out:
    json_decref(root);
    if (rc < 0) st_header_free(h);
    return rc;
}

/* ---- one mapped file ---- */

struct st_file {
    char *path;
    unsigned char *map;
    size_t size;
    uint64_t data_start;
    st_header_t h;
};

st_file_t *st_file_open(const char *path)
{
    st_file_t *self = calloc(1, sizeof *self);
    int fd = -1;
    if (!self || !(self->path = strdup(path))) {
        weft_error("out of memory");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        weft_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        weft_error("%s: not a regular file", path);
        goto fail;
    }
    self->size = (size_t)st.st_size;
    if (self->size < 8) {
        weft_error("%s: truncated: %zu bytes, shorter than the 8-byte header length", path,
                   self->size);
        goto fail;
    }
    self->map = mmap(NULL, self->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (self->map == MAP_FAILED) {
        self->map = NULL;
        weft_error("%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | self->map[i];
    if (hlen > ST_MAX_HEADER) {
        weft_error("%s: header length %llu is over the %u-byte limit (not a safetensors file?)",
                   path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > self->size - 8) {
        weft_error("%s: truncated: the header says %llu bytes but the file has %zu after the "
                   "length",
                   path, (unsigned long long)hlen, self->size - 8);
        goto fail;
    }
    self->data_start = 8 + hlen;
    if (st_header_parse((const char *)self->map + 8, hlen, self->size - self->data_start,
                        &self->h) < 0) {
        weft_error_prefix("%s", path);
        goto fail;
    }
    madvise(self->map, self->size, MADV_SEQUENTIAL);
    return self;
fail:
    if (fd >= 0) close(fd);
    st_file_close(&self);
    return NULL;
}

void st_file_close(st_file_t **self_p)
{
    st_file_t *self = *self_p;
    if (!self) return;
    if (self->map) munmap(self->map, self->size);
    st_header_free(&self->h);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const st_header_t *st_file_header(const st_file_t *self)
{
    return &self->h;
}
const char *st_file_path(const st_file_t *self)
{
    return self->path;
}

const st_tensor_t *st_file_find(const st_file_t *self, const char *name)
{
    for (size_t i = 0; i < self->h.n; i++)
        if (!strcmp(self->h.tensors[i].name, name)) return &self->h.tensors[i];
    return NULL;
}

const void *st_file_data(const st_file_t *self, const st_tensor_t *t)
{
    return self->map + self->data_start + t->begin;
}

/* Widening loops that also OR together "this value is NaN or infinite", so
 * the check costs no second pass (they vectorise). */
static uint32_t widen_bf16(const unsigned char *p, float *out, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        uint32_t u = (uint32_t)v << 16;
        memcpy(&out[i], &u, 4);
        bad |= (uint32_t)((v & 0x7f80u) == 0x7f80u);
    }
    return bad;
}

static uint32_t copy_f32(const unsigned char *p, float *out, size_t n)
{
    memcpy(out, p, n * 4);
    const uint32_t *u = (const uint32_t *)(const void *)out;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
    return bad;
}

int st_file_read_f32(st_file_t *self, const st_tensor_t *t, float *out)
{
    const unsigned char *p = st_file_data(self, t);
    size_t n = (size_t)t->numel;
    uint32_t bad = 0;
    switch (t->dtype) {
    case ST_F32:
        bad = copy_f32(p, out, n);
        break;
    case ST_BF16:
        bad = widen_bf16(p, out, n);
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            out[i] = st_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
            bad |= !isfinite(out[i]);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
            bad |= !isfinite(out[i]);
        }
        break;
    default:
        return weft_error("%s: tensor '%s' is %s; weft reads F32, F16, BF16 and F64", self->path,
                          t->name, dtypes[t->dtype].name);
    }
    /* Done with these pages: let them leave this process's resident set. */
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t b = (uintptr_t)p + (t->end - t->begin);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    if (bad) {
        size_t i = 0;
        while (i < n && isfinite(out[i])) i++;
        return weft_error("%s: tensor '%s' holds a non-finite value (%g at index %zu)", self->path,
                          t->name, (double)out[i], i);
    }
    return 0;
}

/* ---- checkpoint ---- */

struct st_checkpoint {
    st_file_t **files;
    size_t nfiles;
    size_t count;
};

void st_checkpoint_close(st_checkpoint_t **self_p)
{
    st_checkpoint_t *self = *self_p;
    if (!self) return;
    for (size_t i = 0; i < self->nfiles; i++) st_file_close(&self->files[i]);
    free(self->files);
    free(self);
    *self_p = NULL;
}

static int add_file(st_checkpoint_t *self, const char *path)
{
    st_file_t **f = realloc(self->files, (self->nfiles + 1) * sizeof *f);
    if (!f) return weft_error("out of memory");
    self->files = f;
    if (!(f[self->nfiles] = st_file_open(path))) return -1;
    self->count += st_file_header(f[self->nfiles])->n;
    self->nfiles++;
    return 0;
}

static int open_index(st_checkpoint_t *self, const char *dir, const char *index)
{
    json_error_t err;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &err);
    if (!root) return weft_error("%s:%d: not valid JSON (%s)", index, err.line, err.text);
    int rc = 0;
    json_t *map = json_object_get(root, "weight_map");
    const char *name;
    json_t *v;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        rc = weft_error("%s: no weight_map object naming each tensor's file", index);
        goto out;
    }
    /* Open each shard once, in the order weight_map first names it. */
    json_object_foreach(map, name, v)
    {
        const char *file = json_string_value(v);
        if (!file || !*file || strchr(file, '/') || file[0] == '.') {
            rc = weft_error("%s: weight_map entry '%s' is not a file name in this folder", index,
                            name);
            goto out;
        }
        size_t i = 0;
        while (i < self->nfiles && strcmp(strrchr(st_file_path(self->files[i]), '/') + 1, file))
            i++;
        if (i < self->nfiles) continue;
        char path[4096];
        if (weft_path_join(path, sizeof path, dir, file) < 0 || (rc = add_file(self, path)) < 0) {
            rc = -1;
            goto out;
        }
    }
    /* Every tensor listed is in its shard; every shard tensor is listed there. */
    json_object_foreach(map, name, v)
    {
        const char *file = json_string_value(v);
        for (size_t i = 0; i < self->nfiles; i++)
            if (!strcmp(strrchr(st_file_path(self->files[i]), '/') + 1, file) &&
                !st_file_find(self->files[i], name)) {
                rc = weft_error("%s: weight_map puts '%s' in %s, which does not hold it", index,
                                name, file);
                goto out;
            }
    }
    for (size_t i = 0; i < self->nfiles; i++) {
        const st_header_t *h = st_file_header(self->files[i]);
        const char *file = strrchr(st_file_path(self->files[i]), '/') + 1;
        for (size_t j = 0; j < h->n; j++) {
            const char *want = json_string_value(json_object_get(map, h->tensors[j].name));
            if (!want || strcmp(want, file)) {
                rc = weft_error("%s: tensor '%s' of %s is %s", index, h->tensors[j].name, file,
                                want ? "listed under another shard (a duplicate)"
                                     : "missing from weight_map");
                goto out;
            }
        }
    }
out:
    json_decref(root);
    return rc;
}

st_checkpoint_t *st_checkpoint_open(const char *dir)
{
    st_checkpoint_t *self = calloc(1, sizeof *self);
    if (!self) {
        weft_error("out of memory");
        return NULL;
    }
    char single[4096], index[4096];
    if (weft_path_join(single, sizeof single, dir, "model.safetensors") < 0 ||
        weft_path_join(index, sizeof index, dir, "model.safetensors.index.json") < 0)
        goto fail;
    if (access(single, F_OK) == 0) {
        if (add_file(self, single) < 0) goto fail;
    } else if (access(index, F_OK) == 0) {
        if (open_index(self, dir, index) < 0) goto fail;
    } else {
        weft_error("%s: no model.safetensors or model.safetensors.index.json (weft reads "
                   "safetensors checkpoints; convert .bin files with transformers first)",
                   dir);
        goto fail;
    }
    return self;
fail:
    st_checkpoint_close(&self);
    return NULL;
}

size_t st_checkpoint_count(const st_checkpoint_t *self)
{
    return self->count;
}

const st_tensor_t *st_checkpoint_tensor(const st_checkpoint_t *self, size_t i, st_file_t **file)
{
    for (size_t f = 0; f < self->nfiles; f++) {
        const st_header_t *h = st_file_header(self->files[f]);
        if (i < h->n) {
            if (file) *file = self->files[f];
            return &h->tensors[i];
        }
        i -= h->n;
    }
    return NULL;
}

const st_tensor_t *st_checkpoint_find(const st_checkpoint_t *self, const char *name,
                                      st_file_t **file)
{
    for (size_t f = 0; f < self->nfiles; f++) {
        const st_tensor_t *t = st_file_find(self->files[f], name);
        if (t) {
            if (file) *file = self->files[f];
            return t;
        }
    }
    return NULL;
}

uint64_t st_checkpoint_bytes(const st_checkpoint_t *self)
{
    uint64_t n = 0;
    for (size_t f = 0; f < self->nfiles; f++) {
        const st_header_t *h = st_file_header(self->files[f]);
        if (h->n) n += h->tensors[h->n - 1].end;
    }
    return n;
}

/* ---- writer ---- */

struct st_writer {
    char path[4096], tmp[4104];
    int fd;
    st_dtype_t dtype;
    uint64_t *numel;
    size_t n, next;
    uint16_t *buf; /* BF16 conversion buffer */
};

#define ST_CHUNK (1u << 20)

static int write_all(st_writer_t *w, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return weft_error("%s: cannot write: %s", w->tmp, strerror(errno));
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

void st_writer_abandon(st_writer_t **self_p)
{
    st_writer_t *w = *self_p;
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    free(w->numel);
    free(w->buf);
    free(w);
    *self_p = NULL;
}

st_writer_t *st_writer_new(const char *path, const st_spec_t *specs, size_t n, st_dtype_t dtype)
{
    if (dtype != ST_F32 && dtype != ST_BF16) {
        weft_error("safetensors writer: dtype %s (F32 or BF16)", st_dtype_name(dtype));
        return NULL;
    }
    st_writer_t *w = calloc(1, sizeof *w);
    json_t *root = json_object();
    char *text = NULL;
    if (!w || !root || !(w->numel = calloc(n ? n : 1, sizeof *w->numel))) {
        weft_error("out of memory");
        goto fail;
    }
    w->fd = -1;
    w->dtype = dtype;
    w->n = n;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t at = 0, esize = st_dtype_size(dtype);
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < specs[i].ndim; d++) {
            json_array_append_new(shape, json_integer((json_int_t)specs[i].shape[d]));
            numel *= specs[i].shape[d];
        }
        w->numel[i] = numel;
        json_object_set_new(root, specs[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(dtype), "shape",
                                      shape, "data_offsets", (json_int_t)at,
                                      (json_int_t)(at + numel * esize)));
        at += numel * esize;
    }
    if (!(text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        weft_error("out of memory");
        goto fail;
    }
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    if (padded > ST_MAX_HEADER) {
        weft_error("%s: the header would be %zu bytes, over the format's limit", path, padded);
        goto fail;
    }
    if (dtype == ST_BF16 && !(w->buf = malloc(ST_CHUNK * sizeof *w->buf))) {
        weft_error("out of memory");
        goto fail;
    }
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        weft_error("%s: cannot create: %s", w->tmp, strerror(errno));
        goto fail;
    }
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (write_all(w, le, 8) < 0 || write_all(w, text, len) < 0 ||
        write_all(w, "        ", padded - len) < 0)
        goto fail;
    free(text);
    json_decref(root);
    return w;
fail:
    free(text);
    json_decref(root);
    st_writer_abandon(&w);
    return NULL;
}

int st_writer_put(st_writer_t *w, const float *data)
{
    if (w->next >= w->n) return weft_error("%s: more tensors than the header lists", w->tmp);
    size_t n = (size_t)w->numel[w->next++];
    if (w->dtype == ST_F32) return write_all(w, data, n * sizeof *data);
    for (size_t i = 0; i < n; i += ST_CHUNK) {
        size_t k = n - i < ST_CHUNK ? n - i : ST_CHUNK;
        for (size_t j = 0; j < k; j++) w->buf[j] = st_f32_to_bf16(data[i + j]);
        if (write_all(w, w->buf, k * sizeof *w->buf) < 0) return -1;
    }
    return 0;
}

int st_writer_finish(st_writer_t **self_p)
{
    st_writer_t *w = *self_p;
    int rc = 0;
    if (w->next != w->n) rc = weft_error("%s: %zu of %zu tensors written", w->tmp, w->next, w->n);
    if (rc == 0 && fsync(w->fd) < 0) rc = weft_error("%s: fsync: %s", w->tmp, strerror(errno));
    if (close(w->fd) < 0 && rc == 0) rc = weft_error("%s: close: %s", w->tmp, strerror(errno));
    w->fd = -1;
    if (rc == 0 && weft_rename_durable(w->tmp, w->path) < 0) rc = -1;
    if (rc < 0) unlink(w->tmp);
    w->fd = -1;
    st_writer_abandon(self_p);
    return rc;
}
