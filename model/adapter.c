/* adapter.c: load and save `weft-adapter` HDF5 files (see adapter.h): root
 * attributes, targets checked against the datasets present, shapes checked
 * against r and n_embd, and the backbone's SHA-256 checked on load. */
#include "model/adapter.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "engine/lora_train.h"
#include "model/modules.h"
#include "model/peft.h"
#include "common/sha256.h"

#include <math.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static int tensor_path(char *buf, size_t size, const char *prefix, int l, int m, const char *name)
{
    int n =
        snprintf(buf, size, "%s/%s/%d/%s/%s", prefix, module_blocks(m), l, module_path(m), name);
    if (n < 0 || (size_t)n >= size) return weft_error("HDF5 path under '%s' too long", prefix);
    return 0;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

static int read_info(hid_t f, adapter_info_t *info)
{
    char format[64], targets[256], hex[80];
    memset(info, 0, sizeof *info);
    if (h5_attr_read_str(f, "format", format, sizeof format) < 0 ||
        strcmp(format, ADAPTER_FORMAT) != 0)
        return weft_error("not a weft-adapter file (root attribute format must be '%s')",
                          ADAPTER_FORMAT);
    int64_t version, r, rs, seed;
    double alpha;
    if (h5_attr_read_i64(f, "version", &version) < 0) return -1;
    if (version != ADAPTER_VERSION)
        return weft_error("adapter version %lld, this weft reads version %d", (long long)version,
                          ADAPTER_VERSION);
    if (h5_attr_read_str(f, "tenant", info->tenant, sizeof info->tenant) < 0 ||
        h5_attr_read_i64(f, "r", &r) < 0 || h5_attr_read_f64(f, "alpha", &alpha) < 0 ||
        h5_attr_read_i64(f, "use_rslora", &rs) < 0 ||
        h5_attr_read_str(f, "targets", targets, sizeof targets) < 0 ||
        h5_attr_read_str(f, "base_sha256", hex, sizeof hex) < 0 ||
        h5_attr_read_i64(f, "steps", &info->steps) < 0 || h5_attr_read_i64(f, "seed", &seed) < 0)
        return -1;
    if (r < 1 || r > (1 << 20)) return weft_error("attribute r = %lld is not a rank", (long long)r);
    if (!isfinite(alpha)) return weft_error("attribute alpha is not a finite number");
    if (!(alpha > 0 && alpha <= 1e6))
        return weft_error("attribute alpha = %g: must be in (0, 1e6], as lora.alpha in a spec",
                          alpha);
    if (rs != 0 && rs != 1)
        return weft_error("attribute use_rslora = %lld: must be 0 or 1", (long long)rs);
    if (!is_hex64(hex))
        return weft_error("attribute base_sha256 '%s' is not 64 lower-case hex digits", hex);
    if (info->steps < 0)
        return weft_error("attribute steps = %lld is negative", (long long)info->steps);
    memcpy(info->base_sha256, hex, 65);
    info->spec.r = (int)r;
    info->spec.alpha = (float)alpha;
    info->spec.use_rslora = (int)rs;
    info->spec.seed = (uint64_t)seed;
    if (modules_parse(targets, &info->spec.targets) < 0)
        return weft_error_prefix("attribute targets");

    /* The architecture from the targets (Llama's modules or GPT-2's), or
     * for all-linear from the blocks present. */
    unsigned named = info->spec.targets & ~MODULES_ALL_LINEAR;
    int llama = named ? (named & MODULES_LLAMA) != 0 : h5_path_exists(f, "/model/layers/0");
    unsigned modules = modules_of(llama ? ARCH_LLAMA : ARCH_GPT2);
    const char *blocks = module_blocks(llama ? LORA_Q_PROJ : LORA_ATTN_C_ATTN);
    if (named & ~modules)
        return weft_error("attribute targets '%s' mixes GPT-2 and Llama modules", targets);
    if (info->spec.targets & MODULES_ALL_LINEAR) info->spec.targets = modules;

    /* Blocks: /h/0, /h/1, ... (or /model/layers/0, ...); each must hold
     * exactly the listed modules. */
    char p[256];
    int L = 0;
    while (L < 100000) {
        snprintf(p, sizeof p, "/%s/%d", blocks, L);
        if (!h5_path_exists(f, p)) break;
        L++;
    }
    if (L == 0) return weft_error("no /%s/0 group: the adapter holds no matrices", blocks);
    for (int l = 0; l < L; l++)
        for (int m = 0; m < LORA_NMODULES; m++) {
            if (!((modules >> m) & 1)) continue;
            static const char *names[2] = {"lora_A", "lora_B"};
            int has[2];
            for (int i = 0; i < 2; i++) {
                if (tensor_path(p, sizeof p, "", l, m, names[i]) < 0) return -1;
                has[i] = h5_path_exists(f, p);
            }
            int listed = (info->spec.targets >> m) & 1;
            for (int i = 0; i < 2; i++) {
                if (listed && !has[i])
                    return weft_error("targets lists %s but /%s/%d/%s/%s is missing",
                                      module_name(m), blocks, l, module_path(m), names[i]);
                if (listed && (tensor_path(p, sizeof p, "", l, m, names[i]) < 0 ||
                               h5_check_f32le(f, p) < 0))
                    return -1;
            }
            if (!listed && (has[0] || has[1]))
                return weft_error("/%s/%d/%s holds LoRA matrices but targets '%s' does not list "
                                  "%s",
                                  blocks, l, module_path(m), targets, module_name(m));
        }
    info->n_layer = L;

    /* n_embd from the first targeted module's lora_A width (for Llama,
     * from a module reading the residual stream; else 0: not known). */
    int m0 = 0;
    while (!(info->spec.targets & (1u << m0))) m0++;
    if (llama) {
        unsigned from_c = info->spec.targets & ~((1u << LORA_O_PROJ) | (1u << LORA_DOWN_PROJ));
        info->n_embd = 0;
        if (!from_c) return 0;
        m0 = 0;
        while (!(from_c & (1u << m0))) m0++;
    }
    int rank;
    hsize_t dims[8];
    if (tensor_path(p, sizeof p, "", 0, m0, "lora_A") < 0 ||
        h5_dataset_shape(f, p, &rank, dims) < 0)
        return -1;
    int in1 = 1, out1;
    if (!llama) lora_module_dims(m0, 1, &in1, &out1);
    if (rank != 2 || dims[0] != (hsize_t)r || dims[1] % (hsize_t)in1 != 0 || dims[1] == 0)
        return weft_error("dataset %s has shape [%llu%s%llu], expected [r=%lld, in]", p,
                          (unsigned long long)dims[0], rank == 2 ? "," : "?",
                          (unsigned long long)(rank == 2 ? dims[1] : 0), (long long)r);
    info->n_embd = (int)(dims[1] / (hsize_t)in1);
    return 0;
}

/* A PEFT folder's settings as an adapter_info_t (no backbone hash: PEFT
 * keeps none, so the shapes are what is checked against the backbone, here
 * for GPT-2's widths and in peft_load for every module). */
static int peft_info(const peft_lora_t *a, adapter_info_t *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->tenant, sizeof info->tenant, "%s", a->tenant);
    info->spec.r = a->r;
    info->spec.alpha = (float)a->alpha;
    info->spec.use_rslora = a->use_rslora;
    info->n_layer = a->n_layer;
    for (int m = 0; m < peft_nmodules(a->family); m++)
        if (a->targets >> m & 1) info->spec.targets |= 1u << peft_module(a->family, m);
    if (a->family != HF_GPT2) {
        /* n_embd from a module reading the residual stream (q, k, v, gate,
         * up), else 0: not known. */
        for (int m = 0; m < peft_nmodules(a->family) && !info->n_embd; m++) {
            int g = peft_module(a->family, m);
            if ((a->targets >> m & 1) && g != LORA_O_PROJ && g != LORA_DOWN_PROJ)
                info->n_embd = (int)a->in[m];
        }
        return 0;
    }
    int m0 = 0;
    while (!(a->targets >> m0 & 1)) m0++;
    int in1, out1;
    lora_module_dims(m0, 1, &in1, &out1);
    info->n_embd = (int)(a->in[m0] / (uint64_t)in1);
    for (int m = 0; m < 4; m++) {
        int in, out;
        lora_module_dims(m, info->n_embd, &in, &out);
        if ((a->targets >> m & 1) && (a->in[m] != (uint64_t)in || a->out[m] != (uint64_t)out))
            return weft_error("%s is %llu -> %llu, but a GPT-2 block of width %d has %d -> %d",
                              module_name(m), (unsigned long long)a->in[m],
                              (unsigned long long)a->out[m], info->n_embd, in, out);
    }
    return 0;
}

