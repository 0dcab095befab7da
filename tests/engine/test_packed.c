/* test_packed.c: packed documents in the engine (docattn.h). A row of three
 * documents with their prompts masked gives the loss and gradients of the
 * three run one by one (float64 references from scripts/make-reference.py
 * --docs, GPT-2 and Llama); a document's logits do not depend on its
 * row-mates; one document per row is bit for bit the plain engine; bad
 * positions are refused. */
#include "engine/docattn.h"
#include "engine/gpt2.h"
#include "common/h5util.h"
#include "common/log.h"
#include "model/model_file.h"
#include "engine/rng.h"
#include "tests/check_main.h"

#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char datadir[4096];

static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

static int *read_i32(hid_t f, const char *path, int *B, int *T)
{
    int rank;
    hsize_t dims[8];
    ck_assert(h5_dataset_shape(f, path, &rank, dims) == 0 && rank == 2);
    *B = (int)dims[0];
    *T = (int)dims[1];
    int *buf = malloc(dims[0] * dims[1] * sizeof *buf);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert(H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    return buf;
}

static float *read_f32(hid_t f, const char *path, size_t n)
{
    int rank;
    hsize_t dims[8];
    ck_assert_msg(h5_dataset_shape(f, path, &rank, dims) == 0, "%s", weft_last_error());
    size_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    ck_assert_msg(total == n, "%s holds %zu values, expected %zu", path, total, n);
    float *buf = malloc(n * sizeof *buf);
    ck_assert(h5_read_f32(f, path, rank, dims, buf) == 0);
    return buf;
}

/* The committed references: tiny (GPT-2), lgqa (GQA, untied head), lrope3
 * (llama3 RoPE scaling, where restarting positions matter most). */
START_TEST(reference_packed)
{
    static const char *names[] = {"tiny", "lgqa", "lrope3"};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.h5", datadir, names[_i]);
    gpt2_t *m = model_file_load(path, NULL, 0);
    ck_assert_msg(m != NULL, "%s", weft_last_error());
    snprintf(path, sizeof path, "%s/%s-packed.h5", datadir, names[_i]);
    hid_t ref = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(ref >= 0, "cannot open %s", path);
    int B, T, b2, t2, b3, t3;
    int *inputs = read_i32(ref, "/inputs", &B, &T);
    int *targets = read_i32(ref, "/targets", &b2, &t2);
    int *pos = read_i32(ref, "/pos", &b3, &t3);
    ck_assert(B == b2 && B == b3 && T == t2 && T == t3);
    float *want = read_f32(ref, "/loss", 1);
    float loss;
    m->pos = pos;
    ck_assert_msg(gpt2_forward(m, inputs, targets, B, T, &loss) == 0, "%s", weft_last_error());
    double dl = fabs((double)loss - want[0]) / want[0];
    printf("packed %s: loss %.7f vs %.7f (rel %.2e)\n", names[_i], (double)loss, (double)want[0],
           dl);
    ck_assert_msg(dl <= 1e-5, "%s: packed loss %.7f, documents one by one %.7f", names[_i],
                  (double)loss, (double)want[0]);
    ck_assert(gpt2_backward(m, NULL) == 0);
    double worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < m->ntensors; i++) {
        const gpt2_tensor_t *t = &m->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "/grad/%s", t->name);
        float *g = read_f32(ref, name, t->numel);
        double d = rel_diff(m->grads + t->offset, g, t->numel);
        if (d > worst) worst = d, worst_name = t->name;
        free(g);
    }
    printf("  gradients: worst %s rel %.3e\n", worst_name, worst);
    ck_assert_msg(worst <= 1e-4, "%s: gradient %s differs by %.3e", names[_i], worst_name, worst);
    H5Fclose(ref);
    free(want);
    free(inputs);
    free(targets);
    free(pos);
    gpt2_destroy(&m);
}
END_TEST

static gpt2_t *random_model(int llama, uint64_t seed)
{
    gpt2_config_t c = {2, 2, 16, 37, 40, ARCH_GPT2, {0}};
    if (llama) {
        ck_assert(gpt2_config_preset("llama-tiny", &c) == 0);
        c.vocab_size = 37;
        c.n_ctx = 40;
    }
    gpt2_t *m = gpt2_new(&c);
    ck_assert(m != NULL);
    gpt2_init_weights(m, seed);
    weft_rng_t r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m->nparams; i++) m->params[i] += rng_normal(&r, 0.0f, 0.2f);
    return m;
}

/* Row 0 holds documents of 5, 11 and 4 tokens, row 1 one of 20: each
 * document's logits equal those of the document run alone; changing a
 * document's tokens leaves its row-mates' logits bit for bit. */
