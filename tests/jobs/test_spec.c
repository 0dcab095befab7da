/* test_spec.c: the job-spec library: defaults, types, paths, tenant
 * overrides, canonical write-back round trips, sweep expansion and trial ids,
 * composed runs, resume and pack keys, limits, and every malformed spec. */
#include "jobs/spec.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "model/modules.h"
#include "tests/check_main.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *LORA_MIN = "mode = \"lora\";\n"
                              "model = \"m.h5\";\n"
                              "tenants = ( { name = \"a\"; data = \"a.h5\"; } );\n";

static spec_t *parse_ok(const char *text)
{
    spec_diag_t *d = spec_diag_new();
    spec_t *s = spec_parse(text, strlen(text), "/base", "t.cfg", NULL, d);
    if (!s)
        for (int i = 0; i < spec_diag_count(d); i++) fprintf(stderr, "%s\n", spec_diag_get(d, i));
    spec_diag_destroy(&d);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The first problem of a text expected to fail. */
static char *parse_fail(const char *text, const spec_limits_t *lim)
{
    spec_diag_t *d = spec_diag_new();
    spec_t *s = spec_parse(text, strlen(text), "/base", "t.cfg", lim, d);
    ck_assert_ptr_null(s);
    ck_assert_int_ge(spec_diag_count(d), 1);
    char *first = strdup(spec_diag_get(d, 0));
    ck_assert_str_eq(first, weft_last_error());
    spec_diag_destroy(&d);
    return first;
}

/* parse(write(s)) equals s, and writing again gives the same text. */
static void assert_round_trip(const spec_t *s)
{
    char *text = spec_write(s);
    ck_assert_ptr_nonnull(text);
    spec_diag_t *d = spec_diag_new();
    spec_t *back = spec_parse(text, strlen(text), "/elsewhere", "canonical.cfg", NULL, d);
    if (!back) {
        fprintf(stderr, "%s\n", text);
        for (int i = 0; i < spec_diag_count(d); i++) fprintf(stderr, "%s\n", spec_diag_get(d, i));
    }
    ck_assert_ptr_nonnull(back);
    ck_assert(spec_equal(s, back));
    char *again = spec_write(back);
    ck_assert_str_eq(text, again);
    free(again);
    free(text);
    spec_destroy(&back);
    spec_diag_destroy(&d);
}

START_TEST(test_defaults)
{
    spec_t *s = parse_ok(LORA_MIN);
    ck_assert_str_eq(s->name, "t");
    ck_assert_int_eq(s->mode, SPEC_LORA);
    ck_assert_str_eq(s->model, "/base/m.h5");
    ck_assert_str_eq(s->output, "/base/runs/t");
    ck_assert_int_eq(s->train.steps, 1000);
    ck_assert(s->train.epochs == 0);
    ck_assert_int_eq(s->train.batch_size, 8);
    ck_assert_int_eq(s->train.grad_accum, 1);
    ck_assert_int_eq(s->train.seq_len, 128);
    ck_assert(s->train.lr == 3e-4);
    ck_assert(s->train.min_lr == 0);
    ck_assert_int_eq(s->train.schedule, SPEC_COSINE);
    ck_assert_int_eq(s->train.warmup, 0);
    ck_assert(s->train.weight_decay == 0);
    ck_assert(s->train.betas[0] == 0.9 && s->train.betas[1] == 0.999);
    ck_assert(s->train.eps == 1e-8);
    ck_assert(s->train.grad_clip == 1.0);
    ck_assert_int_eq(s->train.seed, 1);
    ck_assert_int_eq(s->train.eval_every, 100);
    ck_assert_int_eq(s->train.eval_windows, 8);
    ck_assert_int_eq(s->train.checkpoint_every, 100);
    ck_assert_int_eq(s->train.keep_checkpoints, 2);
    ck_assert_int_eq(s->train.max_attempts, 3);
    ck_assert_int_eq(s->lora.r, 8);
    ck_assert(s->lora.alpha == 16);
    ck_assert(!s->lora.rslora);
    ck_assert(s->lora.dropout == 0);
    ck_assert_uint_eq(s->lora.targets, MODULE_BIT(LORA_ATTN_C_ATTN));
    ck_assert_int_eq(s->resources.ranks, 1);
    ck_assert_int_eq(s->resources.threads, 1);
    ck_assert_int_eq(s->resources.time_limit, 0);
    ck_assert_int_eq(s->ntenants, 1);
    ck_assert_str_eq(s->tenants[0].data, "/base/a.h5");
    ck_assert_int_eq(s->tenants[0].data_kind, SPEC_DATA_SHARDS);
    ck_assert_str_eq(s->tenants[0].init_adapter, "");
    ck_assert_int_eq(s->sweep.ndims, 0);
    spec_destroy(&s);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_types_and_paths)
{
    const char *text =
        "name = \"x\";\nmode = \"lora\";\nmodel = \"/abs/./m.h5\";\n"
        "output = \"out//o\";\n"
        "train = { lr = 1; weight_decay = 0; seed = 5000000000L; };\n"
        "lora = { alpha = 32; rslora = true; targets = [\"mlp.c_proj\", "
        "\"attn.c_attn\"]; };\n"
        "resources = { time_limit = \"1-02:03:04\"; };\n"
        "tenants = ( { name = \"p\"; data = \"d/p.JSONL\"; },\n"
        "            { name = \"q\"; data = \"./q.txt\"; init_adapter = \"a/q.h5\"; },\n"
        "            { name = \"r\"; data = \"r.hdf5\"; } );\n";
    spec_t *s = parse_ok(text);
    ck_assert(s->train.lr == 1.0);
    ck_assert(s->train.weight_decay == 0.0);
    ck_assert_int_eq(s->train.seed, 5000000000LL);
    ck_assert(s->lora.alpha == 32.0);
    ck_assert(s->lora.rslora);
    ck_assert_uint_eq(s->lora.targets, MODULE_BIT(LORA_ATTN_C_ATTN) | MODULE_BIT(LORA_MLP_C_PROJ));
    char tg[64];
    ck_assert_int_eq(modules_format(s->lora.targets, tg, sizeof tg), 0);
    ck_assert_str_eq(tg, "attn.c_attn,mlp.c_proj");
    ck_assert_int_eq(s->resources.time_limit, 86400 + 2 * 3600 + 3 * 60 + 4);
    ck_assert_str_eq(s->model, "/abs/m.h5");
    ck_assert_str_eq(s->output, "/base/out/o");
    ck_assert_str_eq(s->tenants[0].data, "/base/d/p.JSONL");
    ck_assert_int_eq(s->tenants[0].data_kind, SPEC_DATA_JSONL);
    ck_assert_str_eq(s->tenants[1].data, "/base/q.txt");
    ck_assert_int_eq(s->tenants[1].data_kind, SPEC_DATA_TEXT);
    ck_assert_str_eq(s->tenants[1].init_adapter, "/base/a/q.h5");
    ck_assert_int_eq(s->tenants[2].data_kind, SPEC_DATA_SHARDS);
    assert_round_trip(s);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_relative_base)
{
    char cwd[1024], want[1100];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    spec_t *s = spec_parse(LORA_MIN, strlen(LORA_MIN), "sub/dir", "sub/dir/j.cfg", NULL, NULL);
    ck_assert_ptr_nonnull(s);
    snprintf(want, sizeof want, "%s/sub/dir/m.h5", strcmp(cwd, "/") ? cwd : "");
    ck_assert_str_eq(s->model, want);
    ck_assert_str_eq(s->name, "j");
    spec_destroy(&s);
}
END_TEST

START_TEST(test_tenant_overrides)
{
    const char *text =
        "mode = \"lora\";\nmodel = \"m.h5\";\n"
        "train = { steps = 400; lr = 3e-4; warmup = 20; batch_size = 8; seq_len = 64; };\n"
        "lora = { r = 8; alpha = 16.0; dropout = 0.1; };\n"
        "tenants = ( { name = \"a\"; data = \"a.h5\"; },\n"
        "  { name = \"b\"; data = \"b.h5\"; lr = 1e-4; r = 16; targets = [\"mlp.c_fc\"]; },\n"
        "  { name = \"c\"; data = \"c.h5\"; epochs = 2.5; schedule = \"linear\"; seed = 9; "
        "betas = [0.8, 0.9]; rslora = true; } );\n";
    spec_t *s = parse_ok(text);
    const spec_tenant_t *a = &s->tenants[0], *b = &s->tenants[1], *c = &s->tenants[2];
    ck_assert(a->train.lr == 3e-4 && a->lora.r == 8 && a->train.steps == 400);
    ck_assert(b->train.lr == 1e-4 && b->lora.r == 16 && b->lora.alpha == 16.0);
    ck_assert_uint_eq(b->lora.targets, MODULE_BIT(LORA_MLP_C_FC));
    ck_assert(b->lora.dropout == 0.1 && b->train.warmup == 20 && b->train.seq_len == 64);
    ck_assert(c->train.steps == 0 && c->train.epochs == 2.5);
    ck_assert_int_eq(c->train.schedule, SPEC_LINEAR);
    ck_assert_int_eq(c->train.seed, 9);
    ck_assert(c->train.betas[0] == 0.8 && c->lora.rslora);
    /* the spec's own groups stay as written */
    ck_assert(s->train.lr == 3e-4 && s->lora.r == 8 && s->train.steps == 400);
    assert_round_trip(s);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_write_escapes_and_full)
{
    const char *text = "name = \"f\";\nmode = \"full\";\nmodel = \"/m \\\"q\\\" \\\\ x.h5\";\n"
                       "data = \"corpus.txt\";\n"
                       "train = { epochs = 0.1; lr = 0.1; eps = 1e-12; grad_clip = 0.0; "
                       "min_lr = 0.033333333333333333; };\n";
    spec_t *s = parse_ok(text);
    ck_assert_str_eq(s->model, "/m \"q\" \\ x.h5");
    ck_assert(s->train.min_lr == 0.033333333333333333);
    /* a full fine-tune is a run of one tenant: the spec's name, data and groups */
    ck_assert_int_eq(s->ntenants, 1);
    ck_assert_str_eq(s->tenants[0].name, "f");
    ck_assert_str_eq(s->tenants[0].data, "/base/corpus.txt");
    ck_assert_int_eq(s->tenants[0].data_kind, SPEC_DATA_TEXT);
    ck_assert(s->tenants[0].train.min_lr == s->train.min_lr && s->tenants[0].train.lr == 0.1);
    ck_assert_int_eq(s->tenants[0].lora.r, s->lora.r);
    char *out = spec_write(s);
    ck_assert_ptr_nonnull(strstr(out, "epochs = 0.1;"));
    ck_assert_ptr_nonnull(strstr(out, "lr = 0.1;"));
    ck_assert_ptr_null(strstr(out, "tenants"));
    ck_assert_ptr_null(strstr(out, "lora"));
    free(out);
    assert_round_trip(s);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_equal_notices_changes)
{
    spec_t *s = parse_ok(LORA_MIN);
    spec_t *t = spec_dup(s);
    ck_assert(spec_equal(s, t));
    t->tenants[0].lora.dropout = 0.5;
    ck_assert(!spec_equal(s, t));
    spec_destroy(&t);
    t = spec_dup(s);
    t->train.betas[1] = 0.99;
    ck_assert(!spec_equal(s, t));
    spec_destroy(&t);
    spec_destroy(&s);
}
END_TEST

static const char *GRID = "name = \"g\";\nmode = \"lora\";\nmodel = \"m.h5\";\noutput = \"/o\";\n"
                          "tenants = ( { name = \"acme\"; data = \"a.h5\"; } );\n"
                          "sweep = { train = { lr = [1e-4, 3e-4, 1e-3]; };\n"
                          "          lora = { r = [4, 8]; targets = ([\"attn.c_attn\"], "
                          "[\"attn.c_attn\", \"mlp.c_fc\"]); }; };\n";

START_TEST(test_grid_expansion)
{
    spec_t *s = parse_ok(GRID);
    ck_assert_int_eq(s->sweep.ndims, 3);
    assert_round_trip(s);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 12);
    /* last key fastest: targets, then r, then lr */
    ck_assert_str_eq(u[0].param_value[0], "0.0001");
    ck_assert_str_eq(u[0].param_value[1], "4");
    ck_assert_str_eq(u[0].param_value[2], "[\"attn.c_attn\"]");
    ck_assert_str_eq(u[1].param_value[2], "[\"attn.c_attn\", \"mlp.c_fc\"]");
    ck_assert_str_eq(u[2].param_value[1], "8");
    ck_assert_str_eq(u[4].param_value[0], "0.0003");
    ck_assert_str_eq(u[11].param_key[0], "train.lr");
    ck_assert_str_eq(u[11].param_key[1], "lora.r");
    for (int i = 0; i < n; i++) {
        const spec_t *us = u[i].spec;
        ck_assert_int_eq(us->ntenants, 1);
        ck_assert_int_eq(us->sweep.ndims, 0);
        ck_assert_str_eq(us->tenants[0].name, u[i].name);
        ck_assert_str_eq(u[i].trial, u[i].name);
        ck_assert_str_eq(u[i].tenant, "acme");
        ck_assert_int_eq(strncmp(u[i].name, "acme-", 5), 0);
        ck_assert_int_eq((int)strlen(u[i].name), 5 + 8);
        ck_assert(spec_name_ok(u[i].name));
        char want[200];
        snprintf(want, sizeof want, "/o/%s", u[i].name);
        ck_assert_str_eq(u[i].outdir, want);
        for (int j = 0; j < i; j++) ck_assert_str_ne(u[i].name, u[j].name);
        assert_round_trip(us);
    }
    ck_assert(u[4].spec->tenants[0].train.lr == 3e-4);
    ck_assert_int_eq(u[4].spec->tenants[0].lora.r, 4);
    ck_assert_uint_eq(u[5].spec->tenants[0].lora.targets,
                      MODULE_BIT(LORA_ATTN_C_ATTN) | MODULE_BIT(LORA_MLP_C_FC));

    /* ids depend on the values, not on the order they are listed in */
    const char *reordered = "name = \"g\";\nmode = \"lora\";\nmodel = \"m.h5\";\noutput = \"/o\";\n"
                            "tenants = ( { name = \"acme\"; data = \"a.h5\"; } );\n"
                            "sweep = { lora = { targets = ([\"attn.c_attn\", \"mlp.c_fc\"], "
                            "[\"attn.c_attn\"]); r = [8, 4]; };\n"
                            "          train = { lr = [1e-3, 3e-4, 1e-4]; }; };\n";
    spec_t *s2 = parse_ok(reordered);
    spec_unit_t *u2;
    int n2;
    ck_assert_int_eq(spec_expand(s2, NULL, &u2, &n2, NULL), 0);
    ck_assert_int_eq(n2, 12);
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < n2; j++)
            if (!strcmp(u[i].name, u2[j].name)) {
                found++;
                ck_assert(spec_equal(u[i].spec, u2[j].spec));
            }
        ck_assert_int_eq(found, 1);
    }
    spec_units_destroy(&u2, n2);
    spec_destroy(&s2);

    /* another spec name gives other ids */
    spec_t *s3 = spec_dup(s);
    snprintf(s3->name, sizeof s3->name, "h");
    ck_assert_int_eq(spec_expand(s3, NULL, &u2, &n2, NULL), 0);
    for (int i = 0; i < n; i++) ck_assert_str_ne(u[i].name, u2[i].name);
    spec_units_destroy(&u2, n2);
    spec_destroy(&s3);
    spec_units_destroy(&u, n);
    ck_assert_ptr_null(u);
    spec_destroy(&s);
}
END_TEST

