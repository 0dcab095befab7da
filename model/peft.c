/* peft.c: LoRA adapters between weft-adapter files and PEFT folders, and
 * `weft merge` (see peft.h). */
#include "model/peft.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
#include "model/modules.h"
#include "model/safetensors.h"
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The two families of adapter layouts; a family's modules are the ones of
 * its architecture in the module table (model/modules.h), in its order. */
static const struct {
    const char *block; /* block key prefix after base_model.model. */
    model_arch_t arch;
} families[] = {
    [HF_GPT2] = {"transformer.h.", ARCH_GPT2},
    [HF_LLAMA] = {"model.layers.", ARCH_LLAMA},
};

/* Qwen2 and Mistral adapters are Llama's. */
static hf_family_t fam(hf_family_t f)
{
    return f == HF_GPT2 ? HF_GPT2 : HF_LLAMA;
}

int peft_nmodules(hf_family_t f)
{
    return __builtin_popcount(modules_of(families[fam(f)].arch));
}

int peft_module(hf_family_t f, int m)
{
    return __builtin_ctz(modules_of(families[fam(f)].arch)) + m;
}

const char *peft_module_name(hf_family_t f, int m)
{
    return module_name(peft_module(f, m));
}

float peft_scaling(const peft_lora_t *a)
{
    return (float)(a->use_rslora ? a->alpha / sqrt((double)a->r) : a->alpha / a->r);
}

void peft_free(peft_lora_t *a)
{
    free(a->w);
    memset(a, 0, sizeof *a);
}

int peft_offsets(const peft_lora_t *a, int l, int m, size_t *a_off, size_t *b_off)
{
    if (l < 0 || l >= a->n_layer || m < 0 || m >= peft_nmodules(a->family) ||
        !(a->targets >> m & 1))
        return -1;
    size_t per_block = 0, at = 0;
    for (int j = 0; j < peft_nmodules(a->family); j++)
        if (a->targets >> j & 1) {
            size_t sz = (size_t)a->r * (a->in[j] + a->out[j]);
            if (j < m) at += sz;
            per_block += sz;
        }
    *a_off = (size_t)l * per_block + at;
    *b_off = *a_off + (size_t)a->r * a->in[m];
    return 0;
}

static int alloc_weights(peft_lora_t *a)
{
    size_t per_block = 0;
    for (int j = 0; j < peft_nmodules(a->family); j++)
        if (a->targets >> j & 1) per_block += (size_t)a->r * (a->in[j] + a->out[j]);
    a->size = per_block * (size_t)a->n_layer;
    if (!(a->w = calloc(a->size ? a->size : 1, sizeof *a->w))) return weft_error("out of memory");
    return 0;
}

int peft_is_dir(const char *path)
{
    struct stat st;
    char p[4096];
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
    return weft_path_join(p, sizeof p, path, "adapter_config.json") == 0 && access(p, F_OK) == 0;
}

/* ---- the weft-adapter file ---- */

/* A weft-adapter module's HDF5 path under block l: /h/0/attn/c_attn,
 * /model/layers/0/self_attn/q_proj. */
static void h5_module(char *buf, size_t size, hf_family_t f, int l, int m, const char *what)
{
    int g = peft_module(f, m);
    snprintf(buf, size, "/%s/%d/%s/%s", module_blocks(g), l, module_path(g), what);
}

/* The targets attribute ("attn.c_attn,mlp.c_fc", "self_attn.q_proj,...",
 * or "all-linear") -> family and module mask. */
static int h5_targets(hid_t f, const char *targets, peft_lora_t *a)
{
    unsigned mask;
    if (modules_parse(targets, &mask) < 0) return weft_error_prefix("attribute targets");
    unsigned named = mask & ~MODULES_ALL_LINEAR;
    if ((named & MODULES_GPT2) && (named & MODULES_LLAMA))
        return weft_error("attribute targets '%s' mixes GPT-2 and Llama modules", targets);
    int llama = named ? (named & MODULES_LLAMA) != 0 : h5_path_exists(f, "/model/layers/0") > 0;
    a->family = llama ? HF_LLAMA : HF_GPT2;
    if (mask & MODULES_ALL_LINEAR) named = modules_of(families[a->family].arch);
    a->targets = named >> peft_module(a->family, 0);
    return 0;
}

