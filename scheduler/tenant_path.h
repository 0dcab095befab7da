/* tenant_path.h: publishing a file inside a tenant's folder without ever
 * following a symlink below it: every folder is opened (or made, 0700) with
 * openat/mkdirat and O_NOFOLLOW from the one above, and the file is written
 * and renamed into place through the last folder's descriptor. */
#ifndef WEFT_TENANT_PATH_H
#define WEFT_TENANT_PATH_H

/* Copies src to dst, where dst is TENANTS/NAME/REST (TENANTS/NAME may be a
 * link the admin made; nothing under it may be): through dst.tmp, fsync,
 * renameat, fsync of the folder. -1 with weft_error() naming dst and the
 * part that is a symlink, "..", or not a folder; nothing is made then. */
int tenant_publish(const char *tenants_dir, const char *src, const char *dst);

/* The folder dir, TENANTS/NAME/REST, opened (and made, 0700, where missing)
 * by the same walk: a descriptor, or -1 with weft_error() as above. */
int tenant_open_dir(const char *tenants_dir, const char *dir);

#endif