static const char *RANDOM =
    "name = \"r\";\nmode = \"full\";\nmodel = \"m.h5\";\ndata = \"d.h5\";\n"
    "output = \"/o\";\ntrain = { steps = 100; };\n"
    "sweep = { method = \"random\"; samples = 40; seed = 7;\n"
    "  train = { lr = { log_uniform = [1e-5, 1e-2]; };\n"
    "            warmup = { uniform = [0, 50]; };\n"
    "            schedule = { choice = [\"cosine\", \"linear\"]; }; }; };\n";

/* A full sweep's units are runs of one tenant too: named after the unit,
 * holding its trial's settings; the resume text stays the whole model's. */
START_TEST(test_full_sweep_units)
{
    spec_t *s = parse_ok("name = \"f\"; mode = \"full\"; model = \"m.h5\"; data = \"c.h5\";\n"
                         "train = { steps = 50; };\n"
                         "sweep = { train = { lr = [1e-4, 3e-4]; }; };\n");
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < n; i++) {
        const spec_t *us = u[i].spec;
        ck_assert_int_eq(us->ntenants, 1);
        ck_assert_str_eq(u[i].tenant, "");
        ck_assert_str_eq(us->name, u[i].name);
        ck_assert_str_eq(us->tenants[0].name, u[i].name);
        ck_assert_str_eq(us->output, u[i].outdir);
        ck_assert_str_eq(us->tenants[0].data, "/base/c.h5");
        ck_assert(us->tenants[0].train.lr == (i ? 3e-4 : 1e-4) &&
                  us->train.lr == us->tenants[0].train.lr);
        char *r = spec_resume_text(us);
        ck_assert_int_eq(strncmp(r, "mode=full\n", 10), 0);
        ck_assert_ptr_nonnull(strstr(r, "\ndata=/base/c.h5\n"));
        ck_assert_ptr_null(strstr(r, "tenant."));
        ck_assert_ptr_null(strstr(r, "\nr="));
        free(r);
        assert_round_trip(us);
    }
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_random_expansion)
{
    spec_t *s = parse_ok(RANDOM);
    assert_round_trip(s);
    spec_unit_t *u, *v;
    int n, m;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 40);
    ck_assert_int_eq(spec_expand(s, NULL, &v, &m, NULL), 0);
    ck_assert_int_eq(m, n);
    int linear = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(u[i].name, v[i].name);
        ck_assert(spec_equal(u[i].spec, v[i].spec));
        const spec_train_t *t = &u[i].spec->train;
        ck_assert(t->lr >= 1e-5 && t->lr <= 1e-2);
        ck_assert(t->warmup >= 0 && t->warmup <= 50);
        /* three significant digits */
        char buf[64];
        snprintf(buf, sizeof buf, "%.3g", t->lr);
        ck_assert(strtod(buf, NULL) == t->lr);
        linear += t->schedule == SPEC_LINEAR;
        ck_assert_str_eq(u[i].spec->name, u[i].name);
        ck_assert_str_eq(u[i].spec->output, u[i].outdir);
        ck_assert_str_eq(u[i].tenant, "");
        assert_round_trip(u[i].spec);
    }
    ck_assert(linear > 5 && linear < 35);
    /* log-uniform: both decades below 1e-3 get draws */
    int low = 0;
    for (int i = 0; i < n; i++) low += u[i].spec->train.lr < 1e-4;
    ck_assert(low > 3 && low < 25);
    spec_units_destroy(&v, m);

    /* another seed, other draws */
    spec_t *s2 = spec_dup(s);
    s2->sweep.seed = 8;
    ck_assert_int_eq(spec_expand(s2, NULL, &v, &m, NULL), 0);
    int same = 0;
    for (int i = 0; i < n && i < m; i++) same += !strcmp(u[i].name, v[i].name);
    ck_assert_int_lt(same, 3);
    spec_units_destroy(&v, m);
    spec_destroy(&s2);
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_sweep_over_tenants)
{
    const char *text = "name = \"s\";\nmode = \"lora\";\nmodel = \"m.h5\";\noutput = \"/o\";\n"
                       "tenants = ( { name = \"a\"; data = \"a.h5\"; lr = 5e-4; r = 2; },\n"
                       "            { name = \"b\"; data = \"b.h5\"; dropout = 0.3; } );\n"
                       "sweep = { train = { lr = [1e-4, 2e-4]; }; };\n";
    spec_t *s = parse_ok(text);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 4);
    /* tenants in spec order, each with every trial; the swept value wins */
    ck_assert_str_eq(u[0].tenant, "a");
    ck_assert_str_eq(u[2].tenant, "b");
    ck_assert(u[0].spec->tenants[0].train.lr == 1e-4 && u[1].spec->tenants[0].train.lr == 2e-4);
    ck_assert(u[3].spec->tenants[0].train.lr == 2e-4);
    /* what the sweep leaves alone stays the tenant's own */
    ck_assert_int_eq(u[1].spec->tenants[0].lora.r, 2);
    ck_assert(u[2].spec->tenants[0].lora.dropout == 0.3);
    ck_assert_int_eq(strncmp(u[2].name, "b-", 2), 0);
    ck_assert_str_ne(strchr(u[0].name, '-'), strchr(u[2].name, '-'));
    const spec_t *all[4] = {u[0].spec, u[1].spec, u[2].spec, u[3].spec};
    spec_t *run = spec_compose(all, 4, "pack", "/p");
    ck_assert_ptr_nonnull(run);
    assert_round_trip(run);
    spec_destroy(&run);
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_random_dedup)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s", LORA_MIN,
             "sweep = { method = \"random\"; samples = 30; lora = { r = [4, 8]; }; };\n");
    spec_t *s = parse_ok(text);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_ne(u[0].param_value[0], u[1].param_value[0]);
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_expand_checks_trials)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s", LORA_MIN,
             "train = { steps = 100; };\nsweep = { train = { warmup = [10, 100]; }; };\n");
    spec_t *s = parse_ok(text);
    spec_diag_t *d = spec_diag_new();
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, d), -1);
    ck_assert_ptr_null(u);
    ck_assert_int_eq(spec_diag_count(d), 1);
    ck_assert_ptr_nonnull(strstr(spec_diag_get(d, 0), "train.warmup=100"));
    ck_assert_ptr_nonnull(strstr(spec_diag_get(d, 0), "train.warmup: must be less than steps"));
    spec_diag_destroy(&d);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_nightly_units_and_compose)
{
    const char *text =
        "name = \"n\";\nmode = \"lora\";\nmodel = \"m.h5\";\noutput = \"/o\";\n"
        "train = { steps = 50; seq_len = 64; batch_size = 4; };\n"
        "resources = { ranks = 2; };\n"
        "tenants = ( { name = \"a\"; data = \"a.h5\"; init_adapter = \"old/a.h5\"; },\n"
        "  { name = \"b\"; data = \"b.txt\"; lr = 1e-3; r = 4; },\n"
        "  { name = \"c\"; data = \"c.jsonl\"; steps = 20; dropout = 0.2; } );\n";
    spec_t *s = parse_ok(text);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(u[1].name, "b");
    ck_assert_str_eq(u[1].trial, "");
    ck_assert_str_eq(u[1].outdir, "/o/b");
    ck_assert_int_eq(u[1].nparams, 0);
    ck_assert(u[1].spec->train.lr == 1e-3 && u[1].spec->lora.r == 4);
    ck_assert_str_eq(u[0].spec->tenants[0].init_adapter, "/base/old/a.h5");

    const spec_t *parts[3] = {u[2].spec, u[0].spec, u[1].spec};
    spec_t *run = spec_compose(parts, 3, "run-7", "/runs/7");
    ck_assert_ptr_nonnull(run);
    ck_assert_int_eq(run->ntenants, 3);
    ck_assert_str_eq(run->tenants[0].name, "c");
    ck_assert_int_eq(run->tenants[0].train.steps, 20);
    ck_assert(run->tenants[0].lora.dropout == 0.2);
    ck_assert(run->tenants[2].train.lr == 1e-3);
    ck_assert_int_eq(run->tenants[2].lora.r, 4);
    ck_assert_str_eq(run->tenants[1].init_adapter, "/base/old/a.h5");
    ck_assert_str_eq(run->output, "/runs/7");
    ck_assert_str_eq(run->name, "run-7");
    assert_round_trip(run);

    /* each tenant's resume hash is the same in the pack as in its unit */
    char h1[65], h2[65];
    spec_tenant_resume_hash(run, 2, h1);
    spec_tenant_resume_hash(u[1].spec, 0, h2);
    ck_assert_str_eq(h1, h2);

    /* a file written durably parses back the same */
    char dir[] = "/tmp/weft-test-jobs-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/run.cfg", dir);
    ck_assert_int_eq(spec_write_file(run, path), 0);
    spec_t *back = spec_load(path, NULL, NULL);
    ck_assert_ptr_nonnull(back);
    ck_assert(spec_equal(run, back));
    spec_destroy(&back);
    weft_rm_rf(dir);
    spec_destroy(&run);

    /* a tenant twice */
    const spec_t *twice[2] = {u[0].spec, u[0].spec};
    ck_assert_ptr_null(spec_compose(twice, 2, "r", "/r"));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "appears twice"));

    /* another seq_len cannot share the run */
    spec_t *other = spec_dup(u[1].spec);
    other->train.seq_len = other->tenants[0].train.seq_len = 32;
    snprintf(other->tenants[0].name, sizeof other->tenants[0].name, "z");
    const spec_t *mixed[2] = {u[0].spec, other};
    char k1[65], k2[65];
    spec_pack_key(u[0].spec, k1);
    spec_pack_key(other, k2);
    ck_assert_str_ne(k1, k2);
    ck_assert_ptr_null(spec_compose(mixed, 2, "r", "/r"));
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "cannot share a run"));
    spec_destroy(&other);
    /* per-tenant settings do not change the pack key */
    spec_pack_key(u[2].spec, k2);
    ck_assert_str_eq(k1, k2);
    ck_assert_ptr_null(spec_compose(mixed, 2, "bad/name", "/r"));
    spec_units_destroy(&u, n);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_resume_keys)
{
    spec_t *s = parse_ok("mode = \"lora\";\nmodel = \"m.h5\";\n"
                         "tenants = ( { name = \"a\"; data = \"a.h5\"; },"
                         " { name = \"b\"; data = \"b.h5\"; } );\n");
    char base[65], h[65], ta[65], tb[65];
    spec_resume_hash(s, base);
    spec_tenant_resume_hash(s, 0, ta);
    char *saved = spec_resume_text(s);
    ck_assert_ptr_nonnull(strstr(saved, "tenant.a.data=/base/a.h5\n"));

    /* changes that do not matter for resuming */
    spec_t *t = spec_dup(s);
    snprintf(t->output, sizeof t->output, "/elsewhere");
    snprintf(t->name, sizeof t->name, "renamed");
    t->resources.threads = 2;
    t->train.eval_every = 7;
    t->train.keep_checkpoints = 9;
    spec_resume_hash(t, h);
    ck_assert_str_eq(h, base);
    spec_destroy(&t);

    /* changes that do: data, model, rank count, LoRA rank */
    struct {
        int what;
        const char *key;
    } cases[] = {{0, "tenant.a.data"}, {1, "model"}, {2, "ranks"}, {3, "tenant.b.r"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        t = spec_dup(s);
        if (cases[i].what == 0) snprintf(t->tenants[0].data, sizeof t->tenants[0].data, "/x.h5");
        if (cases[i].what == 1) snprintf(t->model, sizeof t->model, "/other.h5");
        if (cases[i].what == 2) t->resources.ranks = 2;
        if (cases[i].what == 3) t->tenants[1].lora.r = 16;
        spec_resume_hash(t, h);
        ck_assert_str_ne(h, base);
        char *now = spec_resume_text(t), why[256];
        ck_assert_int_eq(spec_resume_explain(saved, now, why, sizeof why), 1);
        ck_assert_int_eq(strncmp(why, cases[i].key, strlen(cases[i].key)), 0);
        free(now);
        spec_destroy(&t);
    }
    char why[256];
    ck_assert_int_eq(spec_resume_explain(saved, saved, why, sizeof why), 0);

    /* a pack that lost tenant b: a's own hash is unchanged */
    t = spec_dup(s);
    t->ntenants = 1;
    spec_tenant_resume_hash(t, 0, h);
    ck_assert_str_eq(h, ta);
    spec_tenant_resume_hash(s, 1, tb);
    ck_assert_str_ne(ta, tb);
    char *now = spec_resume_text(t);
    ck_assert_int_eq(spec_resume_explain(saved, now, why, sizeof why), 1);
    ck_assert_ptr_nonnull(strstr(why, "tenant.b.data"));
    free(now);
    spec_destroy(&t);
    free(saved);
    spec_destroy(&s);
}
END_TEST

START_TEST(test_limits)
{
    spec_limits_t lim = spec_limits_default();
    lim.max_tenants = 2;
    char *e = parse_fail("mode = \"lora\";\nmodel = \"m.h5\";\ntenants = ( { name = \"a\"; "
                         "data = \"a\"; }, { name = \"b\"; data = \"b\"; },\n"
                         " { name = \"c\"; data = \"c\"; } );\n",
                         &lim);
    ck_assert_ptr_nonnull(strstr(e, "t.cfg:3: tenants: 3 tenants exceed the limit of 2"));
    free(e);

    lim = spec_limits_default();
    lim.max_spec_bytes = 16;
    e = parse_fail(LORA_MIN, &lim);
    ck_assert_ptr_nonnull(strstr(e, "exceed the limit of 16 bytes"));
    free(e);

    lim = spec_limits_default();
    lim.max_trials = 5;
    char text[1024];
    snprintf(text, sizeof text, "%s%s", LORA_MIN,
             "sweep = { train = { lr = [1e-4, 2e-4, 3e-4]; }; lora = { r = [1, 2]; }; };\n");
    spec_t *s = spec_parse(text, strlen(text), "/b", "t.cfg", &lim, NULL);
    ck_assert_ptr_nonnull(s);
    spec_unit_t *u;
    int n;
    ck_assert_int_eq(spec_expand(s, &lim, &u, &n, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "more than 5 trials"));
    lim = spec_limits_default();
    lim.max_units = 4;
    ck_assert_int_eq(spec_expand(s, &lim, &u, &n, NULL), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "exceed the limit of 4"));
    ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
    ck_assert_int_eq(n, 6);
    spec_units_destroy(&u, n);
    spec_destroy(&s);

    e = parse_fail("mode = \"lora\";\0x", NULL);
    free(e);
}
END_TEST