static int read_h5(hid_t f, peft_lora_t *a)
{
    char format[64], targets[256], hex[80];
    int64_t version, r, rs;
    if (h5_attr_read_str(f, "format", format, sizeof format) < 0 || strcmp(format, "weft-adapter"))
        return weft_error("not a weft-adapter file (root attribute format)");
    if (h5_attr_read_i64(f, "version", &version) < 0 || h5_attr_read_i64(f, "r", &r) < 0 ||
        h5_attr_read_f64(f, "alpha", &a->alpha) < 0 || h5_attr_read_i64(f, "use_rslora", &rs) < 0 ||
        h5_attr_read_str(f, "targets", targets, sizeof targets) < 0 ||
        h5_attr_read_str(f, "tenant", a->tenant, sizeof a->tenant) < 0 ||
        h5_attr_read_str(f, "base_sha256", hex, sizeof hex) < 0)
        return -1;
    if (strlen(hex) != 64) return weft_error("attribute base_sha256 is not a SHA-256 hex digest");
    memcpy(a->base_sha256, hex, 65);
    if (version != 1)
        return weft_error("weft-adapter version %lld (this weft reads 1)", (long long)version);
    if (r < 1 || r > (1 << 20) || !isfinite(a->alpha) || (rs != 0 && rs != 1))
        return weft_error("attributes r, alpha or use_rslora out of range");
    a->r = (int)r;
    a->use_rslora = (int)rs;
    if (h5_targets(f, targets, a) < 0) return -1;
    hf_family_t fm = a->family;
    char path[256];
    const char *blocks = module_blocks(peft_module(fm, 0));
    while (a->n_layer < 100000) {
        snprintf(path, sizeof path, "/%s/%d", blocks, a->n_layer);
        if (!h5_path_exists(f, path)) break;
        a->n_layer++;
    }
    if (!a->n_layer) return weft_error("no /%s/0 group: the adapter holds no matrices", blocks);
    for (int m = 0; m < peft_nmodules(fm); m++) {
        if (!(a->targets >> m & 1)) continue;
        int rank;
        hsize_t da[8], db[8];
        h5_module(path, sizeof path, fm, 0, m, "lora_A");
        if (h5_dataset_shape(f, path, &rank, da) < 0 || rank != 2 || da[0] != (hsize_t)r)
            return weft_error("dataset %s must be [r=%lld, in]", path, (long long)r);
        h5_module(path, sizeof path, fm, 0, m, "lora_B");
        if (h5_dataset_shape(f, path, &rank, db) < 0 || rank != 2 || db[1] != (hsize_t)r)
            return weft_error("dataset %s must be [out, r=%lld]", path, (long long)r);
        a->in[m] = da[1];
        a->out[m] = db[0];
    }
    if (alloc_weights(a) < 0) return -1;
    for (int l = 0; l < a->n_layer; l++)
        for (int m = 0; m < peft_nmodules(fm); m++) {
            size_t ao, bo;
            if (peft_offsets(a, l, m, &ao, &bo) < 0) continue;
            hsize_t da[2] = {(hsize_t)r, a->in[m]}, db[2] = {a->out[m], (hsize_t)r};
            h5_module(path, sizeof path, fm, l, m, "lora_A");
            if (h5_read_f32(f, path, 2, da, a->w + ao) < 0) return -1;
            h5_module(path, sizeof path, fm, l, m, "lora_B");
            if (h5_read_f32(f, path, 2, db, a->w + bo) < 0) return -1;
        }
    return 0;
}

