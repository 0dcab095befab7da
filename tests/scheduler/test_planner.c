/* test_planner.c: packing: pack keys and sizes, full jobs alone, priority
 * order, slots, no starvation of a large job, and the pack key naming the
 * backbone by content and architecture, not by path. */
#include "scheduler/planner.h"
#include "tests/check_main.h"

#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static store_job_row_t row(int64_t id, const char *mode, const char *key, int ranks)
{
    store_job_row_t r;
    memset(&r, 0, sizeof r);
    r.id = id;
    snprintf(r.name, sizeof r.name, "job%lld", (long long)id);
    snprintf(r.mode, sizeof r.mode, "%s", mode);
    snprintf(r.pack_key, sizeof r.pack_key, "%s", key);
    r.ranks = ranks;
    r.max_attempts = 3;
    return r;
}

START_TEST(packs_by_key_up_to_size)
{
    store_job_row_t q[10];
    for (int i = 0; i < 10; i++) q[i] = row(i + 1, "lora", i % 2 ? "b" : "a", 1);
    plan_run_t out[8];
    size_t n = planner_pack(q, 10, 4, 8, out, 8);
    ck_assert_uint_eq(n, 4);
    /* a: 1,3,5,7 then b: 2,4,6,8 then a: 9 and b: 10, each alone. */
    ck_assert_uint_eq(out[0].n, 4);
    ck_assert_int_eq(out[0].jobs[0], 1);
    ck_assert_int_eq(out[0].jobs[3], 7);
    ck_assert_uint_eq(out[1].n, 4);
    ck_assert_int_eq(out[1].jobs[0], 2);
    ck_assert_uint_eq(out[2].n, 1);
    ck_assert_int_eq(out[2].jobs[0], 9);
    ck_assert_uint_eq(out[3].n, 1);
    ck_assert_int_eq(out[3].jobs[0], 10);
}
END_TEST

START_TEST(full_jobs_run_alone)
{
    store_job_row_t q[3] = {row(1, "full", "a", 1), row(2, "full", "a", 1), row(3, "lora", "a", 1)};
    plan_run_t out[8];
    size_t n = planner_pack(q, 3, 16, 8, out, 8);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(out[0].n, 1);
    ck_assert_uint_eq(out[1].n, 1);
    ck_assert_uint_eq(out[2].n, 1);
    ck_assert_int_eq(out[2].jobs[0], 3);
}
END_TEST

START_TEST(slots_bound_and_no_starvation)
{
    /* Head needs 4 ranks with 3 free: nothing behind it may jump ahead. */
    store_job_row_t q[3] = {row(1, "full", "a", 4), row(2, "lora", "b", 1), row(3, "lora", "b", 1)};
    plan_run_t out[8];
    ck_assert_uint_eq(planner_pack(q, 3, 16, 3, out, 8), 0);
    ck_assert_uint_eq(planner_pack(q, 3, 16, 5, out, 8), 2);
    ck_assert_int_eq(out[0].ranks, 4);
    ck_assert_uint_eq(out[1].n, 2);
    /* Two 2-rank runs fill 4 slots; a third waits. */
    store_job_row_t p[3] = {row(1, "full", "a", 2), row(2, "full", "a", 2), row(3, "full", "a", 2)};
    ck_assert_uint_eq(planner_pack(p, 3, 16, 4, out, 8), 2);
    ck_assert_uint_eq(planner_pack(p, 3, 16, 4, out, 1), 1);
}
END_TEST

START_TEST(same_name_never_shares_a_run)
{
    store_job_row_t q[3] = {row(1, "lora", "a", 1), row(2, "lora", "a", 1), row(3, "lora", "a", 1)};
    snprintf(q[1].name, sizeof q[1].name, "job1");
    plan_run_t out[8];
    ck_assert_uint_eq(planner_pack(q, 3, 16, 8, out, 8), 2);
    ck_assert_uint_eq(out[0].n, 2);
    ck_assert_int_eq(out[0].jobs[1], 3);
    ck_assert_int_eq(out[1].jobs[0], 2);
}
END_TEST

static spec_t *lora_unit(const char *model, int seq_len)
{
    char text[512];
    snprintf(text, sizeof text,
             "mode = \"lora\"; model = \"%s\"; output = \"out\";\n"
             "train = { steps = 4; batch_size = 2; seq_len = %d; };\n"
             "tenants = ( { name = \"acme\"; data = \"acme.h5\"; } );\n",
             model, seq_len);
    spec_t *s = spec_parse(text, strlen(text), "/base", "unit.cfg", NULL, NULL);
    ck_assert_msg(s != NULL, "spec_parse failed");
    return s;
}

