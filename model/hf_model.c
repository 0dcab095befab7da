/* hf_model.c: `weft import` (Hugging Face folder -> weft-model file) and
 * `weft export` (the reverse), tensor by tensor so that neither side is
 * held in memory whole; tokenizer files travel with the model. */
#include "model/hf.h"
#include "common/fsutil.h"
#include "common/h5util.h"
#include "common/log.h"
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

#define TOKENIZER_MAX (256u << 20)

/* The tokenizer files a model carries, in the contract's names. */
static const char *tok_files[3] = {"tokenizer.json", "vocab.json", "merges.txt"};

typedef struct {
    char *data[3];
    size_t len[3];
    int present; /* 0 none; 1 tokenizer.json; 2 vocab.json + merges.txt */
} tok_bundle_t;

static void tok_free(tok_bundle_t *t)
{
    for (int i = 0; i < 3; i++) free(t->data[i]);
    memset(t, 0, sizeof *t);
}

static int tok_read_dir(const char *dir, tok_bundle_t *t)
{
    char p[3][4096];
    int have[3];
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 3; i++) {
        if (weft_path_join(p[i], sizeof p[i], dir, tok_files[i]) < 0) return -1;
        have[i] = access(p[i], F_OK) == 0;
    }
    if (have[0])
        t->present = 1;
    else if (have[1] && have[2])
        t->present = 2;
    else if (have[1] || have[2])
        return weft_error("%s: has %s without %s: a BPE tokenizer needs both (or tokenizer.json)",
                          dir, have[1] ? "vocab.json" : "merges.txt",
                          have[1] ? "merges.txt" : "vocab.json");
    for (int i = 0; i < 3; i++) {
        if (!(t->present == 1 ? i == 0 : t->present == 2 && i > 0)) continue;
        if (!(t->data[i] = weft_read_file(p[i], TOKENIZER_MAX, &t->len[i]))) return -1;
    }
    return 0;
}

static void tok_sha256(const tok_bundle_t *t, char hex[65])
{
    weft_sha256_t s;
    uint8_t d[32];
    weft_sha256_init(&s);
    for (int i = 0; i < 3; i++)
        if (t->data[i]) weft_sha256_update(&s, t->data[i], t->len[i]);
    weft_sha256_final(&s, d);
    weft_sha256_hex(d, hex);
}

static int write_u8(hid_t f, const char *path, const void *data, size_t n)
{
    if (h5_make_parents(f, path) < 0) return -1;
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t d = H5Dcreate2(f, path, H5T_STD_U8LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    herr_t st = d < 0 ? -1
                : n   ? H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, data)
                      : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    return st < 0 ? weft_error("cannot write dataset %s", path) : 0;
}

/* ---- import ---- */

/* The table's key for a checkpoint key, "" for a buffer to skip, NULL when
 * the key is unknown to this family. */
static const char *canonical(const hf_config_t *c, const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
#define ENDS(s) (n >= sizeof(s) - 1 && !strcmp(key + n - (sizeof(s) - 1), s))
    if (c->family == HF_GPT2) {
        if (ENDS(".attn.bias") || ENDS(".attn.masked_bias")) return "";
        if (!strcmp(key, "lm_head.weight")) return key;
        if (strncmp(key, "transformer.", 12)) {
            snprintf(buf, size, "transformer.%s", key);
            return buf;
        }
        return key;
    }
    if (ENDS(".rotary_emb.inv_freq")) return "";
#undef ENDS
    return key;
}