int peft_read_h5(const char *path, peft_lora_t *a)
{
    memset(a, 0, sizeof *a);
    h5_quiet();
    if (access(path, R_OK) != 0) return weft_error("%s: cannot read the adapter file", path);
    hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (f < 0)
        return weft_error("%s: neither a weft-adapter HDF5 file nor a PEFT folder "
                          "(adapter_config.json)",
                          path);
    int rc = read_h5(f, a);
    H5Fclose(f);
    if (rc < 0) {
        peft_free(a);
        return weft_error_prefix("%s", path);
    }
    return 0;
}

/* ---- the PEFT folder ---- */

static int setting_is_set(const json_t *v)
{
    return v && !json_is_null(v) && !json_is_false(v) &&
           !(json_is_array(v) && json_array_size(v) == 0) &&
           !(json_is_object(v) && json_object_size(v) == 0);
}

/* target_modules -> module mask; "all-linear" is every module. */
static int parse_targets(const json_t *t, hf_family_t f, unsigned *mask)
{
    *mask = 0;
    const char *s = json_string_value(t);
    if (s && !strcmp(s, "all-linear")) {
        *mask = (1u << peft_nmodules(f)) - 1;
        return 0;
    }
    if (s)
        return weft_error("target_modules \"%s\" is a regular expression; weft reads a list of "
                          "module names",
                          s);
    if (!json_is_array(t) || !json_array_size(t))
        return weft_error("target_modules must be a non-empty list of module names");
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        const char *name = json_string_value(v);
        unsigned hit = 0;
        for (int m = 0; name && m < peft_nmodules(f); m++) {
            const char *mod = peft_module_name(f, m);
            size_t n = strlen(mod), k = strlen(name);
            if (!strcmp(mod, name) ||
                (k < n && mod[n - k - 1] == '.' && !strcmp(mod + n - k, name)))
                hit |= 1u << m;
        }
        if (!hit) {
            char have[256] = "";
            for (int m = 0; m < peft_nmodules(f); m++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", m ? ", " : "",
                         module_peft_name(peft_module(f, m)));
            return weft_error("target_modules names \"%s\", which %s lacks (it has %s)",
                              name ? name : "(not a string)", hf_family_architecture(f), have);
        }
        *mask |= hit;
    }
    return 0;
}

/* base_model.model.<block><l>.<module>.lora_{A,B}.weight -> l, m, which. */
static int parse_key(const char *key, hf_family_t *f, int *l, int *m, int *b)
{
    static const char pre[] = "base_model.model.";
    if (strncmp(key, pre, sizeof pre - 1)) return -1;
    key += sizeof pre - 1;
    for (int fi = 0; fi <= HF_LLAMA; fi++) {
        size_t n = strlen(families[fi].block);
        if (strncmp(key, families[fi].block, n)) continue;
        char *end;
        long layer = strtol(key + n, &end, 10);
        if (end == key + n || *end != '.' || layer < 0 || layer > 100000) return -1;
        for (int mi = 0; mi < peft_nmodules(fi); mi++) {
            size_t k = strlen(peft_module_name(fi, mi));
            if (strncmp(end + 1, peft_module_name(fi, mi), k)) continue;
            const char *rest = end + 1 + k;
            if (strcmp(rest, ".lora_A.weight") && strcmp(rest, ".lora_B.weight")) continue;
            *f = (hf_family_t)fi;
            *l = (int)layer;
            *m = mi;
            *b = rest[6] == 'B';
            return 0;
        }
    }
    return -1;
}

