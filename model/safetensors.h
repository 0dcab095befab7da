/* safetensors.h: Hugging Face's safetensors format (docs/FORMATS-hf.md):
 * the header parser with every check the reference implementation makes,
 * a read-only mmap'ed file whose float tensors are widened to float32, a
 * checkpoint of one file or of shards named by model.safetensors.index.json,
 * and a streaming writer (F32 or BF16, {"format": "pt"}, 8-byte padding). */
#ifndef WEFT_SAFETENSORS_H
#define WEFT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* The reference's limit on the JSON header. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_RANK   8

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_NDTYPES
} st_dtype_t;

const char *st_dtype_name(st_dtype_t d);
size_t st_dtype_size(st_dtype_t d);

typedef struct {
    char *name;
    st_dtype_t dtype;
    int ndim;
    uint64_t shape[ST_MAX_RANK];
    uint64_t numel;
    uint64_t begin, end; /* byte offsets into the data area */
} st_tensor_t;

typedef struct {
    st_tensor_t *tensors; /* in file order (ascending offsets) */
    size_t n;
    char **meta_keys, **meta_values; /* __metadata__ */
    size_t nmeta;
} st_header_t;

/* Parses a header of len bytes (not NUL-terminated) describing a data area
 * of data_len bytes: JSON object, names unique, dtypes known, shapes and
 * offsets whole numbers, size = numel x dtype size, offsets contiguous from
 * 0 without gap or overlap, ending exactly at data_len. -1 with weft_error
 * naming the tensor and the rule broken. */
int st_header_parse(const char *json, size_t len, uint64_t data_len, st_header_t *h);
void st_header_free(st_header_t *h);
/* The metadata value for key, or NULL. */
const char *st_header_meta(const st_header_t *h, const char *key);

/* ---- one file, mapped read-only ---- */
typedef struct st_file st_file_t;

st_file_t *st_file_open(const char *path);
void st_file_close(st_file_t **self_p);
const st_header_t *st_file_header(const st_file_t *self);
const char *st_file_path(const st_file_t *self);
const st_tensor_t *st_file_find(const st_file_t *self, const char *name);
/* Raw bytes of tensor t (inside the mapping). */
const void *st_file_data(const st_file_t *self, const st_tensor_t *t);
/* Widens (F16, BF16: exactly; F64: rounded to nearest) into out (numel
 * floats), then lets the kernel drop the tensor's pages from this process.
 * Other dtypes, and NaN or infinite values, are refused by name. */
int st_file_read_f32(st_file_t *self, const st_tensor_t *t, float *out);

/* Exact conversions (round-to-nearest-even for the narrowing one). */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

/* ---- a checkpoint: model.safetensors or a sharded index ---- */
typedef struct st_checkpoint st_checkpoint_t;

/* Opens dir/model.safetensors, or the shards dir/model.safetensors.index.json
 * names in weight_map (each file mapped once; every listed tensor must be in
 * the shard that lists it, and every tensor of a shard listed there). */
st_checkpoint_t *st_checkpoint_open(const char *dir);
void st_checkpoint_close(st_checkpoint_t **self_p);
size_t st_checkpoint_count(const st_checkpoint_t *self);
/* Tensor i (0 <= i < count) and the file holding it. */
const st_tensor_t *st_checkpoint_tensor(const st_checkpoint_t *self, size_t i, st_file_t **file);
const st_tensor_t *st_checkpoint_find(const st_checkpoint_t *self, const char *name,
                                      st_file_t **file);
/* Bytes of tensor data over every shard. */
uint64_t st_checkpoint_bytes(const st_checkpoint_t *self);

/* ---- writer ---- */
typedef struct st_writer st_writer_t;

typedef struct {
    const char *name;
    int ndim;
    uint64_t shape[ST_MAX_RANK];
} st_spec_t;

/* Creates path.tmp and writes the header for n tensors of dtype (ST_F32 or
 * ST_BF16), in the order given, with {"format": "pt"} metadata. */
st_writer_t *st_writer_new(const char *path, const st_spec_t *specs, size_t n, st_dtype_t dtype);
/* Appends the next tensor's values (its numel floats, converted). */
int st_writer_put(st_writer_t *self, const float *data);
/* Checks every tensor was written, fsyncs and renames into place; on any
 * earlier error (or abandon) removes path.tmp. */
int st_writer_finish(st_writer_t **self_p);
void st_writer_abandon(st_writer_t **self_p);

#endif
