/* published.h: weftd's side of a tenant's published versions (DESIGN.md
 * "Published outputs", common/versions.h): at launch, a LoRA unit learns its
 * current version (the baseline its new version is judged against, and the
 * start of `continue = true`); when it succeeds, the version folder its
 * worker staged is copied in, installed as v<N> and promoted as the worker
 * judged. Inside HOME/tenants every folder is walked without links
 * (tenant_path.h). */
#ifndef WEFT_PUBLISHED_H
#define WEFT_PUBLISHED_H

#include "jobs/spec.h"

#include <jansson.h>
#include <stdint.h>

/* Sets unit's tenant baseline (unless given) and, with continue = true, its
 * init_adapter to the current version's adapter in <output>/<tenant>.
 * Returns that version's N, 0 when there is none, -1 on an error. */
int published_resolve(spec_t *unit, const char *tenants_dir);
/* Installs the folder staged by run's worker as the next version in
 * dst_dir (or the one this run installed already), promotes it when its
 * version.json says so, keeps keep_versions. *detail: the job's output
 * event (output, peft, version, promoted, val_loss, baseline_val_loss,
 * best_step, current, why). */
int published_install(const char *tenants_dir, const char *staged, const char *dst_dir,
                      int keep_versions, int64_t run, json_t **detail);

#endif