static int read_config(const char *dir, json_t **cfg_p)
{
    char path[4096];
    json_error_t err;
    if (weft_path_join(path, sizeof path, dir, "adapter_config.json") < 0) return -1;
    json_t *c = json_load_file(path, 0, &err);
    if (!c) return weft_error("%s:%d: cannot read (%s)", path, err.line, err.text);
    *cfg_p = c;
    const char *type = json_string_value(json_object_get(c, "peft_type"));
    if (!json_is_object(c)) return weft_error("%s: not a JSON object", path);
    if (!type || strcmp(type, "LORA"))
        return weft_error("%s: peft_type \"%s\": weft reads LORA adapters", path,
                          type ? type : "(missing)");
    if (setting_is_set(json_object_get(c, "use_dora")))
        return weft_error("%s: use_dora is set: weft cannot represent DoRA adapters", path);
    const char *bias = json_string_value(json_object_get(c, "bias"));
    if (bias && strcmp(bias, "none"))
        return weft_error("%s: bias \"%s\": weft's adapters train no biases (bias \"none\")", path,
                          bias);
    if (setting_is_set(json_object_get(c, "modules_to_save")))
        return weft_error("%s: modules_to_save is set: weft's adapters hold LoRA matrices only",
                          path);
    if (setting_is_set(json_object_get(c, "layers_to_transform")))
        return weft_error("%s: layers_to_transform is set: weft's adapters cover every block",
                          path);
    const json_t *r = json_object_get(c, "r"), *alpha = json_object_get(c, "lora_alpha");
    if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > (1 << 20))
        return weft_error("%s: r must be a whole number >= 1", path);
    if (!json_is_number(alpha) || !isfinite(json_number_value(alpha)))
        return weft_error("%s: lora_alpha must be a number", path);
    static const char *patterns[2] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        const json_t *p = json_object_get(c, patterns[i]), *v;
        const char *k;
        if (!p || json_is_null(p)) continue;
        if (!json_is_object(p)) return weft_error("%s: %s must be an object", path, patterns[i]);
        json_object_foreach((json_t *)p, k, v)
        {
            double want = json_number_value(i ? alpha : r);
            if (!json_is_number(v) || json_number_value(v) != want)
                return weft_error("%s: %s gives module '%s' a different %s: weft's adapters use "
                                  "one r and one lora_alpha for every module",
                                  path, patterns[i], k, i ? "lora_alpha" : "r");
        }
    }
    return 0;
}

