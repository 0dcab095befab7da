/* tok_h5.c: the tokenizer carried by a weft-model file (see tok_h5.h). */
#include "model/tok_h5.h"
#include "common/h5util.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_GROUP "/tokenizer"

static int write_bytes(hid_t g, const char *name, const void *buf, size_t n)
{
    hsize_t dims = n;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t d = H5Dcreate2(g, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = d < 0 ? -1
                : n   ? H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                      : 0;
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return st < 0 ? weft_error("cannot write dataset %s/%s", TOK_GROUP, name) : 0;
}

int tok_h5_write(hid_t file, const tok_t *tok)
{
    const void *a, *b;
    size_t na, nb;
    tok_source(tok, &a, &na, &b, &nb);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(file, TOK_GROUP, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) return weft_error("cannot create group %s", TOK_GROUP);
    int rc =
        b ? (write_bytes(g, "vocab.json", a, na) < 0 || write_bytes(g, "merges.txt", b, nb) < 0 ? -1
                                                                                                : 0)
          : write_bytes(g, "tokenizer.json", a, na);
    H5Gclose(g);
    if (rc == 0 && (h5_attr_write_str(file, "tokenizer", TOK_KIND_BPE) < 0 ||
                    h5_attr_write_str(file, "tokenizer_sha256", tok_sha256(tok)) < 0))
        rc = -1;
    return rc;
}

static int read_bytes(hid_t file, const char *path, const char *name, uint8_t **buf, size_t *n)
{
    *buf = NULL;
    if (!h5_path_exists(file, path)) return 1;
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return weft_error("%s: cannot open dataset %s", name, path);
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims = 0;
    int rc = 0;
    if (rank != 1 || H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1)
        rc = weft_error("%s: dataset %s is not a 1-D array of bytes (uint8)", name, path);
    else {
        H5Sget_simple_extent_dims(space, &dims, NULL);
        *n = (size_t)dims;
        *buf = malloc(*n ? *n : 1);
        if (!*buf)
            rc = weft_error("out of memory reading %s of %s", path, name);
        else if (*n && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
            rc = weft_error("%s: cannot read dataset %s", name, path);
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(d);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

tok_t *tok_h5_read(hid_t file, const char *name)
{
    char kind[16], sha[80];
    if (h5_attr_read_str(file, "tokenizer", kind, sizeof kind) < 0) {
        weft_error_prefix("%s", name);
        return NULL;
    }
    if (strcmp(kind, TOK_KIND_BPE)) {
        weft_error("%s uses the %s tokenizer and carries no BPE tokenizer", name, kind);
        return NULL;
    }
    if (h5_attr_read_str(file, "tokenizer_sha256", sha, sizeof sha) < 0) {
        weft_error_prefix("%s", name);
        return NULL;
    }
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    tok_t *t = NULL;
    int ra = read_bytes(file, TOK_GROUP "/tokenizer.json", name, &a, &na);
    if (ra == 0) {
        t = tok_from_json(a, na, name);
    } else if (ra == 1) {
        int rv = read_bytes(file, TOK_GROUP "/vocab.json", name, &a, &na);
        int rm = rv < 0 ? rv : read_bytes(file, TOK_GROUP "/merges.txt", name, &b, &nb);
        if (rv == 0 && rm == 0)
            t = tok_from_gpt2(a, na, b, nb, name);
        else if (rv >= 0 && rm >= 0)
            weft_error("%s: tokenizer is \"bpe\" but %s/tokenizer.json (or vocab.json and "
                       "merges.txt) is missing: the file is damaged",
                       name, TOK_GROUP);
    }
    if (t && strcmp(tok_sha256(t), sha)) {
        weft_error("%s: the tokenizer's SHA-256 is %.12s..., the file says %.12s...: the file is "
                   "damaged",
                   name, tok_sha256(t), sha);
        tok_destroy(&t);
    }
    free(a);
    free(b);
    return t;
}

static hid_t open_ro(const char *path)
{
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) weft_error("%s: cannot open the HDF5 file", path);
    return f;
}

tok_t *tok_h5_load(const char *path)
{
    hid_t f = open_ro(path);
    if (f < 0) return NULL;
    tok_t *t = tok_h5_read(f, path);
    H5Fclose(f);
    return t;
}

int tok_h5_info(const char *path, char kind[16], char sha256[65])
{
    hid_t f = open_ro(path);
    if (f < 0) return -1;
    char sha[80] = "";
    int rc = h5_attr_read_str(f, "tokenizer", kind, 16);
    if (rc == 0 && !strcmp(kind, TOK_KIND_BPE))
        rc = h5_attr_read_str(f, "tokenizer_sha256", sha, sizeof sha);
    snprintf(sha256, 65, "%s", sha);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}
