/* publish.c: a tenant's version folder, staged and installed (publish.h). */
#include "worker/publish.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "model/peft.h"
#include "common/versions.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void publish_decide(publish_info_t *info)
{
    if (info->always) {
        info->promoted = 1;
        snprintf(info->why, sizeof info->why, "promote = \"always\"");
    } else if (!info->baseline[0]) {
        info->promoted = 1;
        snprintf(info->why, sizeof info->why, "no current version");
    } else if (info->baseline_error[0]) {
        info->promoted = 1;
        snprintf(info->why, sizeof info->why, "the current version could not be evaluated: %.180s",
                 info->baseline_error);
    } else if (info->val_loss > info->baseline_val_loss) {
        info->promoted = 0;
        snprintf(info->why, sizeof info->why,
                 "validation loss %.6g is worse than the current version's %.6g", info->val_loss,
                 info->baseline_val_loss);
    } else {
        info->promoted = 1;
        snprintf(info->why, sizeof info->why,
                 "validation loss %.6g is no worse than the current version's %.6g", info->val_loss,
                 info->baseline_val_loss);
    }
}

static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* The tenant's lines of the run's metrics.jsonl into out. */
static int tenant_metrics(const char *metrics, const char *tenant, const char *out)
{
    FILE *in = fopen(metrics, "r");
    FILE *o = fopen(out, "w");
    if (!o) {
        if (in) fclose(in);
        return weft_error("cannot create %s: %s", out, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (in && (n = getline(&line, &cap, in)) > 0) {
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "tenant"));
        if (t && !strcmp(t, tenant)) fwrite(line, 1, (size_t)n, o);
        json_decref(j);
    }
    free(line);
    if (in) fclose(in);
    int bad = ferror(o);
    if (fclose(o) != 0 || bad)
        return weft_error("cannot write %s: %s", out, strerror(errno ? errno : EIO));
    return 0;
}

int publish_stage(const char *dir, const char *model, const char *metrics,
                  const publish_info_t *info)
{
    char nd[PATH_MAX], adapter[PATH_MAX], peft[PATH_MAX], mpath[PATH_MAX], vpath[PATH_MAX];
    if (weft_path_join(nd, sizeof nd, dir, "new") < 0 ||
        weft_path_join(adapter, sizeof adapter, nd, "adapter.h5") < 0 ||
        weft_path_join(peft, sizeof peft, nd, "peft") < 0 ||
        weft_path_join(mpath, sizeof mpath, nd, "metrics.jsonl") < 0 ||
        weft_path_join(vpath, sizeof vpath, nd, VERSIONS_META) < 0)
        return -1;
    weft_rm_rf(peft);
    if (peft_export(adapter, peft, 0, model) < 0) {
        weft_warn("tenant %s: no PEFT copy: %s", info->tenant, weft_last_error());
        weft_rm_rf(peft);
    }
    if (tenant_metrics(metrics, info->tenant, mpath) < 0) return -1;
    json_t *v =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:b, s:s}", "run", info->run_uid, "tenant",
                  info->tenant, "keep", info->keep, "step", (json_int_t)info->step, "steps",
                  (json_int_t)info->steps, "val_loss", real_or_null(info->val_loss), "promote",
                  info->always ? "always" : "better", "promoted", info->promoted, "why", info->why);
    if (info->baseline[0])
        json_object_set_new(v, "baseline",
                            json_pack("{s:s, s:o, s:s}", "adapter", info->baseline, "val_loss",
                                      real_or_null(info->baseline_val_loss), "error",
                                      info->baseline_error));
    else
        json_object_set_new(v, "baseline", json_null());
    errno = 0;
    int rc = json_dump_file(v, vpath, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(v);
    return rc < 0 ? weft_error("cannot write %s: %s", vpath, strerror(errno ? errno : EIO)) : 0;
}

int publish_install(const char *dir, const publish_info_t *info, int keep_versions, int *version)
{
    int dfd = versions_open(dir);
    if (dfd < 0) return -1;
    int rc = versions_install(dfd, "new", info->run_uid, version);
    if (rc == 0 && info->promoted) rc = versions_promote(dfd, *version);
    if (rc == 0) rc = versions_prune(dfd, keep_versions);
    close(dfd);
    return rc < 0 ? weft_error_prefix("%s", dir) : 0;
}

int publish_current(const char *dir, char *adapter, size_t size, int *version)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *version = 0;
    if (dfd < 0) return 0;
    int rc = versions_current(dfd, version);
    close(dfd);
    if (rc < 0) return weft_error_prefix("%s", dir);
    if (!*version) return 0;
    if (snprintf(adapter, size, "%s/v%d/adapter.h5", dir, *version) >= (int)size)
        return weft_error("%s: path too long", dir);
    return 1;
}