static void shape_str(char *buf, size_t size, int ndim, const uint64_t *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, size - at, "[");
    for (int i = 0; i < ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%llu", i ? "," : "",
                               (unsigned long long)shape[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

typedef struct {
    st_file_t *file;
    const st_tensor_t *t;
} found_t;

/* Every checkpoint tensor is one the table expects (or a known buffer), and
 * every expected tensor is there with its shape and a float dtype. */
static int match_tensors(const hf_config_t *c, st_checkpoint_t *ck, const hf_tensor_t *tab,
                         size_t n, found_t *found)
{
    const char *arch = hf_family_architecture(c->family);
    st_file_t *head_file = NULL;
    const st_tensor_t *head = NULL;
    for (size_t i = 0; i < st_checkpoint_count(ck); i++) {
        st_file_t *file;
        const st_tensor_t *t = st_checkpoint_tensor(ck, i, &file);
        char buf[300];
        const char *key = canonical(c, t->name, buf, sizeof buf);
        if (!*key) continue;
        if (!strcmp(key, "lm_head.weight") && (c->family == HF_GPT2 || c->tie_word_embeddings)) {
            head = t;
            head_file = file;
            continue;
        }
        size_t j = 0;
        while (j < n && strcmp(tab[j].hf, key)) j++;
        if (j == n)
            return weft_error("%s: tensor '%s' is not part of a %s with this config.json (wrong "
                              "architecture or settings?)",
                              st_file_path(file), t->name, arch);
        if (found[j].t)
            return weft_error("%s: tensor '%s' appears twice (with and without the "
                              "'transformer.' prefix)",
                              st_file_path(file), t->name);
        char have[96], want[96];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, tab[j].ndim, tab[j].shape);
        if (strcmp(have, want))
            return weft_error("%s: tensor '%s' has shape %s but config.json implies %s",
                              st_file_path(file), t->name, have, want);
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
            return weft_error("%s: tensor '%s' is %s; weft reads F32, F16, BF16 and F64",
                              st_file_path(file), t->name, st_dtype_name(t->dtype));
        found[j] = (found_t){file, t};
    }
    for (size_t j = 0; j < n; j++)
        if (!found[j].t)
            return weft_error("tensor '%s' %s is missing from the checkpoint", tab[j].hf,
                              c->family == HF_GPT2 ? "(with or without 'transformer.')" : "");
    if (head) { /* a tied head saved anyway: it must be the embedding */
        const found_t *e = &found[0];
        if (head->dtype != e->t->dtype || head->end - head->begin != e->t->end - e->t->begin ||
            memcmp(st_file_data(head_file, head), st_file_data(e->file, e->t),
                   head->end - head->begin))
            return weft_error("%s: lm_head.weight differs from %s, but %s ties the head to the "
                              "embedding",
                              st_file_path(head_file), tab[0].hf,
                              c->family == HF_GPT2 ? "GPT-2" : "config.json");
    }
    return 0;
}

static int write_attrs(hid_t f, const hf_config_t *c, const char *tokenizer)
{
    return hf_config_write_attrs(f, c) < 0 ? -1 : h5_attr_write_str(f, "tokenizer", tokenizer);
}

static int import_into(hid_t f, const hf_config_t *c, const hf_tensor_t *tab, size_t n,
                       const found_t *found, const tok_bundle_t *tok)
{
    if (write_attrs(f, c, tok->present ? "bpe" : c->tokenizer) < 0) return -1;
    if (tok->present) {
        char hex[65];
        tok_sha256(tok, hex);
        if (h5_attr_write_str(f, "tokenizer_sha256", hex) < 0) return -1;
    }
    /* One buffer, the size of the largest tensor, reused: its pages are
     * faulted in once, not once per tensor. */
    uint64_t biggest = 1;
    for (size_t j = 0; j < n; j++)
        if (found[j].t->numel > biggest) biggest = found[j].t->numel;
    float *buf = malloc(biggest * sizeof *buf);
    if (!buf)
        return weft_error("out of memory for a tensor of %llu values", (unsigned long long)biggest);
    /* The output's writeback starts as each tensor is written, so the disk
     * works while the next one converts and the closing fsync finds little
     * left to do; what was written two tensors ago is waited for and its
     * pages given back, so the page cache reuses them rather than taking
     * fresh memory for all of the output (HDF5's sec2 driver: the handle is
     * the file descriptor). */
    int *fdp = NULL;
    off_t done[2] = {0, 0};
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, (void **)&fdp) < 0) fdp = NULL;
    for (size_t j = 0; j < n; j++) {
        const st_tensor_t *t = found[j].t;
        int rc = st_file_read_f32(found[j].file, t, buf);
        char path[160];
        snprintf(path, sizeof path, "/%s", tab[j].h5);
        hsize_t dims[2] = {tab[j].shape[0], tab[j].shape[1]};
        if (rc == 0) rc = h5_write_f32(f, path, tab[j].ndim, dims, buf);
        if (rc < 0) {
            free(buf);
            return -1;
        }
        struct stat fst;
        if (fdp && fstat(*fdp, &fst) == 0) {
            sync_file_range(*fdp, 0, 0, SYNC_FILE_RANGE_WRITE);
            if (done[0] > 0 && sync_file_range(*fdp, 0, done[0],
                                               SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                   SYNC_FILE_RANGE_WAIT_AFTER) == 0)
                posix_fadvise(*fdp, 0, done[0], POSIX_FADV_DONTNEED);
            done[0] = done[1];
            done[1] = fst.st_size;
        }
    }
    free(buf);
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/tokenizer/%s", tok_files[i]);
        if (tok->data[i] && write_u8(f, path, tok->data[i], tok->len[i]) < 0) return -1;
    }
    return 0;
}

