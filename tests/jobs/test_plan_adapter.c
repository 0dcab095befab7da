/* test_plan_adapter.c: plan_check_adapter against weft-adapter files whose
 * `targets` attribute lists modules as the worker writes them (all-linear
 * resolved to the architecture's modules). */
#include "common/h5util.h"
#include "common/log.h"
#include "jobs/plan.h"
#include "model/modules.h"
#include "tests/check_main.h"

#include <check.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void write_adapter(const char *targets)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert(h5_attr_write_str(f, "format", "weft-adapter") == 0);
    ck_assert(h5_attr_write_i64(f, "r", 8) == 0);
    ck_assert(h5_attr_write_f64(f, "alpha", 16.0) == 0);
    ck_assert(h5_attr_write_i64(f, "use_rslora", 0) == 0);
    ck_assert(h5_attr_write_str(f, "targets", targets) == 0);
    H5Fclose(f);
}

static const char *gpt2_all = "attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj";
static const char *llama_all = "self_attn.q_proj,self_attn.k_proj,self_attn.v_proj,"
                               "self_attn.o_proj,mlp.gate_proj,mlp.up_proj,mlp.down_proj";

START_TEST(all_linear_agrees_with_resolved_list)
{
    spec_lora_t l = {.r = 8, .alpha = 16, .targets = MODULES_ALL_LINEAR};
    plan_model_t gpt2 = {.cfg.arch = ARCH_GPT2}, llama = {.cfg.arch = ARCH_LLAMA};
    write_adapter(gpt2_all);
    ck_assert_int_eq(plan_check_adapter(path, &l, &gpt2), 0);
    ck_assert_int_eq(plan_check_adapter(path, &l, NULL), 0);
    /* GPT-2's modules are not all of a Llama backbone's */
    ck_assert_int_ne(plan_check_adapter(path, &l, &llama), 0);
    write_adapter(llama_all);
    ck_assert_int_eq(plan_check_adapter(path, &l, &llama), 0);
    ck_assert_int_eq(plan_check_adapter(path, &l, NULL), 0);
    ck_assert_int_ne(plan_check_adapter(path, &l, &gpt2), 0);
    /* a part of the modules is not all-linear */
    write_adapter("self_attn.q_proj,self_attn.v_proj");
    ck_assert_int_ne(plan_check_adapter(path, &l, &llama), 0);
    ck_assert_int_ne(plan_check_adapter(path, &l, NULL), 0);
}
END_TEST

START_TEST(lists_compare_as_sets)
{
    spec_lora_t l = {
        .r = 8, .alpha = 16, .targets = MODULE_BIT(LORA_Q_PROJ) | MODULE_BIT(LORA_V_PROJ)};
    plan_model_t llama = {.cfg.arch = ARCH_LLAMA};
    write_adapter("self_attn.q_proj,self_attn.v_proj");
    ck_assert_int_eq(plan_check_adapter(path, &l, &llama), 0);
    write_adapter("self_attn.q_proj");
    ck_assert_int_ne(plan_check_adapter(path, &l, &llama), 0);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "targets"));
    /* an explicit list never agrees with more than it names */
    write_adapter(llama_all);
    ck_assert_int_ne(plan_check_adapter(path, &l, &llama), 0);
}
END_TEST

int main(void)
{
    snprintf(path, sizeof path, "/tmp/weft-plan-adapter-%d.h5", (int)getpid());
    check_test_t tests[] = {CHECK_TEST(all_linear_agrees_with_resolved_list), CHECK_TEST(lists_compare_as_sets)};
    int failed = check_main((check_opts_t){.suite = "plan_adapter", .nofork = 1}, tests, CHECK_NTESTS(tests));
    unlink(path);
    return failed ? 1 : 0;
}
