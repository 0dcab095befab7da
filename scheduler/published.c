/* published.c: weftd's side of published versions (see published.h). */
#include "scheduler/published.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "scheduler/tenant_path.h"
#include "common/versions.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* dir as a descriptor: through the link-free walk inside tenants_dir. */
static int open_published(const char *tenants_dir, const char *dir)
{
    size_t n = strlen(tenants_dir);
    if (n && !strncmp(dir, tenants_dir, n) && dir[n] == '/')
        return tenant_open_dir(tenants_dir, dir);
    return versions_open(dir);
}

int published_resolve(spec_t *unit, const char *tenants_dir)
{
    if (unit->mode != SPEC_LORA || unit->ntenants != 1) return 0;
    spec_tenant_t *t = &unit->tenants[0];
    char dir[PATH_MAX], adapter[PATH_MAX + 32];
    if (weft_path_join(dir, sizeof dir, unit->output, t->name) < 0) return -1;
    int dfd = open_published(tenants_dir, dir);
    if (dfd < 0) return -1;
    int n = 0, rc = versions_current(dfd, &n);
    close(dfd);
    if (rc < 0) return weft_error_prefix("%s", dir);
    if (!n) return 0;
    if (snprintf(adapter, sizeof adapter, "%s/v%d/adapter.h5", dir, n) >= (int)sizeof t->baseline)
        return weft_error("%s: path too long", dir);
    size_t len = strlen(adapter) + 1;
    if (!t->baseline[0]) memcpy(t->baseline, adapter, len);
    if (t->train.cont) memcpy(t->init_adapter, adapter, len);
    return n;
}

int published_install(const char *tenants_dir, const char *staged, const char *dst_dir,
                      int keep_versions, int64_t run, json_t **detail)
{
    char meta[PATH_MAX], tmp[64], out[PATH_MAX + 64], peft[PATH_MAX + 64];
    *detail = NULL;
    if (weft_path_join(meta, sizeof meta, staged, VERSIONS_META) < 0) return -1;
    json_error_t err;
    json_t *v = json_load_file(meta, 0, &err);
    const char *uid = json_string_value(json_object_get(v, "run"));
    if (!v || !uid) {
        json_decref(v);
        return weft_error("%s: not a staged version (%s)", meta, v ? "no \"run\"" : err.text);
    }
    int promoted = json_is_true(json_object_get(v, "promoted"));
    snprintf(tmp, sizeof tmp, "new.run%" PRId64, run);
    int dfd = open_published(tenants_dir, dst_dir);
    int n = 0, cur = 0, rc = dfd < 0 ? -1 : 0;
    if (rc == 0) {
        int found = versions_find_run(dfd, uid, &n);
        rc = found < 0 ? -1 : found ? 0 : versions_copy_in(dfd, tmp, staged);
        if (rc == 0 && !found) rc = versions_install(dfd, tmp, uid, &n);
        if (rc < 0) versions_remove(dfd, tmp);
    }
    if (rc == 0 && promoted) rc = versions_promote(dfd, n);
    if (rc == 0) rc = versions_prune(dfd, keep_versions);
    if (rc == 0) rc = versions_current(dfd, &cur);
    if (dfd >= 0) close(dfd);
    if (rc < 0) {
        json_decref(v);
        return weft_error_prefix("%s", dst_dir);
    }
    snprintf(out, sizeof out, "%s/v%d/adapter.h5", dst_dir, n);
    snprintf(peft, sizeof peft, "%s/v%d/peft", dst_dir, n);
    char sp[PATH_MAX];
    int has_peft = weft_path_join(sp, sizeof sp, staged, "peft") == 0 && access(sp, F_OK) == 0;
    json_t *base = json_object_get(v, "baseline");
    *detail = json_pack(
        "{s:s, s:i, s:b, s:O, s:O, s:i, s:O}", "output", out, "version", n, "promoted", promoted,
        "val_loss", json_object_get(v, "val_loss") ? json_object_get(v, "val_loss") : json_null(),
        "baseline_val_loss",
        json_object_get(base, "val_loss") ? json_object_get(base, "val_loss") : json_null(),
        "current", cur, "best_step",
        json_object_get(v, "step") ? json_object_get(v, "step") : json_null());
    if (*detail && has_peft) json_object_set_new(*detail, "peft", json_string(peft));
    const char *why = json_string_value(json_object_get(v, "why"));
    if (*detail && why) json_object_set_new(*detail, "why", json_string(why));
    json_decref(v);
    return *detail ? 0 : weft_error("out of memory");
}
