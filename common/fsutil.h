/* fsutil.h: durable file operations: fsync a file or folder, atomic
 * rename-into-place, mkdir -p, reading a small file whole. */
#ifndef WEFT_FSUTIL_H
#define WEFT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

int weft_fsync_path(const char *path);
/* fsync the folder that holds path (its parent). */
int weft_fsync_parent(const char *path);
/* rename(from, to) then fsync to's parent folder. */
int weft_rename_durable(const char *from, const char *to);
/* mkdir -p with the given mode for folders it creates. */
int weft_mkdir_p(const char *path, mode_t mode);
/* rm -r of a folder this program made (does not follow symlinks). */
int weft_rm_rf(const char *path);
/* Reads a whole file (up to maxbytes) into a malloc'ed NUL-terminated buffer. */
char *weft_read_file(const char *path, size_t maxbytes, size_t *len);
/* buf = "a/b"; -1 with weft_error when it does not fit. */
int weft_path_join(char *buf, size_t bufsize, const char *a, const char *b);
/* Parent folder of path into out ("." when path has no slash). */
void weft_dirname(const char *path, char *out, size_t outsize);

#endif