int adapter_read_info(const char *path, adapter_info_t *info)
{
    if (peft_is_dir(path)) {
        peft_lora_t a;
        if (peft_read_dir(path, &a) < 0) return -1;
        int rc = peft_info(&a, info);
        peft_free(&a);
        return rc < 0 ? weft_error_prefix("%s", path) : 0;
    }
    if (access(path, R_OK) != 0) return weft_error("%s: cannot read the adapter file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return weft_error("%s: not an HDF5 file (expected a weft-adapter file)", path);
    int rc = read_info(f, info);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}

/* Tenant k's matrices between file (under prefix) and its block of the
 * pack's parameters: lora_A [r,in] and lora_B [out,r] of each module of each
 * layer it adapts, written from `from`, or else read into `into` (each
 * checked to be float32 little-endian first). */
static int move_tensors(hid_t file, const char *prefix, lora_pack_t *pack, int k, const float *from,
                        float *into)
{
    static const char *const names[2] = {"lora_A", "lora_B"};
    const lora_spec_t *s = lora_pack_spec(pack, k);
    char p[512];
    for (int l = 0; l < lora_pack_layers(pack); l++)
        for (int m = 0; m < LORA_NMODULES; m++) {
            size_t off[2];
            if (lora_pack_offsets(pack, k, l, m, &off[0], &off[1]) < 0) continue;
            int in, out;
            lora_pack_module_dims(pack, m, &in, &out);
            hsize_t dims[2][2] = {{(hsize_t)s->r, (hsize_t)in}, {(hsize_t)out, (hsize_t)s->r}};
            for (int i = 0; i < 2; i++) {
                if (tensor_path(p, sizeof p, prefix, l, m, names[i]) < 0) return -1;
                if (from ? h5_write_f32(file, p, 2, dims[i], from + off[i]) < 0
                         : h5_check_f32le(file, p) < 0 ||
                               h5_read_f32(file, p, 2, dims[i], into + off[i]) < 0)
                    return -1;
            }
        }
    return 0;
}

int adapter_write_tensors(hid_t file, const char *prefix, lora_pack_t *pack, int k,
                          const float *buf)
{
    return move_tensors(file, prefix, pack, k, buf, NULL);
}

int adapter_read_tensors(hid_t file, const char *prefix, lora_pack_t *pack, int k, float *buf)
{
    return move_tensors(file, prefix, pack, k, NULL, buf);
}

/* The pack's tenant k must have the file's shape and scaling. */
static int check_fits(const adapter_info_t *info, lora_pack_t *pack, int k)
{
    const lora_spec_t *s = lora_pack_spec(pack, k);
    char want[128], have[128];
    if (info->n_layer != lora_pack_layers(pack) ||
        (info->n_embd && info->n_embd != lora_pack_embd(pack)))
        return weft_error("adapter is for a backbone of %d blocks of width %d, this model has "
                          "%d blocks of width %d",
                          info->n_layer, info->n_embd, lora_pack_layers(pack),
                          lora_pack_embd(pack));
    if (info->spec.targets != s->targets) {
        modules_format(info->spec.targets, have, sizeof have);
        modules_format(s->targets, want, sizeof want);
        return weft_error("adapter targets '%s' but tenant %d is set up for '%s'", have, k, want);
    }
    if (info->spec.r != s->r || info->spec.alpha != s->alpha ||
        info->spec.use_rslora != s->use_rslora)
        return weft_error("adapter has r=%d alpha=%g use_rslora=%d but tenant %d is set up with "
                          "r=%d alpha=%g use_rslora=%d",
                          info->spec.r, (double)info->spec.alpha, info->spec.use_rslora, k, s->r,
                          (double)s->alpha, s->use_rslora);
    return 0;
}

/* A PEFT folder into tenant k of pack. */
static int peft_load(const char *path, lora_pack_t *pack, int k, adapter_info_t *info)
{
    peft_lora_t a;
    if (peft_read_dir(path, &a) < 0) return -1;
    int rc = peft_info(&a, info);
    if (rc == 0) rc = check_fits(info, pack, k);
    for (int m = 0; rc == 0 && m < peft_nmodules(a.family); m++) {
        int in = 0, out = 0, g = peft_module(a.family, m);
        if (!(a.targets >> m & 1)) continue;
        if (lora_pack_module_dims(pack, g, &in, &out) < 0 || a.in[m] != (uint64_t)in ||
            a.out[m] != (uint64_t)out)
            rc = weft_error("%s is %llu -> %llu, but this %s backbone's is %d -> %d",
                            module_name(g), (unsigned long long)a.in[m],
                            (unsigned long long)a.out[m], lora_pack_dims(pack)->arch, in, out);
    }
    for (int l = 0; rc == 0 && l < a.n_layer; l++)
        for (int m = 0; m < peft_nmodules(a.family); m++) {
            size_t ao, bo, pa, pb;
            if (peft_offsets(&a, l, m, &ao, &bo) < 0 ||
                lora_pack_offsets(pack, k, l, peft_module(a.family, m), &pa, &pb) < 0)
                continue;
            float *w = lora_pack_params(pack);
            memcpy(w + pa, a.w + ao, (size_t)a.r * a.in[m] * sizeof *w);
            memcpy(w + pb, a.w + bo, (size_t)a.r * a.out[m] * sizeof *w);
        }
    peft_free(&a);
    return rc < 0 ? weft_error_prefix("%s", path) : 0;
}

int adapter_load(const char *path, const char *base_path, const char *base_sha256,
                 lora_pack_t *pack, int k, adapter_info_t *info)
{
    adapter_info_t local;
    if (!info) info = &local;
    if (peft_is_dir(path)) return peft_load(path, pack, k, info);
    if (adapter_read_info(path, info) < 0) return -1;
    if (strcmp(info->base_sha256, base_sha256) != 0)
        return weft_error("%s was trained on the backbone with sha256 %s, but %s has sha256 %s: "
                          "load it onto the model file it was trained on",
                          path, info->base_sha256, base_path, base_sha256);
    if (check_fits(info, pack, k) < 0) return weft_error_prefix("%s", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return weft_error("%s: cannot open the adapter file", path);
    int rc = adapter_read_tensors(f, "", pack, k, lora_pack_params(pack));
    H5Fclose(f);
    if (rc < 0) return weft_error_prefix("%s", path);
    const float *w = lora_pack_params(pack) + lora_pack_tenant_offset(pack, k);
    for (size_t i = 0; i < lora_pack_tenant_size(pack, k); i++)
        if (!isfinite(w[i]))
            return weft_error("%s: the adapter holds a NaN or infinite value: it is damaged or "
                              "came from a diverged run",
                              path);
    return 0;
}

static int write_file(const char *path, lora_pack_t *pack, int k, const adapter_info_t *info,
                      const float *buf)
{
    const lora_spec_t *s = lora_pack_spec(pack, k);
    char targets[128];
    if (modules_format(s->targets, targets, sizeof targets) < 0) return -1;
    errno = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) /* HDF5 leaves the system's reason (no space, ...) in errno */
        return weft_error("cannot create %s: %s", path, errno ? strerror(errno) : "HDF5 error");
    int rc = 0;
    if (h5_attr_write_str(f, "format", ADAPTER_FORMAT) < 0 ||
        h5_attr_write_i64(f, "version", ADAPTER_VERSION) < 0 ||
        h5_attr_write_str(f, "tenant", info->tenant) < 0 || h5_attr_write_i64(f, "r", s->r) < 0 ||
        h5_attr_write_f64(f, "alpha", (double)s->alpha) < 0 ||
        h5_attr_write_i64(f, "use_rslora", s->use_rslora) < 0 ||
        h5_attr_write_str(f, "targets", targets) < 0 ||
        h5_attr_write_str(f, "base_sha256", info->base_sha256) < 0 ||
        h5_attr_write_i64(f, "steps", info->steps) < 0 ||
        h5_attr_write_i64(f, "seed", (int64_t)s->seed) < 0 ||
        adapter_write_tensors(f, "", pack, k, buf) < 0)
        rc = -1;
    if (H5Fclose(f) < 0 && rc == 0) rc = weft_error("cannot finish writing %s", path);
    return rc;
}

int adapter_save(const char *path, lora_pack_t *pack, int k, const adapter_info_t *info)
{
    return adapter_save_from(path, pack, k, info, lora_pack_params(pack));
}

int adapter_save_from(const char *path, lora_pack_t *pack, int k, const adapter_info_t *info,
                      const float *buf)
{
    if (!is_hex64(info->base_sha256))
        return weft_error("%s: base_sha256 '%s' is not a SHA-256 hex digest", path,
                          info->base_sha256);
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) return weft_error("adapter path too long: %s", path);
    if (write_file(tmp, pack, k, info, buf) < 0 || weft_fsync_path(tmp) < 0 ||
        weft_rename_durable(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

lora_pack_t *adapter_attach(gpt2_t *model, const char *model_path, const char *adapter_path,
                            size_t rows, adapter_info_t *info)
{
    adapter_info_t local;
    char hex[65];
    if (!info) info = &local;
    if (weft_sha256_file(model_path, hex) < 0 || adapter_read_info(adapter_path, info) < 0)
        return NULL;
    unsigned targets;
    if (modules_resolve(info->spec.targets, model->cfg.arch, &targets) < 0) return NULL;
    lora_pack_t *pack = lora_pack_for(model, 1, &info->spec, rows);
    size_t row0 = 0;
    if (!pack || adapter_load(adapter_path, model_path, hex, pack, 0, NULL) < 0 ||
        lora_pack_set_rows(pack, &row0, &rows) < 0) {
        lora_pack_destroy(&pack);
        return NULL;
    }
    lora_attach(model, pack);
    return pack;
}