static int read_dir(const char *dir, peft_lora_t *a)
{
    json_t *cfg = NULL;
    st_file_t *st = NULL;
    int rc = -1;
    char path[4096];
    if (read_config(dir, &cfg) < 0) goto out;
    a->r = (int)json_integer_value(json_object_get(cfg, "r"));
    a->alpha = json_number_value(json_object_get(cfg, "lora_alpha"));
    a->use_rslora = json_is_true(json_object_get(cfg, "use_rslora"));
    const char *slash = strrchr(dir, '/');
    snprintf(a->tenant, sizeof a->tenant, "%s", slash && slash[1] ? slash + 1 : dir);
    if (weft_path_join(path, sizeof path, dir, "adapter_model.safetensors") < 0) goto out;
    if (access(path, F_OK) != 0) {
        weft_error("%s: no adapter_model.safetensors (weft reads safetensors; save the adapter "
                   "with safe_serialization=True)",
                   dir);
        goto out;
    }
    if (!(st = st_file_open(path))) goto out;
    const st_header_t *h = st_file_header(st);
    if (!h->n) {
        weft_error("%s: holds no tensors", path);
        goto out;
    }
    /* Which family, how many blocks, which modules the keys hold. */
    unsigned present = 0;
    int family = -1;
    for (size_t i = 0; i < h->n; i++) {
        hf_family_t f;
        int l, m, b;
        if (parse_key(h->tensors[i].name, &f, &l, &m, &b) < 0 ||
            (family >= 0 && (int)f != family)) {
            weft_error("%s: tensor '%s' is not a LoRA matrix weft knows (base_model.model.<module>"
                       ".lora_A.weight or .lora_B.weight of a GPT-2 or Llama-family block)",
                       path, h->tensors[i].name);
            goto out;
        }
        family = (int)f;
        if (l + 1 > a->n_layer) a->n_layer = l + 1;
        present |= 1u << m;
    }
    a->family = (hf_family_t)family;
    if (parse_targets(json_object_get(cfg, "target_modules"), a->family, &a->targets) < 0) {
        weft_error_prefix("%s/adapter_config.json", dir);
        goto out;
    }
    if (present != a->targets) {
        int m = 0;
        while (!((present ^ a->targets) >> m & 1)) m++;
        weft_error("%s: target_modules %s %s but the weights %s it", dir,
                   a->targets >> m & 1 ? "lists" : "does not list", peft_module_name(family, m),
                   present >> m & 1 ? "hold" : "lack");
        goto out;
    }
    /* Shapes from block 0; every block alike. */
    char key[256];
    for (int m = 0; m < peft_nmodules(family); m++) {
        if (!(a->targets >> m & 1)) continue;
        snprintf(key, sizeof key, "base_model.model.%s0.%s.lora_A.weight", families[family].block,
                 peft_module_name(family, m));
        const st_tensor_t *ta = st_file_find(st, key);
        snprintf(key, sizeof key, "base_model.model.%s0.%s.lora_B.weight", families[family].block,
                 peft_module_name(family, m));
        const st_tensor_t *tb = st_file_find(st, key);
        if (!ta || !tb || ta->ndim != 2 || tb->ndim != 2 || ta->shape[0] != (uint64_t)a->r ||
            tb->shape[1] != (uint64_t)a->r) {
            weft_error("%s: block 0's %s must have lora_A [r=%d, in] and lora_B [out, r=%d]", path,
                       peft_module_name(family, m), a->r, a->r);
            goto out;
        }
        a->in[m] = ta->shape[1];
        a->out[m] = tb->shape[0];
    }
    if (alloc_weights(a) < 0) goto out;
    for (int l = 0; l < a->n_layer; l++)
        for (int m = 0; m < peft_nmodules(family); m++) {
            size_t off[2];
            if (peft_offsets(a, l, m, &off[0], &off[1]) < 0) continue;
            for (int b = 0; b < 2; b++) {
                snprintf(key, sizeof key, "base_model.model.%s%d.%s.lora_%c.weight",
                         families[family].block, l, peft_module_name(family, m), b ? 'B' : 'A');
                const st_tensor_t *t = st_file_find(st, key);
                uint64_t d0 = b ? a->out[m] : (uint64_t)a->r, d1 = b ? (uint64_t)a->r : a->in[m];
                if (!t) {
                    weft_error("%s: tensor '%s' is missing", path, key);
                    goto out;
                }
                if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
                    weft_error("%s: tensor '%s' must be [%llu,%llu] like block 0's", path, key,
                               (unsigned long long)d0, (unsigned long long)d1);
                    goto out;
                }
                if (st_file_read_f32(st, t, a->w + off[b]) < 0) goto out;
            }
        }
    for (size_t i = 0; i < a->size; i++)
        if (!isfinite(a->w[i])) {
            weft_error("%s: holds a NaN or infinite value", path);
            goto out;
        }
    rc = 0;
out:
    st_file_close(&st);
    json_decref(cfg);
    return rc;
}

int peft_read_dir(const char *dir, peft_lora_t *a)
{
    memset(a, 0, sizeof *a);
    if (read_dir(dir, a) < 0) {
        peft_free(a);
        return -1;
    }
    return 0;
}

int peft_read_any(const char *path, peft_lora_t *a)
{
    return peft_is_dir(path) ? peft_read_dir(path, a) : peft_read_h5(path, a);
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4104];
    if (weft_path_join(path, sizeof path, dir, name) < 0) return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) return weft_error("%s: cannot create: %s", tmp, strerror(errno));
    int bad =
        fputs(text, fp) < 0 || fputc('\n', fp) < 0 || fflush(fp) != 0 || fsync(fileno(fp)) < 0;
    if (fclose(fp) != 0) bad = 1;
    if (bad || weft_rename_durable(tmp, path) < 0) {
        unlink(tmp);
        return weft_error("%s: cannot write", path);
    }
    return 0;
}

