/* shard_cmd.c: the `weft shard` command: options, then the writer
 * (shard_writer.h) and its summary; `--verify FILE` reads a shard file
 * through the reader (shardset.h) and checks every token and offset. */
#include "shards/chat_writer.h"
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shard_format.h"
#include "shards/shard_writer.h"
#include "shards/shardset.h"
#include "model/tok_h5.h"
#include "model/tokenizer.h"
#include "common/weft_cmds.h"

#include <errno.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#define VERIFY_BLOCK (1 << 20) /* tokens per read */

static void usage(FILE *out)
{
    fprintf(out, "usage: weft shard [--format text|jsonl|chat|completion] [--field NAME]\n"
                 "                  [--template chatml|llama3|plain] [--skip-bad] [--shards S]\n"
                 "                  [--val-fraction F] [--seed N] [--force] [--quiet]\n"
                 "                  [--tokenizer PATH [--eos TOKEN]]\n"
                 "                  -o OUT.h5 INPUT...\n"
                 "       weft shard --verify FILE.h5\n\n"
                 "Tokenizes documents into bytes (256 ends a document), or with a Hugging Face\n"
                 "BPE tokenizer (each document ends with its end-of-text token), and writes a weft-shards\n"
                 "HDF5 file: a seeded shuffle of the documents split into /train (S shards)\n"
                 "and /val (a fraction F of the documents). See docs/FORMATS-shards.md.\n\n"
                 "  --format text   each file is a document; a line holding only --- splits it\n"
                 "                  (the default, unless every INPUT is named *.jsonl)\n"
                 "  --format jsonl  one JSON object a line; the document is its --field member\n"
                 "  --field NAME    JSONL member holding the text (default: text)\n"
                 "  --format chat   JSONL {\"messages\": [{\"role\", \"content\"}, ...]}, rendered\n"
                 "                  with --template; the loss is taken on the answers only\n"
                 "  --format completion  JSONL {\"prompt\", \"completion\"}: loss on completions\n"
                 "  --template T    chat template: chatml, llama3 or plain (default plain)\n"
                 "  --skip-bad      count and skip bad chat/completion lines instead of failing\n"
                 "  --shards S      training shards, rank r of R reads r, r+R, ... (default 1)\n"
                 "  --val-fraction F  share of documents held out, in [0,1) (default 0)\n"
                 "  --seed N        split and shuffle seed (default 0)\n"
                 "  --force         replace OUT.h5 if it exists\n"
                 "  --quiet         no progress line\n"
                 "  --tokenizer PATH  a tokenizer.json, a folder holding one (or vocab.json +\n"
                 "                  merges.txt), or a weft-model file: tokenize with it\n"
                 "  --eos TOKEN     the token ending each document (default: the tokenizer's\n"
                 "                  <|endoftext|>, <|end_of_text|>, </s> or <eos>)\n"
                 "  --verify FILE   read FILE whole, checking checksums, tokens and offsets\n");
}

static int parse_i64(const char *opt, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return weft_error("%s '%s' is not a whole number", opt, s);
    *out = v;
    return 0;
}

/* Reads every token and offset of a split in blocks, checking that the
 * offsets increase, that each document ends with the end-of-document token
 * and that it holds no other. */