START_TEST(documents_alone)
{
    enum { B = 2, T = 20 };
    static const int starts[] = {0, 5, 16, 20};
    gpt2_t *m = random_model(_i, 7);
    int V = m->cfg.vocab_size;
    int inp[B * T], tgt[B * T], pos[B * T];
    weft_rng_t r;
    rng_seed(&r, 3);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)(rng_u64(&r) % (uint64_t)V);
        tgt[i] = (int)(rng_u64(&r) % (uint64_t)V);
        pos[i] = i % T;
    }
    for (int d = 0; d < 3; d++)
        for (int t = starts[d]; t < starts[d + 1]; t++) pos[t] = t - starts[d];
    m->pos = pos;
    ck_assert_msg(gpt2_forward(m, inp, tgt, B, T, NULL) == 0, "%s", weft_last_error());
    size_t n = (size_t)B * T * V;
    float *packed = malloc(n * sizeof *packed);
    memcpy(packed, gpt2_logits(m), n * sizeof *packed);
    m->pos = NULL;
    for (int d = 0; d < 3; d++) {
        int len = starts[d + 1] - starts[d];
        ck_assert(gpt2_forward(m, inp + starts[d], tgt + starts[d], 1, len, NULL) == 0);
        double e = rel_diff(packed + (size_t)starts[d] * V, gpt2_logits(m), (size_t)len * V);
        printf("%s document %d (%d tokens) packed vs alone: rel %.2e\n", _i ? "llama" : "gpt2", d,
               len, e);
        ck_assert_msg(e <= 1e-5, "document %d: packed logits differ from alone by %.3e", d, e);
    }
    /* change document 1's tokens: documents 0 and 2 and row 1 keep their bits */
    for (int t = 5; t < 16; t++) inp[t] = (inp[t] + 1) % V;
    m->pos = pos;
    ck_assert(gpt2_forward(m, inp, tgt, B, T, NULL) == 0);
    const float *l = gpt2_logits(m);
    ck_assert(!memcmp(l, packed, (size_t)5 * V * sizeof *l));
    ck_assert(!memcmp(l + (size_t)16 * V, packed + (size_t)16 * V, (size_t)24 * V * sizeof *l));
    ck_assert(memcmp(l + (size_t)5 * V, packed + (size_t)5 * V, (size_t)11 * V * sizeof *l));
    free(packed);
    gpt2_destroy(&m);
}
END_TEST

/* pos = 0..T-1 on every row is the plain engine, bit for bit (loss and
 * gradients), so packing changes nothing for one document per row. */
START_TEST(one_document_per_row)
{
    enum { B = 2, T = 40 };
    gpt2_t *m = random_model(_i, 11);
    int V = m->cfg.vocab_size;
    int inp[B * T], tgt[B * T], pos[B * T];
    for (int i = 0; i < B * T; i++) {
        inp[i] = (i * 7 + 3) % V;
        tgt[i] = (i * 5 + 1) % V;
        pos[i] = i % T;
    }
    float l1, l2;
    ck_assert(gpt2_grads(m) != NULL);
    ck_assert(gpt2_forward(m, inp, tgt, B, T, &l1) == 0 && gpt2_backward(m, NULL) == 0);
    float *g = malloc(m->nparams * sizeof *g);
    memcpy(g, m->grads, m->nparams * sizeof *g);
    gpt2_zero_grad(m);
    m->pos = pos;
    ck_assert(gpt2_forward(m, inp, tgt, B, T, &l2) == 0 && gpt2_backward(m, NULL) == 0);
    ck_assert(l1 == l2);
    ck_assert_msg(!memcmp(g, m->grads, m->nparams * sizeof *g),
                  "one document per row should give the plain engine's gradients bit for bit");
    free(g);
    gpt2_destroy(&m);
}
END_TEST

START_TEST(bad_positions)
{
    int inp[8] = {0}, pos[8] = {0, 1, 2, 0, 1, 3, 0, 1};
    gpt2_t *m = random_model(0, 1);
    m->pos = pos;
    ck_assert(gpt2_forward(m, inp, NULL, 1, 8, NULL) < 0);
    ck_assert_msg(strstr(weft_last_error(), "row 0, token 5"), "%s", weft_last_error());
    pos[0] = 1, pos[5] = 2;
    ck_assert(gpt2_forward(m, inp, NULL, 1, 8, NULL) < 0);
    ck_assert_msg(strstr(weft_last_error(), "row 0, token 0"), "%s", weft_last_error());
    /* Σ n² of documents of 3, 3 and 2 tokens */
    int ok[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    ck_assert(docs_square_sum(ok, 1, 8) == 9 + 9 + 4);
    gpt2_destroy(&m);
}
END_TEST

int main(void)
{
    const char *src = getenv("top_srcdir");
    snprintf(datadir, sizeof datadir, "%s/tests/engine/data", src ? src : ".");
    h5_quiet();
    openblas_set_num_threads(1);
    check_test_t tests[] = {CHECK_LOOP(reference_packed, 3), CHECK_LOOP(documents_alone, 2),
                            CHECK_LOOP(one_document_per_row, 2), CHECK_TEST(bad_positions)};
    int failed = check_main((check_opts_t){.suite = "packed", .timeout = 120, .nofork = 1}, tests,
                            CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
