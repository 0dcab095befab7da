/* generate_cmd.c: `weft generate` continues a prompt with a backbone, alone
 * or with a tenant's adapter, by seeded sampling; `weft eval` measures a
 * model's (and adapter's) validation loss on a weft-shards file. Both show
 * what an adapter learned. Byte tokenizer: token b is byte b, 256 ends a
 * document; a model carrying a BPE tokenizer (tok_h5.h) encodes the prompt
 * and decodes the sample with it, and its end-of-text token ends both. */
#include "adapter.h"
#include "gpt2.h"
#include "h5util.h"
#include "log.h"
#include "model_file.h"
#include "rng.h"
#include "shards/shardset.h"
#include "tok_h5.h"
#include "weft_cmds.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A model, with an adapter attached when adapter_path is given. */
typedef struct {
    gpt2_t *model;
    lora_pack_t *pack;
    tok_t *tok; /* a "bpe" model's tokenizer; NULL for bytes */
} loaded_t;

static int load(const char *model_path, const char *adapter_path, int rows, loaded_t *l)
{
    char tok[16];
    memset(l, 0, sizeof *l);
    l->model = model_file_load(model_path, tok, sizeof tok);
    if (!l->model) return -1;
    if (!strcmp(tok, TOK_KIND_BPE)) {
        if (!(l->tok = tok_h5_load(model_path))) return -1;
    } else if (strcmp(tok, "byte")) {
        return weft_error("%s uses the %s tokenizer, which it does not carry; give it one with "
                          "'weft init-model --tokenizer' or 'weft import'",
                          model_path, tok);
    }
    if (adapter_path) {
        l->pack = adapter_attach(l->model, model_path, adapter_path, (size_t)rows, NULL);
        if (!l->pack) return -1;
        lora_pack_set_training(l->pack, 0);
    }
    return 0;
}

static void unload(loaded_t *l)
{
    lora_pack_destroy(&l->pack);
    gpt2_destroy(&l->model);
    tok_destroy(&l->tok);
}

