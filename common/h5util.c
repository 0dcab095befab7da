/* h5util.c: HDF5 attribute and dataset helpers (see h5util.h). */
#include "common/h5util.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static int write_attr(hid_t loc, const char *name, hid_t type, const void *value)
{
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, type, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return st < 0 ? weft_error("cannot write HDF5 attribute '%s'", name) : 0;
}

int h5_attr_write_str(hid_t loc, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int rc = write_attr(loc, name, t, value);
    H5Tclose(t);
    return rc;
}

int h5_attr_write_i64(hid_t loc, const char *name, int64_t value)
{
    return write_attr(loc, name, H5T_NATIVE_INT64, &value);
}

int h5_attr_write_f64(hid_t loc, const char *name, double value)
{
    return write_attr(loc, name, H5T_NATIVE_DOUBLE, &value);
}

int h5_attr_exists(hid_t loc, const char *name)
{
    return H5Aexists(loc, name) > 0;
}

static hid_t open_attr(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0) {
        weft_error("missing attribute '%s'", name);
        return -1;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) weft_error("cannot open attribute '%s'", name);
    return a;
}

int h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t bufsize)
{
    hid_t a = open_attr(loc, name);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    hid_t sp = H5Aget_space(a);
    hssize_t npoints = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    int rc = 0;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = weft_error("attribute '%s' is not a string", name);
    } else if (npoints != 1) {
        /* the reads below fill one string: more would run past buf */
        rc = weft_error("attribute '%s' holds %lld strings, not one", name, (long long)npoints);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* h5py writes UTF-8 by default */
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s) {
            rc = weft_error("cannot read attribute '%s'", name);
        } else {
            snprintf(buf, bufsize, "%s", s);
            hid_t space = H5Aget_space(a);
            H5Dvlen_reclaim(mt, space, H5P_DEFAULT, &s);
            H5Sclose(space);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        if (n + 1 > bufsize) {
            rc = weft_error("attribute '%s' is too long (%zu bytes)", name, n);
        } else {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            H5Tset_cset(mt, H5Tget_cset(ft));
            if (H5Aread(a, mt, buf) < 0) rc = weft_error("cannot read attribute '%s'", name);
            H5Tclose(mt);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int read_num(hid_t loc, const char *name, hid_t mt, void *value)
{
    hid_t a = open_attr(loc, name);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(ft);
    hid_t space = H5Aget_space(a);
    int rc = 0;
    if ((c != H5T_INTEGER && c != H5T_FLOAT) || H5Sget_simple_extent_npoints(space) != 1)
        rc = weft_error("attribute '%s' is not a number", name);
    else if (H5Aread(a, mt, value) < 0)
        rc = weft_error("cannot read attribute '%s'", name);
    H5Sclose(space);
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int h5_attr_read_i64(hid_t loc, const char *name, int64_t *value)
{
    return read_num(loc, name, H5T_NATIVE_INT64, value);
}

int h5_attr_read_f64(hid_t loc, const char *name, double *value)
{
    return read_num(loc, name, H5T_NATIVE_DOUBLE, value);
}

int h5_path_exists(hid_t file, const char *path)
{
    char part[1024];
    size_t n = strlen(path);
    if (n >= sizeof part) return 0;
    /* H5Lexists fails rather than answering 0 when an inner group is missing:
     * walk the path one component at a time. */
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        memcpy(part, path, i);
        part[i] = 0;
        if (H5Lexists(file, part, H5P_DEFAULT) <= 0) return 0;
    }
    return 1;
}

int h5_make_parents(hid_t file, const char *path)
{
    char part[1024];
    size_t n = strlen(path);
    if (n >= sizeof part) return weft_error("HDF5 path too long: %s", path);
    for (size_t i = 1; i < n; i++) {
        if (path[i] != '/') continue;
        memcpy(part, path, i);
        part[i] = 0;
        if (H5Lexists(file, part, H5P_DEFAULT) > 0) continue;
        hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_obj_track_times(gcpl, 0);
        hid_t g = H5Gcreate2(file, part, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        H5Pclose(gcpl);
        if (g < 0) return weft_error("cannot create HDF5 group %s", part);
        H5Gclose(g);
    }
    return 0;
}

int h5_dataset_shape(hid_t file, const char *path, int *rank, hsize_t dims[8])
{
    if (!h5_path_exists(file, path)) return weft_error("missing dataset %s", path);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return weft_error("cannot open dataset %s", path);
    hid_t s = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(s);
    int rc = 0;
    if (r < 0 || r > 8)
        rc = weft_error("dataset %s has an unsupported rank", path);
    else {
        H5Sget_simple_extent_dims(s, dims, NULL);
        *rank = r;
    }
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

int h5_write_f32(hid_t file, const char *path, int rank, const hsize_t *dims, const float *data)
{
    if (h5_make_parents(file, path) < 0) return -1;
    hid_t s = H5Screate_simple(rank, dims, NULL);
    /* No modification times: the same values give the same file bytes. */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t d = H5Dcreate2(file, path, H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    herr_t st = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    return st < 0 ? weft_error("cannot write dataset %s", path) : 0;
}

int h5_read_f32(hid_t file, const char *path, int rank, const hsize_t *dims, float *data)
{
    int r;
    hsize_t got[8];
    if (h5_dataset_shape(file, path, &r, got) < 0) return -1;
    int same = r == rank;
    for (int i = 0; same && i < rank; i++) same = got[i] == dims[i];
    if (!same) {
        char want[128] = "", have[128] = "";
        for (int i = 0; i < rank; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", i ? "," : "",
                     (unsigned long long)dims[i]);
        for (int i = 0; i < r; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", i ? "," : "",
                     (unsigned long long)got[i]);
        return weft_error("dataset %s has shape [%s], expected [%s]", path, have, want);
    }
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    return st < 0 ? weft_error("cannot read dataset %s (corrupt or truncated?)", path) : 0;
}

int h5_check_f32le(hid_t file, const char *path)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return weft_error("cannot open dataset %s", path);
    hid_t t = H5Dget_type(d);
    H5Dclose(d);
    if (t < 0) return weft_error("cannot read the type of dataset %s", path);
    int ok = H5Tequal(t, H5T_IEEE_F32LE) > 0;
    H5T_class_t cls = H5Tget_class(t);
    size_t bits = 8 * H5Tget_size(t);
    int big = H5Tget_order(t) == H5T_ORDER_BE;
    int is_unsigned = cls == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE;
    H5Tclose(t);
    if (ok) return 0;
    char what[64];
    if (cls == H5T_INTEGER || cls == H5T_FLOAT)
        snprintf(what, sizeof what, "%s%s%zu", big ? "big-endian " : "",
                 cls == H5T_FLOAT ? "float" : is_unsigned ? "uint" : "int", bits);
    else
        snprintf(what, sizeof what, "not a number type (HDF5 class %d)", (int)cls);
    return weft_error("dataset %s is stored as %s; weft reads only little-endian float32 "
                      "(H5T_IEEE_F32LE): convert it, e.g. in h5py with .astype('<f4')",
                      path, what);
}

hid_t h5_mem_create(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    hid_t f = -1;
    if (H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0)
        f = H5Fcreate("weft-mem.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) weft_error("cannot create an HDF5 file in memory");
    return f;
}

int h5_mem_save(hid_t f, const char *path)
{
    if (H5Fflush(f, H5F_SCOPE_LOCAL) < 0) {
        H5Fclose(f);
        return weft_error("%s: cannot finish the HDF5 image", path);
    }
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    void *img = n > 0 ? malloc((size_t)n) : NULL;
    if (!img || H5Fget_file_image(f, img, (size_t)n) != n) {
        free(img);
        H5Fclose(f);
        return weft_error("%s: cannot take the HDF5 image (%zd bytes)", path, n);
    }
    H5Fclose(f);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    for (size_t off = 0; rc == 0 && off < (size_t)n;) {
        ssize_t w = write(fd, (const char *)img + off, (size_t)n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = -1;
        else off += (size_t)w;
    }
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -1, e = errno;
    free(img);
    if (rc < 0) {
        unlink(path);
        return weft_error("cannot write %s: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}
