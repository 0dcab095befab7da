/* test_modules.c: the LoRA module table (model/modules.h): target lists
 * parsed and written, the "did you mean" of an unknown name, each module's
 * names and groups, and the architectures' modules as the engine has them. */
#include "common/log.h"
#include "engine/lora_train.h"
#include "model/modules.h"
#include "model/peft.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static void expect_error(const char *list, const char *phrase)
{
    unsigned mask;
    ck_assert_msg(modules_parse(list, &mask) == -1, "accepted '%s'", list);
    ck_assert_msg(strstr(weft_last_error(), phrase), "'%s': '%s' lacks '%s'", list,
                  weft_last_error(), phrase);
}

START_TEST(lists_parse_and_format)
{
    unsigned mask;
    char buf[128];
    ck_assert_int_eq(modules_parse("attn.c_attn,mlp.c_fc", &mask), 0);
    ck_assert_uint_eq(mask, MODULE_BIT(LORA_ATTN_C_ATTN) | MODULE_BIT(LORA_MLP_C_FC));
    ck_assert_int_eq(modules_parse(" mlp.c_proj , attn.c_proj", &mask), 0);
    ck_assert_uint_eq(mask, MODULE_BIT(LORA_MLP_C_PROJ) | MODULE_BIT(LORA_ATTN_C_PROJ));
    ck_assert_int_eq(modules_format(mask, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "attn.c_proj,mlp.c_proj");
    ck_assert_int_eq(modules_format(MODULES_GPT2, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj");
    ck_assert_int_eq(modules_format(MODULES_GPT2, buf, 10), -1);
    ck_assert_int_eq(modules_parse("all-linear", &mask), 0);
    ck_assert_uint_eq(mask, MODULES_ALL_LINEAR);
    ck_assert_int_eq(modules_format(mask, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "all-linear");
    /* every list written reads back as itself */
    for (unsigned m = 1; m < (1u << LORA_NMODULES); m += 37) {
        unsigned back;
        ck_assert_int_eq(modules_format(m, buf, sizeof buf), 0);
        ck_assert_int_eq(modules_parse(buf, &back), 0);
        ck_assert_uint_eq(back, m);
    }

    expect_error("attn.q_proj", "unknown module \"attn.q_proj\"");
    expect_error("attn.c_atn", "(did you mean \"attn.c_attn\"?)");
    expect_error("self_attn.q_prj", "(did you mean \"self_attn.q_proj\"?)");
    expect_error("all_linear", "(did you mean \"all-linear\"?)");
    expect_error("mlp.c_fc,mlp.c_fc", "module \"mlp.c_fc\" is listed twice");
    expect_error("", "empty LoRA target list");
    expect_error("mlp.c_fc,", "ends with a comma");
    /* a value that is not a string (a job spec's), and a name far from all */
    mask = 0;
    ck_assert_int_eq(modules_add(&mask, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "unknown module (not a string); known: "));
    ck_assert_int_eq(modules_add(&mask, "embeddings"), -1);
    ck_assert_ptr_null(strstr(weft_last_error(), "did you mean"));
}
END_TEST

START_TEST(names_and_groups)
{
    ck_assert_str_eq(module_name(LORA_ATTN_C_ATTN), "attn.c_attn");
    ck_assert_str_eq(module_name(LORA_DOWN_PROJ), "mlp.down_proj");
    ck_assert_str_eq(module_path(LORA_MLP_C_FC), "mlp/c_fc");
    ck_assert_str_eq(module_path(LORA_O_PROJ), "self_attn/o_proj");
    ck_assert_str_eq(module_blocks(LORA_MLP_C_PROJ), "h");
    ck_assert_str_eq(module_blocks(LORA_Q_PROJ), "model/layers");
    ck_assert_str_eq(module_peft_name(LORA_ATTN_C_ATTN), "c_attn");
    ck_assert_str_eq(module_peft_name(LORA_ATTN_C_PROJ), "attn.c_proj");
    ck_assert_str_eq(module_peft_name(LORA_GATE_PROJ), "gate_proj");
    ck_assert_str_eq(module_name(LORA_NMODULES), "?");
    for (int m = 0; m < LORA_NMODULES; m++) {
        /* the group is the name with its dot turned into a slash */
        char p[64];
        snprintf(p, sizeof p, "%s", module_name(m));
        *strchr(p, '.') = '/';
        ck_assert_str_eq(module_path(m), p);
        /* PEFT's spelling is a suffix of the name */
        const char *n = module_name(m), *s = module_peft_name(m);
        ck_assert(strlen(s) <= strlen(n) && !strcmp(n + strlen(n) - strlen(s), s));
    }
    /* a PEFT family's m-th module is the table's */
    ck_assert_int_eq(peft_nmodules(HF_GPT2), 4);
    ck_assert_int_eq(peft_nmodules(HF_QWEN2), 7);
    ck_assert_int_eq(peft_module(HF_GPT2, 3), LORA_MLP_C_PROJ);
    ck_assert_int_eq(peft_module(HF_LLAMA, 0), LORA_Q_PROJ);
    ck_assert_str_eq(peft_module_name(HF_MISTRAL, 6), "mlp.down_proj");
}
END_TEST

/* The architectures' modules are those the engine gives widths for. */
START_TEST(architectures_match_the_engine)
{
    const char *presets[] = {"tiny", "llama-tiny"};
    for (int i = 0; i < 2; i++) {
        gpt2_config_t c;
        ck_assert_int_eq(gpt2_config_preset(presets[i], &c), 0);
        lora_dims_t dims;
        gpt2_lora_dims(&c, &dims);
        ck_assert_uint_eq(modules_of(c.arch), dims.modules);
        unsigned t;
        ck_assert_int_eq(modules_resolve(MODULES_ALL_LINEAR, c.arch, &t), 0);
        ck_assert_uint_eq(t, dims.modules);
    }
    ck_assert_uint_eq(MODULES_GPT2 & MODULES_LLAMA, 0);
    ck_assert_uint_eq(MODULES_GPT2 | MODULES_LLAMA, (1u << LORA_NMODULES) - 1);
    unsigned t = 0;
    ck_assert_int_eq(
        modules_resolve(MODULE_BIT(LORA_Q_PROJ) | MODULE_BIT(LORA_MLP_C_FC), ARCH_GPT2, &t), -1);
    ck_assert_str_eq(weft_last_error(),
                     "LoRA target 'self_attn.q_proj' is not a module of a gpt2 model (choose "
                     "from attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, or all-linear)");
    ck_assert_int_eq(modules_resolve(MODULE_BIT(LORA_V_PROJ), ARCH_LLAMA, &t), 0);
    ck_assert_uint_eq(t, MODULE_BIT(LORA_V_PROJ));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modules");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lists_parse_and_format);
    tcase_add_test(tc, names_and_groups);
    tcase_add_test(tc, architectures_match_the_engine);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