static int verify_split(shardset_t *ss, shardset_split_t split, int32_t *tok, int64_t *off)
{
    int64_t ntok = shardset_tokens(ss, split), ndoc = shardset_docs(ss, split);
    int64_t doc = 0, noff = 0, first = 0; /* off[] holds entries [first, first+noff) */
    int eot = shardset_eot(ss);
    const char *name = split == SHARDSET_TRAIN ? "train" : "val";
    for (int64_t p0 = 0; p0 < ntok; p0 += VERIFY_BLOCK) {
        int64_t n = ntok - p0 < VERIFY_BLOCK ? ntok - p0 : VERIFY_BLOCK;
        if (shardset_read(ss, split, p0, n, tok) < 0) return -1;
        for (int64_t i = 0; i < n; i++) {
            if (doc + 1 >= first + noff) { /* load the next block of offsets */
                first = doc;
                noff = ndoc + 1 - first < VERIFY_BLOCK ? ndoc + 1 - first : VERIFY_BLOCK;
                if (noff < 2)
                    return weft_error("%s: %s has tokens past its last document (corrupt file)",
                                      shardset_path(ss), name);
                if (shardset_doc_offsets(ss, split, first, noff, off) < 0) return -1;
                for (int64_t k = 1; k < noff; k++)
                    if (off[k] <= off[k - 1])
                        return weft_error("%s: %s/doc_offsets[%lld] does not increase (corrupt "
                                          "file)",
                                          shardset_path(ss), name, (long long)(first + k));
            }
            int64_t p = p0 + i, end = off[doc + 1 - first];
            /* chat documents hold end-of-turn tokens inside (the plain
             * template's is the end of text); each still ends with one */
            if (shardset_has_mask(ss) ? (p == end - 1 && tok[i] != eot)
                                      : (tok[i] == eot) != (p == end - 1))
                return weft_error(
                    "%s: %s token %lld %s (corrupt file)", shardset_path(ss), name, (long long)p,
                    tok[i] == eot ? "ends a document early" : "should end a document but does not");
            if (p == end - 1) doc++;
        }
    }
    if (doc != ndoc)
        return weft_error("%s: %s holds %lld documents, its offsets say %lld (corrupt file)",
                          shardset_path(ss), name, (long long)doc, (long long)ndoc);
    return 0;
}

static int verify(const char *path)
{
    shardset_t *ss = shardset_new(path);
    if (!ss) return -1;
    int32_t *tok = malloc(VERIFY_BLOCK * sizeof *tok);
    int64_t *off = malloc(VERIFY_BLOCK * sizeof *off);
    int rc = tok && off ? 0 : weft_error("out of memory");
    for (int split = 0; rc == 0 && split < 2; split++) rc = verify_split(ss, split, tok, off);
    for (int split = 0; rc == 0 && split < 2; split++) { /* the loss mask holds 0 and 1 only */
        uint8_t *m = (uint8_t *)tok;
        for (int64_t p0 = 0; rc == 0 && p0 < shardset_tokens(ss, split); p0 += VERIFY_BLOCK) {
            int64_t n = shardset_tokens(ss, split) - p0;
            rc = shardset_read_mask(ss, split, p0, n < VERIFY_BLOCK ? n : VERIFY_BLOCK, m);
        }
    }
    if (rc == 0)
        printf("%s: ok: weft-shards, tokenizer %s, %lld+%lld documents, %lld+%lld tokens "
               "(train+val), %lld shard%s\n",
               path, shardset_tokenizer(ss), (long long)shardset_docs(ss, SHARDSET_TRAIN),
               (long long)shardset_docs(ss, SHARDSET_VAL),
               (long long)shardset_tokens(ss, SHARDSET_TRAIN),
               (long long)shardset_tokens(ss, SHARDSET_VAL), (long long)shardset_shards(ss),
               shardset_shards(ss) == 1 ? "" : "s");
    free(tok);
    free(off);
    shardset_destroy(&ss);
    return rc;
}

/* Without --format, inputs named *.jsonl are JSONL and others text, as a
 * spec's data is (spec_data_kind_of); a mix of the two needs --format. */
static int format_by_extension(char **inputs, int n, shard_input_t *format)
{
    int jsonl = 0;
    for (int i = 0; i < n; i++) {
        const char *dot = strrchr(inputs[i], '.'), *slash = strrchr(inputs[i], '/');
        jsonl += dot && (!slash || dot > slash) && !strcasecmp(dot, ".jsonl");
    }
    if (jsonl && jsonl < n)
        return weft_error("%d of the %d inputs are .jsonl and the rest are not: give --format "
                          "text or --format jsonl",
                          jsonl, n);
    *format = jsonl ? SHARD_INPUT_JSONL : SHARD_INPUT_TEXT;
    return 0;
}