int peft_write_dir(const peft_lora_t *a, const char *dir, int bf16, const char *base_model)
{
    hf_family_t f = fam(a->family);
    int n = peft_nmodules(f), rc = -1;
    size_t nt = 0;
    st_spec_t *specs = calloc((size_t)a->n_layer * (size_t)n * 2, sizeof *specs);
    char(*names)[160] = calloc((size_t)a->n_layer * (size_t)n * 2, sizeof *names);
    st_writer_t *w = NULL;
    if (!specs || !names) {
        weft_error("out of memory");
        goto out;
    }
    for (int l = 0; l < a->n_layer; l++)
        for (int m = 0; m < n; m++) {
            if (!(a->targets >> m & 1)) continue;
            for (int b = 0; b < 2; b++, nt++) {
                snprintf(names[nt], sizeof names[nt], "base_model.model.%s%d.%s.lora_%c.weight",
                         families[f].block, l, peft_module_name(f, m), b ? 'B' : 'A');
                specs[nt].name = names[nt];
                specs[nt].ndim = 2;
                specs[nt].shape[0] = b ? a->out[m] : (uint64_t)a->r;
                specs[nt].shape[1] = b ? (uint64_t)a->r : a->in[m];
            }
        }
    char path[4096];
    if (weft_mkdir_p(dir, 0755) < 0 ||
        weft_path_join(path, sizeof path, dir, "adapter_model.safetensors") < 0 ||
        !(w = st_writer_new(path, specs, nt, bf16 ? ST_BF16 : ST_F32)))
        goto out;
    for (int l = 0; l < a->n_layer; l++)
        for (int m = 0; m < n; m++) {
            size_t ao, bo;
            if (peft_offsets(a, l, m, &ao, &bo) < 0) continue;
            if (st_writer_put(w, a->w + ao) < 0 || st_writer_put(w, a->w + bo) < 0) goto out;
        }
    if (st_writer_finish(&w) < 0) goto out;
    json_t *targets = json_array();
    for (int m = 0; m < n; m++)
        if (a->targets >> m & 1)
            json_array_append_new(targets, json_string(module_peft_name(peft_module(f, m))));
    json_t *c =
        json_pack("{s:s, s:s, s:i, s:f, s:o, s:f, s:s, s:b, s:b, s:s?, s:b, s:n, s:n, "
                  "s:b, s:b, s:{}, s:{}}",
                  "peft_type", "LORA", "task_type", "CAUSAL_LM", "r", a->r, "lora_alpha", a->alpha,
                  "target_modules", targets, "lora_dropout", 0.0, "bias", "none", "use_rslora",
                  a->use_rslora, "fan_in_fan_out", f == HF_GPT2, "base_model_name_or_path",
                  base_model, "inference_mode", 1, "modules_to_save", "layers_to_transform",
                  "use_dora", 0, "init_lora_weights", 1, "rank_pattern", "alpha_pattern");
    char *text = c ? json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(c);
    rc = text ? write_text(dir, "adapter_config.json", text) : weft_error("out of memory");
    free(text);
out:
    st_writer_abandon(&w);
    free(specs);
    free(names);
    return rc;
}

int peft_export(const char *adapter, const char *dir, int bf16, const char *base_model)
{
    peft_lora_t a;
    if (peft_read_any(adapter, &a) < 0) return -1;
    int rc = peft_write_dir(&a, dir, bf16, base_model);
    peft_free(&a);
    return rc;
}

/* ---- merge ---- */

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return weft_error("%s: cannot open: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return weft_error("%s: cannot create: %s", to, strerror(errno));
    }
    static char buf[1 << 20];
    ssize_t k;
    int rc = 0;
    while ((k = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)k) != k) {
            rc = weft_error("%s: cannot write: %s", to, strerror(errno));
            break;
        }
    if (k < 0) rc = weft_error("%s: cannot read: %s", from, strerror(errno));
    close(in);
    if (close(out) < 0 && rc == 0) rc = weft_error("%s: cannot write", to);
    return rc;
}

