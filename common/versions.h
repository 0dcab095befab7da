/* versions.h: a tenant's published versions in one folder (DESIGN.md
 * "Published outputs"): v<N>/ per run, never overwritten; `current`, a
 * symlink to the promoted v<N> replaced atomically; `adapter.h5` and `peft`,
 * symlinks through current, for readers of the one-adapter layout. Every
 * call works through a descriptor of that folder and follows no link in it. */
#ifndef WEFT_VERSIONS_H
#define WEFT_VERSIONS_H

#define VERSIONS_META "version.json" /* inside each v<N>/: run, losses, promotion */

/* An ordinary folder path (made, mode 0755, when missing) as a descriptor. */
int versions_open(const char *dir);
/* The N that `current` names: 0 when there is no current; -1 with an error
 * when it is not a symlink to an existing v<N>/ folder. */
int versions_current(int dfd, int *n);
/* The version whose version.json says "run": run. 1 with *n, 0 none. */
int versions_find_run(int dfd, const char *run, int *n);
/* The staged folder (a name inside dfd: files and folders, no links) as the
 * next version v<max+1>: every file and the folders fsynced, renamed, dfd
 * fsynced. When run has published a version already (a repeated DONE, a
 * resumed run), the staged folder is removed and *n is that version. */
int versions_install(int dfd, const char *staged, const char *run, int *n);
/* current -> v<n>, adapter.h5 -> current/adapter.h5, peft -> current/peft,
 * each through a temporary link renamed into place. */
int versions_promote(int dfd, int n);
/* Removes every version but the newest `keep` and the current one. */
int versions_prune(int dfd, int keep);
/* Copies the folder src (regular files and folders, one level of each deep
 * or more; links refused) into dfd/name, made afresh. Hard links where the
 * file system allows. */
int versions_copy_in(int dfd, const char *name, const char *src);
/* rm -r of dfd/name, following no link; absent is not an error. */
int versions_remove(int dfd, const char *name);

#endif
