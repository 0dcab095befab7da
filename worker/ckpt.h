/* ckpt.h: atomic checkpoint folders for a run. A checkpoint is written into
 * ckpt-<step>.tmp/, every file fsynced, a MANIFEST (sizes, SHA-256) written
 * last, the folder renamed to ckpt-<step>/ and its parent fsynced. Readers
 * take the newest checkpoint whose manifest verifies and skip broken ones. */
#ifndef WEFT_CKPT_H
#define WEFT_CKPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_writer ckpt_writer_t;

/* Starts checkpoint `step` in run_dir (created if missing). A stale
 * ckpt-<step>.tmp/ from an earlier crash is removed first. NULL on error. */
ckpt_writer_t *ckpt_writer_new(const char *run_dir, int64_t step);
/* Path of a file named `name` inside the checkpoint being written; the caller
 * creates it (HDF5 or otherwise) and closes it before commit. */
int ckpt_writer_path(ckpt_writer_t *self, const char *name, char *buf, size_t bufsize);
/* Seals the checkpoint: fsync each file, write and fsync MANIFEST, rename
 * into place, fsync the run folder, then delete all but the newest `keep`
 * committed checkpoints (keep >= 1). Destroys the writer either way. An
 * existing committed ckpt-<step>/ is never overwritten (error). */
int ckpt_writer_commit(ckpt_writer_t **self_p, int keep);
/* Abandons the checkpoint: removes the .tmp folder, destroys the writer. */
void ckpt_writer_destroy(ckpt_writer_t **self_p);

/* Checks a committed checkpoint folder against its MANIFEST (every listed
 * file present with its size and SHA-256, no manifest damage). 0 or -1. */
int ckpt_verify(const char *ckpt_dir);
/* Finds the newest checkpoint in run_dir that verifies, warning about each
 * newer one skipped. Returns 1 and fills dir/step when found, 0 when there is
 * none (or no run_dir), -1 on an I/O error listing run_dir. */
int ckpt_find_latest(const char *run_dir, char *dir, size_t dirsize, int64_t *step);

#endif