/* W += scaling · (B·A), or its transpose for Conv1D ([in,out]) weights. */
static int fold(hid_t f, const peft_lora_t *a, const hf_config_t *c)
{
    float s = peft_scaling(a);
    for (int l = 0; l < a->n_layer; l++)
        for (int m = 0; m < peft_nmodules(a->family); m++) {
            size_t ao, bo;
            if (peft_offsets(a, l, m, &ao, &bo) < 0) continue;
            int g = peft_module(a->family, m);
            char path[256];
            snprintf(path, sizeof path, "/%s/%d/%s/weight", module_blocks(g), l, module_path(g));
            uint64_t in = a->in[m], out = a->out[m];
            int conv1d = c->family == HF_GPT2;
            hsize_t dims[2] = {conv1d ? in : out, conv1d ? out : in};
            float *w = malloc(in * out * sizeof *w);
            if (!w) return weft_error("out of memory");
            if (h5_read_f32(f, path, 2, dims, w) < 0) {
                free(w);
                return weft_error("%s (the adapter's %s does not fit this model)",
                                  weft_last_error(), peft_module_name(a->family, m));
            }
            const float *A = a->w + ao, *B = a->w + bo; /* A (r,in), B (out,r) */
            for (uint64_t o = 0; o < out; o++)
                for (uint64_t i = 0; i < in; i++) {
                    double d = 0;
                    for (int r = 0; r < a->r; r++)
                        d += (double)B[o * (uint64_t)a->r + (uint64_t)r] * A[(uint64_t)r * in + i];
                    float *x = conv1d ? &w[i * out + o] : &w[o * in + i];
                    *x += s * (float)d;
                }
            hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
            herr_t st =
                d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
            if (d >= 0) H5Dclose(d);
            free(w);
            if (st < 0) return weft_error("cannot write dataset %s", path);
        }
    return 0;
}

int peft_merge(const char *model, const char *adapter, const char *out)
{
    peft_lora_t a;
    hf_config_t c;
    char tmp[4096], hex[65];
    if (peft_read_any(adapter, &a) < 0) return -1;
    int rc = -1;
    hid_t f = -1;
    h5_quiet();
    if (a.base_sha256[0]) {
        if (weft_sha256_file(model, hex) < 0) goto out;
        if (strcmp(hex, a.base_sha256)) {
            weft_error("%s was trained on the backbone with sha256 %s, but %s has sha256 %s: merge "
                       "it into the model file it was trained on",
                       adapter, a.base_sha256, model, hex);
            goto out;
        }
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
        weft_error("%s: path too long", out);
        goto out;
    }
    if (H5Fis_hdf5(model) <= 0) {
        weft_error("%s: not a weft-model file", model);
        goto out;
    }
    if (copy_file(model, tmp) < 0) goto out;
    if ((f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) {
        weft_error("%s: cannot open the copy for writing", tmp);
        goto out;
    }
    if (hf_config_from_model(f, &c) < 0) {
        weft_error_prefix("%s", model);
        goto out;
    }
    if (fam(c.family) != a.family || c.n_layer != a.n_layer) {
        weft_error("%s is a %s adapter of %d blocks, %s a %s of %lld blocks", adapter,
                   a.family == HF_GPT2 ? "GPT-2" : "Llama-family", a.n_layer, model,
                   hf_family_architecture(c.family), (long long)c.n_layer);
        goto out;
    }
    if (fold(f, &a, &c) < 0) {
        weft_error_prefix("%s", model);
        goto out;
    }
    rc = 0;
out:
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0) rc = weft_error("%s: cannot finish writing", tmp);
    if (rc == 0 && (weft_fsync_path(tmp) < 0 || weft_rename_durable(tmp, out) < 0)) rc = -1;
    if (rc < 0) unlink(tmp);
    peft_free(&a);
    return rc;
}
