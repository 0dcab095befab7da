/* publish.h: what a run publishes for a tenant (DESIGN.md "Published
 * outputs"): a version folder staged at <output>/<tenant>/new/ (adapter.h5,
 * peft/, metrics.jsonl, version.json) and, without a coordinator, installed
 * as <output>/<tenant>/v<N>/, promoted to current when its validation loss
 * is no worse than the current version's on the same /val, and the old ones
 * pruned. weftd installs the staged folder itself (scheduler/publish.c). */
#ifndef WEFT_PUBLISH_H
#define WEFT_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *tenant;
    const char *run_uid;        /* the run that made it: a repeated install is a no-op */
    const char *keep;           /* "best" | "last" */
    int64_t step;               /* the step the adapter comes from */
    int64_t steps;              /* steps the tenant trained */
    double val_loss;            /* the adapter's validation loss on this run's /val */
    const char *baseline;       /* the current version's adapter it was compared with, or "" */
    double baseline_val_loss;   /* its validation loss on the same windows (NaN: none) */
    const char *baseline_error; /* why it could not be evaluated, or "" */
    int always;                 /* promote = "always" */
    int promoted;               /* publish_decide's verdict */
    char why[256];
} publish_info_t;

/* Sets info->promoted and info->why: promoted when promote = "always", when
 * there is no current version (or it could not be evaluated), or when the
 * new validation loss is no worse than the current one's. */
void publish_decide(publish_info_t *info);
/* Completes the folder dir/new/ that holds adapter.h5: peft/ (a warning when
 * it cannot be made), metrics.jsonl (the tenant's lines of the run's
 * metrics file), version.json. */
int publish_stage(const char *dir, const char *model, const char *metrics,
                  const publish_info_t *info);
/* dir/new/ as the next version of dir (or the one this run made already),
 * then current and the links when promoted, then all but keep_versions
 * versions removed (never the current one). *version: its N. */
int publish_install(const char *dir, const publish_info_t *info, int keep_versions, int *version);
/* The adapter of dir's current version into adapter: 1, or 0 when there is
 * none (no folder, no current); -1 when current is broken. */
int publish_current(const char *dir, char *adapter, size_t size, int *version);

#endif
