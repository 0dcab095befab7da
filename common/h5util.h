/* h5util.h: small HDF5 helpers shared by the model, adapter, shard and
 * checkpoint files: scalar attributes, quiet error stacks, dataset shapes.
 * All return 0 on success and -1 with weft_error() set on failure. */
#ifndef WEFT_H5UTIL_H
#define WEFT_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

/* Turns off HDF5's automatic error-stack printing (call once per program);
 * weft reports its own one-line errors instead. */
void h5_quiet(void);

/* A file built in memory (the core driver, no backing store) and written
 * out whole by h5_mem_save with plain write() calls: a full disk is then an
 * error of ours with its errno, never a failed close inside HDF5 (whose
 * half-closed file HDF5 1.10 trips over when the library shuts down).
 * h5_mem_save closes f either way; -1 with weft_error naming path. */
hid_t h5_mem_create(void);
int h5_mem_save(hid_t f, const char *path);

int h5_attr_write_str(hid_t loc, const char *name, const char *value);
int h5_attr_write_i64(hid_t loc, const char *name, int64_t value);
int h5_attr_write_f64(hid_t loc, const char *name, double value);
/* Reads a string attribute (fixed or variable length) into buf (NUL-terminated). */
int h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t bufsize);
int h5_attr_read_i64(hid_t loc, const char *name, int64_t *value);
int h5_attr_read_f64(hid_t loc, const char *name, double *value);
int h5_attr_exists(hid_t loc, const char *name);

/* Rank and dimensions of a dataset at path (dims has room for 8). */
int h5_dataset_shape(hid_t file, const char *path, int *rank, hsize_t dims[8]);
/* 1 if a link (group or dataset) exists at a '/'-separated path, else 0. */
int h5_path_exists(hid_t file, const char *path);
/* Creates every missing group on the way to path's parent (no times). */
int h5_make_parents(hid_t file, const char *path);

/* Writes/reads a whole float32 dataset of the given shape (written without
 * modification times, so equal values give equal file bytes). The read checks
 * the stored shape equals the expected one and names the dataset if not. */
int h5_write_f32(hid_t file, const char *path, int rank, const hsize_t *dims, const float *data);
int h5_read_f32(hid_t file, const char *path, int rank, const hsize_t *dims, float *data);
/* 0 if the dataset at path is stored as H5T_IEEE_F32LE; else -1 with its
 * stored type named ("int32", "float64", "big-endian float32"). */
int h5_check_f32le(hid_t file, const char *path);

#endif