START_TEST(test_every_problem_listed)
{
    const char *text = "mode = \"lora\";\nmodel = \"m.h5\";\n"
                       "train = { lr = -1.0; warmpu = 3; };\n"
                       "lora = { r = 0; };\n"
                       "tenants = ( { name = \"a/b\"; data = \"a.h5\"; } );\n";
    spec_diag_t *d = spec_diag_new();
    ck_assert_ptr_null(spec_parse(text, strlen(text), "/b", "t.cfg", NULL, d));
    ck_assert_int_eq(spec_diag_count(d), 4);
    const char *want[] = {"t.cfg:3: train.warmpu:", "t.cfg:3: train.lr:", "t.cfg:4: lora.r:",
                          "t.cfg:5: tenants[0].name:"};
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (int k = 0; k < 4; k++)
            found += !strncmp(spec_diag_get(d, k), want[i], strlen(want[i]));
        ck_assert_msg(found == 1, "missing: %s", want[i]);
    }
    spec_diag_destroy(&d);
}
END_TEST

/* Every tests/jobs/bad/NAME.cfg starts "# expect: LINE SETTING | TEXT": the
 * spec must fail with exactly one problem, "bad/NAME.cfg:LINE: SETTING: ..."
 * (or "bad/NAME.cfg: SETTING: ..." when LINE is "-"), containing TEXT. */