int hf_import(const char *dir, const char *out, uint64_t *in_bytes)
{
    struct stat st;
    if (stat(dir, &st) < 0) return weft_error("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        h5_quiet();
        if (H5Fis_hdf5(dir) > 0)
            return weft_error("%s is an HDF5 file, not a Hugging Face folder: weft import reads "
                              "a folder; 'weft export %s -o DIR' goes the other way",
                              dir, dir);
        return weft_error("%s is not a folder: weft import reads a Hugging Face model folder "
                          "(config.json, model.safetensors)",
                          dir);
    }
    hf_config_t c;
    if (hf_config_read(dir, &c) < 0) return -1;
    st_checkpoint_t *ck = st_checkpoint_open(dir);
    if (!ck) return -1;
    hf_tensor_t *tab = NULL;
    found_t *found = NULL;
    tok_bundle_t tok = {0};
    size_t n = 0;
    int rc = -1;
    char tmp[4096];
    hid_t f = -1;
    if (hf_tensor_table(&c, &tab, &n) < 0) goto out;
    if (!(found = calloc(n, sizeof *found))) {
        weft_error("out of memory");
        goto out;
    }
    if (match_tensors(&c, ck, tab, n, found) < 0 || tok_read_dir(dir, &tok) < 0) goto out;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
        weft_error("%s: path too long", out);
        goto out;
    }
    h5_quiet();
    if ((f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        weft_error("%s: cannot create the file (does its folder exist?)", tmp);
        goto out;
    }
    rc = import_into(f, &c, tab, n, found, &tok);
    if (H5Fclose(f) < 0 && rc == 0) rc = weft_error("%s: cannot finish writing", tmp);
    if (rc == 0 && weft_fsync_path(tmp) < 0) rc = -1;
    if (rc == 0 && weft_rename_durable(tmp, out) < 0) rc = -1;
    if (rc < 0) unlink(tmp);
    if (rc == 0 && in_bytes) *in_bytes = st_checkpoint_bytes(ck);
out:
    tok_free(&tok);
    free(found);
    free(tab);
    st_checkpoint_close(&ck);
    return rc;
}

/* ---- export ---- */

static int write_small_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096], tmp[4104];
    if (weft_path_join(path, sizeof path, dir, name) < 0) return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return weft_error("%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            close(fd);
            unlink(tmp);
            return weft_error("%s: cannot write: %s", tmp, strerror(errno));
        }
        p += k;
        left -= (size_t)k;
    }
    if (fsync(fd) < 0 || close(fd) < 0 || weft_rename_durable(tmp, path) < 0) {
        unlink(tmp);
        return weft_error("%s: cannot finish writing", path);
    }
    return 0;
}

static json_t *config_json(const hf_config_t *c, int bf16)
{
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", hf_family_architecture(c->family)));
    static const char *types[] = {"gpt2", "llama", "qwen2", "mistral"};
    json_object_set_new(o, "model_type", json_string(types[c->family]));
    if (c->family == HF_GPT2) {
        json_object_set_new(o, "n_layer", json_integer(c->n_layer));
        json_object_set_new(o, "n_head", json_integer(c->n_head));
        json_object_set_new(o, "n_embd", json_integer(c->n_embd));
        json_object_set_new(o, "n_positions", json_integer(c->n_ctx));
        json_object_set_new(o, "n_ctx", json_integer(c->n_ctx));
        json_object_set_new(o, "n_inner", json_null());
        json_object_set_new(o, "activation_function", json_string("gelu_new"));
        json_object_set_new(o, "layer_norm_epsilon", json_real(1e-5));
        json_object_set_new(o, "resid_pdrop", json_real(0.0));
        json_object_set_new(o, "embd_pdrop", json_real(0.0));
        json_object_set_new(o, "attn_pdrop", json_real(0.0));
        json_object_set_new(o, "tie_word_embeddings", json_true());
    } else {
        json_object_set_new(o, "hidden_size", json_integer(c->n_embd));
        json_object_set_new(o, "intermediate_size", json_integer(c->n_inner));
        json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layer));
        json_object_set_new(o, "num_attention_heads", json_integer(c->n_head));
        json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_head));
        json_object_set_new(o, "head_dim", json_integer(c->head_dim));
        json_object_set_new(o, "max_position_embeddings", json_integer(c->n_ctx));
        json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
        json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
        json_t *rs = json_null();
        if (c->rope_scaling_type[0]) {
            rs = json_pack("{s:s, s:f}", "rope_type", c->rope_scaling_type, "factor",
                           c->rope_scaling_factor);
            if (!strcmp(c->rope_scaling_type, "llama3")) {
                json_object_set_new(rs, "low_freq_factor", json_real(c->rope_low_freq_factor));
                json_object_set_new(rs, "high_freq_factor", json_real(c->rope_high_freq_factor));
                json_object_set_new(rs, "original_max_position_embeddings",
                                    json_integer(c->rope_original_max_position));
            }
        }
        json_object_set_new(o, "rope_scaling", rs);
        json_object_set_new(o, "hidden_act", json_string("silu"));
        json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
        if (c->family == HF_LLAMA) {
            json_object_set_new(o, "attention_bias", json_boolean(c->qkv_bias));
            json_object_set_new(o, "mlp_bias", json_boolean(c->mlp_bias));
        }
        if (c->family == HF_QWEN2) json_object_set_new(o, "use_sliding_window", json_false());
        if (c->family == HF_MISTRAL)
            json_object_set_new(o, "sliding_window",
                                c->sliding_window ? json_integer(c->sliding_window) : json_null());
        json_object_set_new(o, "attention_dropout", json_real(0.0));
    }
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    if (strcmp(c->tokenizer, "bpe"))
        json_object_set_new(o, "weft_tokenizer", json_string(c->tokenizer));
    return o;
}

