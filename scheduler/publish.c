/* publish.c: a succeeded job's result, copied where its spec said: a LoRA
 * tenant's version folder (published.h), a full fine-tune's model.h5, or a
 * packed tenant's adapter.h5 with a PEFT folder beside it; each file written
 * through a temporary name, fsync and rename, and inside HOME/tenants
 * without following links (tenant_path.h). */
#include "common/fsutil.h"
#include "common/log.h"
#include "jobs/spec.h"
#include "model/peft.h"
#include "scheduler/published.h"
#include "scheduler/tenant_path.h"
#include "scheduler/weftd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies src to dst through dst.tmp, fsync and rename (a hard link when
 * both sit on one file system). */
static int publish_file(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 8], dir[PATH_MAX];
    weft_dirname(dst, dir, sizeof dir);
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp || weft_mkdir_p(dir, 0700) < 0)
        return -1;
    unlink(tmp);
    if (link(src, tmp) < 0) {
        FILE *in = fopen(src, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
        char buf[1 << 16];
        size_t n;
        int bad = !in || !out;
        while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
        if (in) fclose(in);
        if (out && fclose(out) != 0) bad = 1;
        if (bad) {
            unlink(tmp);
            return weft_error("cannot copy %s to %s", src, tmp);
        }
    }
    if (weft_fsync_path(tmp) < 0 || weft_rename_durable(tmp, dst) < 0) return -1;
    return 0;
}

/* A destination inside HOME/tenants/NAME is written through folder
 * descriptors that follow no link below it (tenant_publish); other
 * destinations are the admin's. */
static int publish_to(const char *src, const char *dst)
{
    size_t n = strlen(server.tenants_dir);
    if (!strncmp(dst, server.tenants_dir, n) && dst[n] == '/')
        return tenant_publish(server.tenants_dir, src, dst);
    return publish_file(src, dst);
}

/* The adapter published at dst, as a PEFT folder beside it (dst's folder
 * /peft), written as peft.tmp and renamed over any earlier one. */
static int publish_peft(const char *dst, const char *model, char *peft, size_t size)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16], old[PATH_MAX + 16];
    weft_dirname(dst, dir, sizeof dir);
    if (snprintf(peft, size, "%s/peft", dir) >= (int)size ||
        snprintf(tmp, sizeof tmp, "%s/peft.tmp", dir) >= (int)sizeof tmp ||
        snprintf(old, sizeof old, "%s/peft.old", dir) >= (int)sizeof old)
        return weft_error("%s: path too long", dir);
    weft_rm_rf(tmp);
    weft_rm_rf(old);
    if (peft_export(dst, tmp, 0, model) < 0) {
        weft_rm_rf(tmp);
        return -1;
    }
    if (access(peft, F_OK) == 0 && rename(peft, old) < 0)
        return weft_error("cannot move the earlier %s aside: %s", peft, strerror(errno));
    if (weft_rename_durable(tmp, peft) < 0) return -1;
    weft_rm_rf(old);
    return 0;
}

/* A succeeded LoRA job's version: the folder its worker staged in
 * <run>/out/<tenant>/new/ becomes <output>/<tenant>/v<N>/, current when the
 * worker judged it no worse than the current one (published.h). */
static int publish_version(const live_run_t *r, int64_t job, const char *name, const spec_t *s)
{
    char staged[PATH_MAX], dst[PATH_MAX];
    if (snprintf(staged, sizeof staged, "%s/%" PRId64 "/out/%s/new", server.runs_dir, r->id,
                 name) >= (int)sizeof staged ||
        snprintf(dst, sizeof dst, "%s/%s", s->output, name) >= (int)sizeof dst)
        return weft_error("output path too long: %s", s->output);
    json_t *d = NULL;
    if (published_install(server.tenants_dir, staged, dst, s->tenants[0].train.keep_versions, r->id,
                          &d) < 0)
        return -1;
    weft_info("run %" PRId64 ": %s: v%d %s", r->id, name,
              (int)json_integer_value(json_object_get(d, "version")),
              json_is_true(json_object_get(d, "promoted")) ? "promoted" : "not promoted");
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    int rc = text ? store_job_event(server.store, job, "output", text) : -1;
    free(text);
    return rc < 0 ? -2 : 0;
}

/* A succeeded job's output goes where its spec said: <output>/<tenant>/
 * v<N>/ (lora, publish_version), or <output>/model.h5 (full). 0 when it is
 * there; -1 with weft_error set when it cannot be (the job has then no
 * result); -2 when its output event could not be stored. */
int publish_result(const live_run_t *r, int64_t job, const char *name, const json_t *done)
{
    store_job_row_t row;
    if (store_job_get(server.store, job, &row) < 0) return -1;
    spec_t *s = spec_parse(row.unit, strlen(row.unit), "/", row.name, NULL, NULL);
    store_job_row_free(&row);
    if (!s) return -1;
    if (s->mode == SPEC_LORA && s->ntenants == 1) {
        int rc = publish_version(r, job, name, s);
        spec_destroy(&s);
        return rc;
    }
    char src[PATH_MAX], dst[PATH_MAX];
    int lora = s->mode == SPEC_LORA;
    int ok = snprintf(src, sizeof src, "%s/%" PRId64 "/out/%s%s", server.runs_dir, r->id,
                      lora ? name : "", lora ? "/adapter.h5" : "model.h5") < (int)sizeof src &&
             snprintf(dst, sizeof dst, "%s/%s%s", s->output, lora ? name : "",
                      lora ? "/adapter.h5" : "model.h5") < (int)sizeof dst;
    if (!ok) weft_error("output path too long: %s", s->output);
    char model[PATH_MAX];
    snprintf(model, sizeof model, "%s", s->model);
    spec_destroy(&s);
    if (ok && publish_to(src, dst) < 0) ok = 0;
    if (!ok) return -1;
    char detail[2 * PATH_MAX + 64], peft[PATH_MAX + 8] = "";
    if (lora && publish_peft(dst, model, peft, sizeof peft) < 0) {
        weft_warn("run %" PRId64 ": %s: no PEFT copy: %s", r->id, name, weft_last_error());
        peft[0] = 0;
    }
    json_t *d = json_pack("{s:s}", "output", dst);
    if (json_is_integer(json_object_get(done, "best_step")))
        json_object_set(d, "best_step", json_object_get(done, "best_step"));
    if (peft[0]) json_object_set_new(d, "peft", json_string(peft));
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    snprintf(detail, sizeof detail, "%s", text ? text : "{}");
    free(text);
    return store_job_event(server.store, job, "output", detail) < 0 ? -2 : 0;
}
