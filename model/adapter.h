/* adapter.h: the `weft-adapter` HDF5 file (docs/FORMATS-adapter.md): one
 * tenant's LoRA matrices with its rank, alpha, targets and the SHA-256 of the
 * backbone it was trained on, checked when it is loaded. */
#ifndef WEFT_ADAPTER_H
#define WEFT_ADAPTER_H

#include "engine/gpt2.h"
#include "engine/lora.h"

#include <hdf5.h>
#include <stdint.h>

#define ADAPTER_FORMAT  "weft-adapter"
#define ADAPTER_VERSION 1

/* What an adapter file says about itself (root attributes, and the shapes
 * its datasets imply). spec.dropout is not stored: it is a training setting
 * (0 after reading). */
typedef struct {
    char tenant[256];
    lora_spec_t spec;
    char base_sha256[65];
    int64_t steps;
    int n_layer, n_embd; /* from the /h/<i> groups and lora_A's width */
} adapter_info_t;

/* Reads and validates the attributes; takes the targeted modules from the
 * datasets present and checks them against `targets`, every block alike,
 * and every shape against r and n_embd. Errors name the file and what to do. */
int adapter_read_info(const char *path, adapter_info_t *info);

/* Loads the adapter at path into tenant k of pack. base_sha256 is the hex
 * SHA-256 of the backbone file at base_path (the caller hashed it once);
 * a different `base_sha256` in the adapter is an error naming both files and
 * both hashes. The pack's tenant must have the file's shape (L, C, r,
 * targets) and scaling (alpha, rsLoRA). info may be NULL. */
int adapter_load(const char *path, const char *base_path, const char *base_sha256,
                 lora_pack_t *pack, int k, adapter_info_t *info);

/* Writes tenant k of pack as a complete adapter file at path, atomically
 * (path.tmp, fsync, rename, folder fsync). tenant, base_sha256 and steps
 * come from info; r, alpha, rsLoRA, targets and seed from the pack. */
int adapter_save(const char *path, lora_pack_t *pack, int k, const adapter_info_t *info);
/* The same from buf, a buffer laid out as the pack's parameters (tenant k's
 * slice is written): a kept copy such as the best adapter so far. */
int adapter_save_from(const char *path, lora_pack_t *pack, int k, const adapter_info_t *info,
                      const float *buf);

/* Writes (or reads) tenant k's slice of one of the pack's flat buffers
 * (params, grads, m or v) as <prefix>/h/<i>/<module>/lora_A and lora_B, the
 * adapter file's dataset names (prefix "" for the root). */
int adapter_write_tensors(hid_t file, const char *prefix, lora_pack_t *pack, int k,
                          const float *buf);
int adapter_read_tensors(hid_t file, const char *prefix, lora_pack_t *pack, int k, float *buf);

/* Loads the adapter at adapter_path (checked against the SHA-256 of the
 * backbone file model_path, which model was loaded from) as a pack of one
 * tenant owning rows [0, rows), and attaches it to model (lora_attach):
 * the backbone frozen, the adapter's gradients computed. NULL on error. */
lora_pack_t *adapter_attach(gpt2_t *model, const char *model_path, const char *adapter_path,
                            size_t rows, adapter_info_t *info);

#endif