static int export_tokenizer(hid_t f, const char *dir)
{
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/tokenizer/%s", tok_files[i]);
        if (!h5_path_exists(f, path)) continue;
        int rank;
        hsize_t dims[8];
        if (h5_dataset_shape(f, path, &rank, dims) < 0) return -1;
        if (rank != 1 || dims[0] > TOKENIZER_MAX)
            return weft_error("dataset %s must be 1-D uint8 of at most %u bytes", path,
                              TOKENIZER_MAX);
        unsigned char *buf = malloc(dims[0] ? dims[0] : 1);
        if (!buf) return weft_error("out of memory");
        hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
        herr_t st = d < 0     ? -1
                    : dims[0] ? H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                              : 0;
        if (d >= 0) H5Dclose(d);
        int rc = st < 0 ? weft_error("cannot read dataset %s", path)
                        : write_small_file(dir, tok_files[i], buf, dims[0]);
        free(buf);
        if (rc < 0) return -1;
    }
    return 0;
}

static int export_from(hid_t f, const char *dir, int bf16)
{
    hf_config_t c;
    hf_tensor_t *tab = NULL;
    st_spec_t *specs = NULL;
    float *buf = NULL;
    st_writer_t *w = NULL;
    size_t n = 0, biggest = 1;
    int rc = -1;
    if (hf_config_from_model(f, &c) < 0 || hf_config_exportable(&c) < 0 ||
        hf_tensor_table(&c, &tab, &n) < 0)
        goto out;
    if (!(specs = calloc(n, sizeof *specs))) {
        weft_error("out of memory");
        goto out;
    }
    for (size_t j = 0; j < n; j++) {
        specs[j].name = tab[j].hf;
        specs[j].ndim = tab[j].ndim;
        specs[j].shape[0] = tab[j].shape[0];
        specs[j].shape[1] = tab[j].shape[1];
        if (tab[j].shape[0] * tab[j].shape[1] > biggest)
            biggest = tab[j].shape[0] * tab[j].shape[1];
    }
    if (weft_mkdir_p(dir, 0755) < 0 || !(buf = malloc(biggest * sizeof *buf))) {
        if (!buf) weft_error("out of memory");
        goto out;
    }
    char path[4096];
    if (weft_path_join(path, sizeof path, dir, "model.safetensors") < 0 ||
        !(w = st_writer_new(path, specs, n, bf16 ? ST_BF16 : ST_F32)))
        goto out;
    for (size_t j = 0; j < n; j++) {
        char ds[160];
        hsize_t dims[2] = {tab[j].shape[0], tab[j].shape[1]};
        snprintf(ds, sizeof ds, "/%s", tab[j].h5);
        if (h5_read_f32(f, ds, tab[j].ndim, dims, buf) < 0 || st_writer_put(w, buf) < 0) goto out;
    }
    if (st_writer_finish(&w) < 0) goto out;
    json_t *cfg = config_json(&c, bf16);
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(cfg);
    rc = text ? write_small_file(dir, "config.json", text, strlen(text))
              : weft_error("out of memory");
    free(text);
    if (rc == 0) rc = export_tokenizer(f, dir);
out:
    st_writer_abandon(&w);
    free(buf);
    free(specs);
    free(tab);
    return rc;
}

int hf_export(const char *model, const char *dir, int bf16)
{
    h5_quiet();
    if (access(model, R_OK) != 0) return weft_error("%s: cannot read the model file", model);
    struct stat st;
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode))
        return weft_error("%s is a folder: weft export reads a weft-model file; 'weft import %s "
                          "-o MODEL.h5' goes the other way",
                          model, model);
    hid_t f = H5Fis_hdf5(model) > 0 ? H5Fopen(model, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (f < 0) return weft_error("%s: not an HDF5 file, so not a weft-model file", model);
    int rc = export_from(f, dir, bf16);
    H5Fclose(f);
    return rc < 0 ? weft_error_prefix("%s", model) : 0;
}