START_TEST(test_malformed_specs)
{
    const char *top = getenv("top_srcdir");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/jobs/bad", top ? top : ".");
    DIR *dp = opendir(dir);
    ck_assert_msg(dp != NULL, "cannot open %s", dir);
    int checked = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".cfg")) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        char *text = weft_read_file(path, 1 << 16, &n);
        ck_assert_ptr_nonnull(text);
        char line[16], setting[64], sub[256];
        ck_assert_msg(sscanf(text, "# expect: %15s %63s | %255[^\n]", line, setting, sub) == 3,
                      "%s: no expect line", path);
        char want[1600];
        if (!strcmp(line, "-"))
            snprintf(want, sizeof want, "%s: %s: ", path, setting);
        else
            snprintf(want, sizeof want, "%s:%s: %s: ", path, line, setting);
        spec_diag_t *d = spec_diag_new();
        spec_t *s = spec_load(path, NULL, d);
        spec_unit_t *u = NULL;
        int nu = 0;
        if (s) ck_assert_msg(spec_expand(s, NULL, &u, &nu, d) != 0, "%s: accepted", path);
        ck_assert_msg(spec_diag_count(d) == 1, "%s: %d problems, first: %s", path,
                      spec_diag_count(d), spec_diag_get(d, 0));
        const char *got = spec_diag_get(d, 0);
        ck_assert_msg(!strncmp(got, want, strlen(want)), "%s: got \"%s\", want prefix \"%s\"",
                      de->d_name, got, want);
        ck_assert_msg(strstr(got + strlen(want), sub) != NULL, "%s: \"%s\" lacks \"%s\"",
                      de->d_name, got, sub);
        spec_diag_destroy(&d);
        spec_destroy(&s);
        free(text);
        checked++;
    }
    closedir(dp);
    ck_assert_int_ge(checked, 25);
}
END_TEST