/* Samples token from logits (V) at temperature (0: the most likely). */
static int sample(const float *logits, int V, float temperature, weft_rng_t *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    double sum = 0, *p = malloc((size_t)V * sizeof *p);
    for (int i = 0; i < V; i++) sum += p[i] = exp((logits[i] - logits[best]) / temperature);
    double u = rng_uniform(rng) * sum, acc = 0;
    int pick = V - 1;
    for (int i = 0; i < V; i++) {
        acc += p[i];
        if (u < acc) {
            pick = i;
            break;
        }
    }
    free(p);
    return pick;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *adapter = NULL, *prompt = "";
    int tokens = 200;
    float temperature = 0.8f;
    long long seed = 1;
    static const struct option o[] = {{"model", required_argument, 0, 'm'},
                                      {"adapter", required_argument, 0, 'a'},
                                      {"prompt", required_argument, 0, 'p'},
                                      {"tokens", required_argument, 0, 'n'},
                                      {"temperature", required_argument, 0, 't'},
                                      {"seed", required_argument, 0, 's'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    const char *use = "usage: weft generate --model MODEL.h5 [--adapter ADAPTER.h5] --prompt TEXT\n"
                      "         [--tokens N] [--temperature T] [--seed S]\n";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': tokens = atoi(optarg); break;
        case 't': temperature = (float)atof(optarg); break;
        case 's': seed = atoll(optarg); break;
        case 'h': fputs(use, stdout); return 0;
        default: fputs(use, stderr); return 64;
        }
    }
    if (!model || optind != argc || tokens < 1 || temperature < 0) {
        fputs(use, stderr);
        return 64;
    }
    h5_quiet();
    openblas_set_num_threads(1);
    loaded_t l = {0};
    gpt2_config_t cfg;
    char tok[16];
    /* The adapter's rows are the whole context of one sequence. */
    if (model_file_config(model, &cfg, tok, sizeof tok) < 0 ||
        load(model, adapter, cfg.n_ctx, &l) < 0)
        goto fail;
    gpt2_t *m = l.model;
    int T = m->cfg.n_ctx, V = m->cfg.vocab_size;
    if (gpt2_alloc(m, 1, T) < 0) goto fail;
    int *ctx = malloc((size_t)T * sizeof *ctx), n = 0;
    int eot = l.tok ? tok_eot(l.tok) : 256;
    tok_ids_t ids = {0}, out = {0};
    if (l.tok) { /* the prompt's last T ids */
        if (tok_encode(l.tok, prompt, strlen(prompt), &ids) < 0) {
            free(ctx);
            goto fail;
        }
        size_t skip = ids.n > (size_t)T ? ids.n - (size_t)T : 0;
        for (size_t i = skip; i < ids.n; i++) ctx[n++] = ids.v[i];
        tok_ids_free(&ids);
    } else {
        for (const unsigned char *p = (const unsigned char *)prompt; *p && n < T; p++)
            ctx[n++] = *p;
    }
    if (n == 0 && eot >= 0) ctx[n++] = eot; /* start from a document boundary */
    if (n == 0) {
        free(ctx);
        weft_error("give a --prompt: %s's tokenizer has no end-of-text token to start from",
                   model);
        goto fail;
    }
    fputs(prompt, stdout);
    weft_rng_t rng;
    rng_seed(&rng, (uint64_t)seed);
    for (int i = 0; i < tokens; i++) {
        if (n == T) { /* slide the window by half */
            memmove(ctx, ctx + T / 2, (size_t)(T - T / 2) * sizeof *ctx);
            n = T - T / 2;
        }
        if (gpt2_forward(m, ctx, NULL, 1, n, NULL) < 0) {
            free(ctx);
            goto fail;
        }
        int next = sample(gpt2_logits(m) + (size_t)(n - 1) * V, V, temperature, &rng);
        if (!l.tok) {
            if (next >= 256) break;
            putchar(next);
        } else if (next == eot || !tok_token(l.tok, next) || tok_ids_push(&out, next) < 0) {
            break; /* the end, or an id the tokenizer does not have */
        }
        ctx[n++] = next;
    }
    if (l.tok) { /* decoded whole, so characters split over tokens come out whole */
        char *text;
        size_t len;
        if (tok_decode(l.tok, out.v, out.n, &text, &len) == 0) {
            fwrite(text, 1, len, stdout);
            free(text);
        }
        tok_ids_free(&out);
    }
    putchar('\n');
    free(ctx);
    unload(&l);
    return 0;
fail:
    weft_report();
    unload(&l);
    return 1;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *adapter = NULL, *data = NULL;
    int windows = 64, seq = 0, batch = 8;
    static const struct option o[] = {{"model", required_argument, 0, 'm'},
                                      {"adapter", required_argument, 0, 'a'},
                                      {"data", required_argument, 0, 'd'},
                                      {"windows", required_argument, 0, 'w'},
                                      {"seq-len", required_argument, 0, 'T'},
                                      {"help", no_argument, 0, 'h'},
                                      {0, 0, 0, 0}};
    const char *use = "usage: weft eval --model MODEL.h5 [--adapter ADAPTER.h5] --data SHARDS.h5\n"
                      "         [--windows N] [--seq-len T]\n"
                      "prints the mean loss over the first N validation windows\n";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 'd': data = optarg; break;
        case 'w': windows = atoi(optarg); break;
        case 'T': seq = atoi(optarg); break;
        case 'h': fputs(use, stdout); return 0;
        default: fputs(use, stderr); return 64;
        }
    }
    if (!model || !data || optind != argc || windows < 1 || seq < 0) {
        fputs(use, stderr);
        return 64;
    }
    h5_quiet();
    openblas_set_num_threads(1);
    loaded_t l = {0};
    shardset_t *s = shardset_new(data);
    gpt2_config_t cfg;
    char tok[16];
    if (!s || model_file_config(model, &cfg, tok, sizeof tok) < 0) goto fail;
    int T = seq ? seq : cfg.n_ctx;
    if (T > cfg.n_ctx) {
        weft_error("--seq-len %d is longer than the model's n_ctx %d", T, cfg.n_ctx);
        goto fail;
    }
    if (load(model, adapter, batch * T, &l) < 0 || gpt2_alloc(l.model, batch, T) < 0) goto fail;
    if (strcmp(shardset_tokenizer(s), tok) ||
        (l.tok && strcmp(shardset_tokenizer_sha256(s), tok_sha256(l.tok)))) {
        weft_error("%s was tokenized with %s %s but the model %s uses %s %s; re-shard it with "
                   "'weft shard --tokenizer %s'",
                   data, shardset_tokenizer(s), shardset_tokenizer_sha256(s), model, tok,
                   l.tok ? tok_sha256(l.tok) : "", model);
        goto fail;
    }
    if (shardset_vocab_size(s) > cfg.vocab_size) {
        weft_error("%s has %d tokens in its vocabulary; the model %s has only %d", data,
                   shardset_vocab_size(s), model, cfg.vocab_size);
        goto fail;
    }
    int64_t avail = shardset_val_windows(s, T);
    if (avail < 1) {
        weft_error("%s has no validation window of %d tokens; shard it with --val-fraction", data,
                   T);
        goto fail;
    }
    int n = windows < avail ? windows : (int)avail;
    int *in = malloc((size_t)batch * T * sizeof *in), *tg = malloc((size_t)batch * T * sizeof *tg);
    int32_t *w = malloc(((size_t)T + 1) * sizeof *w);
    double sum = 0, count = 0;
    for (int i = 0; i < n; i += batch) {
        int B = n - i < batch ? n - i : batch;
        for (int b = 0; b < B; b++) {
            if (shardset_val_window(s, T, i + b, w) < 0) goto fail;
            for (int j = 0; j < T; j++) in[b * T + j] = w[j], tg[b * T + j] = w[j + 1];
        }
        float loss;
        if (gpt2_forward(l.model, in, tg, B, T, &loss) < 0) goto fail;
        sum += (double)loss * (double)gpt2_valid_targets(l.model);
        count += (double)gpt2_valid_targets(l.model);
    }
    printf("%.6f\n", sum / count);
    free(in);
    free(tg);
    free(w);
    shardset_destroy(&s);
    unload(&l);
    return 0;
fail:
    weft_report();
    shardset_destroy(&s);
    unload(&l);
    return 1;
}