/* The BPE tokenizer --tokenizer names, or NULL for bytes (no --tokenizer, or
 * a weft-model file whose tokenizer is the byte one); -1 on an error. */
static int chat_tokenizer(const shard_opts_t *o, tok_t **out)
{
    *out = NULL;
    if (!o->tokenizer) {
        if (o->eos) return weft_error("--eos needs --tokenizer (the byte tokenizer ends with 256)");
        return 0;
    }
    char kind[16], sha[65];
    struct stat st;
    if (stat(o->tokenizer, &st) == 0 && S_ISREG(st.st_mode) && H5Fis_hdf5(o->tokenizer) > 0) {
        if (tok_h5_info(o->tokenizer, kind, sha) < 0) return -1;
        if (!strcmp(kind, SHARD_TOKENIZER_BYTE)) return 0;
    }
    if (!(*out = tok_load(o->tokenizer))) return -1;
    return 0;
}

/* --format chat|completion: the chat writer, with the byte tokenizer or
 * the BPE tokenizer --tokenizer names (its special tokens become their
 * ids; documents end with its end-of-text token, or --eos). */
static int shard_chat(const shard_opts_t *o, int completion, const char *template_name,
                      int skip_bad)
{
    chat_tok_t tok;
    tok_t *bpe = NULL;
    if (chat_tokenizer(o, &bpe) < 0) {
        weft_report();
        return EX_DATAERR;
    }
    if (bpe) {
        chat_tok_bpe(&tok, bpe);
        if (o->eos && (tok.eot = tok_id(bpe, o->eos)) < 0) {
            weft_error("--eos %s: %s has no such token", o->eos, o->tokenizer);
            weft_report();
            tok_destroy(&bpe);
            return EX_USAGE;
        }
        if (tok.eot < 0) {
            weft_error("%s has no end-of-text token among its added tokens: name one with --eos",
                       o->tokenizer);
            weft_report();
            tok_destroy(&bpe);
            return EX_DATAERR;
        }
    } else {
        chat_tok_byte(&tok);
    }
    chat_shard_opts_t co = {.base = o, .completion = completion, .skip_bad = skip_bad, .tok = &tok};
    chat_shard_stats_t st;
    if (chat_template_parse(template_name, &co.tmpl) < 0) {
        weft_report();
        tok_destroy(&bpe);
        return EX_USAGE;
    }
    int rc = chat_shard_write(&co, &st);
    tok_destroy(&bpe);
    if (rc < 0) {
        weft_report();
        return EX_DATAERR;
    }
    printf("%s: %lld documents (%lld train, %lld val), %lld tokens (%lld train, %lld val), "
           "%lld trainable (%lld train, %lld val), %lld shard%s\n",
           o->output, (long long)(st.base.docs[0] + st.base.docs[1]), (long long)st.base.docs[0],
           (long long)st.base.docs[1], (long long)(st.base.tokens[0] + st.base.tokens[1]),
           (long long)st.base.tokens[0], (long long)st.base.tokens[1],
           (long long)(st.trainable[0] + st.trainable[1]), (long long)st.trainable[0],
           (long long)st.trainable[1], (long long)st.base.shards, st.base.shards == 1 ? "" : "s");
    if (st.bad) printf("  %lld bad line%s skipped\n", (long long)st.bad, st.bad == 1 ? "" : "s");
    printf("  source_sha256 %s; %s%s\n", st.base.source_sha256,
           completion ? "completion" : "chat template ", completion ? "" : template_name);
    return 0;
}

