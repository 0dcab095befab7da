/* planner.h: turns the queue into runs. LoRA jobs with equal pack keys
 * (same backbone, seq_len and resources) share a run, pack_size of them
 * training at once; full jobs run alone; the queue is taken in priority
 * order and a run starts only when its ranks fit in the free slots. */
#ifndef WEFT_PLANNER_H
#define WEFT_PLANNER_H

#include "jobs/spec.h"
#include "scheduler/store.h"

typedef struct {
    int64_t jobs[256];
    const char *names[256]; /* the jobs' names, pointing into the queued rows */
    size_t n;
    int ranks;
    int max_attempts;
} plan_run_t;

/* Plans runs from queued jobs (in store_jobs_queued order) into out[0..max).
 * Stops at the first job whose run does not fit the free slots, so a large
 * job is never starved by smaller ones behind it. Returns the count. */
/* The pack key of a LoRA unit (at most 159 characters): the settings its
 * pack-mates must share (spec_pack_key of the unit with the model path left
 * out), then the backbone's architecture ("gpt2", "llama") and content hash
 * (the model file's SHA-256, hex). One backbone named by two paths (a copy,
 * a link) packs together; two backbones at one path (the file replaced
 * between submissions) never do. */
void planner_pack_key(const spec_t *unit, const char *arch, const char *backbone_sha256,
                      char out[160]);

size_t planner_pack(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                    plan_run_t *out, size_t max);

/* Continuous packing: as planner_pack while the free slots can run every
 * queued job of a pack key in runs of pack_size; when they cannot, the runs
 * of that key share all its queued jobs (at most 256 a run, spread evenly),
 * and each worker trains pack_size at once, admitting the others as slots
 * free (resources.pack_size), so no job waits for a whole pack to end. */
size_t planner_pack_refill(const store_job_row_t *queued, size_t nq, int pack_size, int free_slots,
                           plan_run_t *out, size_t max);

#endif