/* The examples parse, expand and round-trip. */
START_TEST(test_examples)
{
    const char *top = getenv("top_srcdir");
    const char *names[] = {"full.cfg", "nightly.cfg", "lora_sweep.cfg", "full_sweep.cfg"};
    int want_units[] = {1, 3, 6, 8};
    for (int i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/jobs/examples/%s", top ? top : ".", names[i]);
        spec_t *s = spec_load(path, NULL, NULL);
        ck_assert_msg(s != NULL, "%s: %s", path, weft_last_error());
        assert_round_trip(s);
        spec_unit_t *u;
        int n;
        ck_assert_int_eq(spec_expand(s, NULL, &u, &n, NULL), 0);
        ck_assert_int_eq(n, want_units[i]);
        for (int k = 0; k < n; k++) assert_round_trip(u[k].spec);
        spec_units_destroy(&u, n);
        spec_destroy(&s);
    }
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(test_defaults), CHECK_TEST(test_types_and_paths), CHECK_TEST(test_relative_base), CHECK_TEST(test_tenant_overrides), CHECK_TEST(test_write_escapes_and_full), CHECK_TEST(test_equal_notices_changes), CHECK_TEST(test_grid_expansion), CHECK_TEST(test_full_sweep_units), CHECK_TEST(test_random_expansion), CHECK_TEST(test_sweep_over_tenants), CHECK_TEST(test_random_dedup), CHECK_TEST(test_expand_checks_trials), CHECK_TEST(test_nightly_units_and_compose), CHECK_TEST(test_resume_keys), CHECK_TEST(test_limits), CHECK_TEST(test_every_problem_listed), CHECK_TEST(test_malformed_specs), CHECK_TEST(test_examples)};
    int failed = check_main((check_opts_t){.suite = "jobs", .tcase = "spec"}, tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