int cmd_shard(int argc, char **argv)
{
    static const struct option longopts[] = {{"format", required_argument, 0, 'F'},
                                             {"field", required_argument, 0, 'f'},
                                             {"shards", required_argument, 0, 's'},
                                             {"val-fraction", required_argument, 0, 'v'},
                                             {"seed", required_argument, 0, 'S'},
                                             {"force", no_argument, 0, 'x'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"output", required_argument, 0, 'o'},
                                             {"verify", required_argument, 0, 'V'},
                                             {"tokenizer", required_argument, 0, 't'},
                                             {"eos", required_argument, 0, 'e'},
                                             {"template", required_argument, 0, 'T'},
                                             {"skip-bad", no_argument, 0, 'k'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    shard_opts_t o = {.format = SHARD_INPUT_TEXT, .field = "text", .shards = 1, .progress = 1};
    int format_given = 0, chat = 0, completion = 0, skip_bad = 0;
    const char *template_name = "plain";
    const char *verify_path = NULL;
    int64_t seed = 0;
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'F':
            format_given = 1;
            if (!strcmp(optarg, "text"))
                o.format = SHARD_INPUT_TEXT;
            else if (!strcmp(optarg, "jsonl"))
                o.format = SHARD_INPUT_JSONL;
            else if (!strcmp(optarg, "chat"))
                chat = 1;
            else if (!strcmp(optarg, "completion"))
                completion = 1;
            else
                bad = weft_error("--format '%s': use text, jsonl, chat or completion", optarg);
            break;
        case 'f':
            o.field = optarg;
            break;
        case 's':
            bad = parse_i64("--shards", optarg, &o.shards);
            break;
        case 'S':
            bad = parse_i64("--seed", optarg, &seed);
            if (!bad && seed < 0) bad = weft_error("--seed must be 0 or more");
            o.seed = (uint64_t)seed;
            break;
        case 'v':
            errno = 0;
            o.val_fraction = strtod(optarg, &end);
            if (errno || end == optarg || *end)
                bad = weft_error("--val-fraction '%s' is not a number", optarg);
            else if (!(o.val_fraction >= 0 && o.val_fraction < 1))
                bad = weft_error("--val-fraction %s is outside [0,1)", optarg);
            break;
        case 'x':
            o.force = 1;
            break;
        case 'q':
            o.progress = 0;
            break;
        case 'o':
            o.output = optarg;
            break;
        case 'V':
            verify_path = optarg;
            break;
        case 't':
            o.tokenizer = optarg;
            break;
        case 'e':
            o.eos = optarg;
            break;
        case 'T':
            template_name = optarg;
            break;
        case 'k':
            skip_bad = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = weft_error("unknown or incomplete option '%s'; see weft shard --help",
                             argv[optind - 1]);
        }
    }
    if (bad) {
        weft_report();
        return EX_USAGE;
    }
    h5_quiet();
    if (verify_path) {
        if (verify(verify_path) < 0) {
            weft_report();
            return 1;
        }
        return 0;
    }
    if (!o.output || optind >= argc) {
        weft_error(!o.output ? "no output: give -o OUT.h5" : "no input files: give INPUT...");
        weft_report();
        usage(stderr);
        return EX_USAGE;
    }
    o.inputs = argv + optind;
    o.ninputs = argc - optind;
    if (chat || completion) return shard_chat(&o, completion, template_name, skip_bad);
    if (!format_given && format_by_extension(o.inputs, o.ninputs, &o.format) < 0) {
        weft_report();
        return EX_USAGE;
    }
    shard_stats_t st;
    if (shard_write(&o, &st) < 0) {
        weft_report();
        return 1;
    }
    printf("%s: %lld documents (%lld train, %lld val), %lld tokens (%lld train, %lld val), "
           "%lld shard%s\n",
           o.output, (long long)(st.docs[0] + st.docs[1]), (long long)st.docs[0],
           (long long)st.docs[1], (long long)(st.tokens[0] + st.tokens[1]), (long long)st.tokens[0],
           (long long)st.tokens[1], (long long)st.shards, st.shards == 1 ? "" : "s");
    printf("  tokenizer %s: vocab_size %lld, end of document %lld\n",
           o.tokenizer ? o.tokenizer : "byte", (long long)st.vocab, (long long)st.eot);
    printf("  source_sha256 %s; %.1f MB in %.2f s (%.1f MB/s)\n", st.source_sha256,
           (double)st.input_bytes / 1e6, st.seconds,
           st.seconds > 0 ? (double)st.input_bytes / 1e6 / st.seconds : 0.0);
    return 0;
}