START_TEST(pack_key_is_backbone_content_and_arch)
{
    const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
    spec_t *a = lora_unit("/models/base.h5", 64), *b = lora_unit("/copies/same-bytes.h5", 64);
    spec_t *c = lora_unit("/models/base.h5", 32);
    char ka[160], kb[160], kh[160], kl[160], kc[160];
    planner_pack_key(a, "gpt2", h1, ka);
    planner_pack_key(b, "gpt2", h1, kb);
    planner_pack_key(a, "gpt2", h2, kh);
    planner_pack_key(a, "llama", h1, kl);
    planner_pack_key(c, "gpt2", h1, kc);
    /* one backbone at two paths: one key, and no path inside it */
    ck_assert_str_eq(ka, kb);
    ck_assert_ptr_null(strstr(ka, "base.h5"));
    ck_assert_ptr_nonnull(strstr(ka, h1));
    ck_assert_ptr_nonnull(strstr(kl, ":llama:"));
    /* other bytes at the same path, another architecture, other settings */
    ck_assert_str_ne(ka, kh);
    ck_assert_str_ne(ka, kl);
    ck_assert_str_ne(ka, kc);
    ck_assert_uint_lt(strlen(ka), sizeof((store_job_row_t *)0)->pack_key);
    /* and the planner packs the two paths' jobs into one run */
    store_job_row_t q[3] = {row(1, "lora", ka, 1), row(2, "lora", kb, 1), row(3, "lora", kh, 1)};
    plan_run_t out[8];
    ck_assert_uint_eq(planner_pack(q, 3, 16, 8, out, 8), 2);
    ck_assert_uint_eq(out[0].n, 2);
    ck_assert_int_eq(out[0].jobs[1], 2);
    ck_assert_int_eq(out[1].jobs[0], 3);
    spec_destroy(&a);
    spec_destroy(&b);
    spec_destroy(&c);
}
END_TEST

/* Continuous packing: with slots for every pack, refill plans as before. */
START_TEST(refill_with_room_plans_as_before)
{
    store_job_row_t q[10];
    for (int i = 0; i < 10; i++) q[i] = row(i + 1, "lora", i % 2 ? "b" : "a", 1);
    plan_run_t a[8], b[8];
    size_t n = planner_pack(q, 10, 4, 8, a, 8);
    ck_assert_uint_eq(planner_pack_refill(q, 10, 4, 8, b, 8), n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(a[i].n, b[i].n);
        ck_assert_mem_eq(a[i].jobs, b[i].jobs, a[i].n * sizeof a[i].jobs[0]);
    }
}
END_TEST

/* Fewer slots than packs: the runs of a key take every queued job of it,
 * spread evenly, in priority order; other keys wait for slots. */
START_TEST(refill_takes_the_surplus)
{
    store_job_row_t q[12];
    for (int i = 0; i < 11; i++) q[i] = row(i + 1, "lora", "a", 1);
    q[11] = row(12, "lora", "b", 1);
    plan_run_t out[8];
    ck_assert_uint_eq(planner_pack_refill(q, 12, 4, 1, out, 8), 1);
    ck_assert_uint_eq(out[0].n, 11);
    for (int i = 0; i < 11; i++) ck_assert_int_eq(out[0].jobs[i], i + 1);
    ck_assert_uint_eq(planner_pack_refill(q, 12, 4, 2, out, 8), 2);
    ck_assert_uint_eq(out[0].n, 6);
    ck_assert_uint_eq(out[1].n, 5);
    ck_assert_int_eq(out[1].jobs[0], 7);
    /* Three slots hold the three packs of a: b gets none. */
    ck_assert_uint_eq(planner_pack_refill(q, 12, 4, 3, out, 8), 3);
    ck_assert_uint_eq(out[0].n + out[1].n + out[2].n, 11);
    /* A full job is never packed, refill or not. */
    store_job_row_t f[2] = {row(1, "full", "a", 1), row(2, "full", "a", 1)};
    ck_assert_uint_eq(planner_pack_refill(f, 2, 4, 1, out, 8), 1);
    ck_assert_uint_eq(out[0].n, 1);
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(packs_by_key_up_to_size),
                            CHECK_TEST(full_jobs_run_alone),
                            CHECK_TEST(slots_bound_and_no_starvation),
                            CHECK_TEST(same_name_never_shares_a_run),
                            CHECK_TEST(pack_key_is_backbone_content_and_arch),
                            CHECK_TEST(refill_with_room_plans_as_before),
                            CHECK_TEST(refill_takes_the_surplus)};
    int failed = check_main((check_opts_t){.suite = "planner"}, tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
