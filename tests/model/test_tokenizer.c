/* test_tokenizer.c: the byte-level BPE tokenizer on small tokenizer.json
 * files built here: the Llama-3 and Qwen2 pre-token splits on hand-written
 * cases, NFC, added tokens, merge order, ignore_merges, both merge forms,
 * lossy decoding, streaming equal to whole-text encoding, and the refusals. */
#include "common/log.h"
#include "model/tokenizer.h"
#include "tests/check_main.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLAMA3_RE                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* GPT-2's byte-to-unicode character of byte b, as UTF-8. */
static void byte_char(int b, char out[3])
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae))) cp++;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
    }
}

typedef struct {
    const char *style;   /* "llama3", "qwen2", "gpt2" */
    const char **extra;  /* extra vocabulary (byte-level strings), ids 256.. */
    const char **merges; /* "a b" */
    int merges_as_pairs; /* write merges as ["a", "b"] */
    int ignore_merges;
    const char **added; /* added tokens, ids after the vocabulary */
    const char *model;  /* model type, default BPE */
} spec_t;

static char *make_json(const spec_t *s)
{
    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    char c[3];
    int id = 0;
    for (int b = 0; b < 256; b++) {
        byte_char(b, c);
        json_object_set_new(vocab, c, json_integer(id++));
    }
    for (const char **e = s->extra; e && *e; e++)
        json_object_set_new(vocab, *e, json_integer(id++));
    for (const char **m = s->merges; m && *m; m++) {
        if (s->merges_as_pairs) {
            char a[64], b[64];
            sscanf(*m, "%63s %63s", a, b);
            json_array_append_new(merges, json_pack("[ss]", a, b));
        } else {
            json_array_append_new(merges, json_string(*m));
        }
    }
    for (const char **a = s->added; a && *a; a++)
        json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id++,
                                               "content", *a, "single_word", 0, "lstrip", 0,
                                               "rstrip", 0, "normalized", 0, "special", 1));
    json_t *pre, *norm = json_null();
    if (!strcmp(s->style, "gpt2")) {
        pre = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                        "trim_offsets", 1, "use_regex", 1);
    } else {
        pre = json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b,s:b}]}", "type", "Sequence",
                        "pretokenizers", "type", "Split", "pattern", "Regex",
                        !strcmp(s->style, "llama3") ? LLAMA3_RE : QWEN2_RE, "behavior", "Isolated",
                        "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                        "use_regex", 0);
        if (!strcmp(s->style, "qwen2")) norm = json_pack("{s:s}", "type", "NFC");
    }
    json_t *root = json_pack(
        "{s:s,s:o,s:o,s:o,s:o,s:{s:s,s:n,s:s,s:s,s:b,s:b,s:b,s:o,s:o}}", "version", "1.0",
        "added_tokens", added, "normalizer", norm, "pre_tokenizer", pre, "decoder",
        json_pack("{s:s}", "type", "ByteLevel"), "model", "type", s->model ? s->model : "BPE",
        "dropout", "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
        "byte_fallback", 0, "ignore_merges", s->ignore_merges, "vocab", vocab, "merges", merges);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

static tok_t *make_tok(const spec_t *s)
{
    char *j = make_json(s);
    tok_t *t = tok_from_json(j, strlen(j), "test.json");
    free(j);
    ck_assert_msg(t != NULL, "%s", weft_last_error());
    return t;
}

typedef struct {
    char buf[4096];
    size_t n;
} pieces_t;

static int collect(void *arg, const char *p, size_t n, int32_t id)
{
    pieces_t *o = arg;
    if (o->n) o->buf[o->n++] = '|';
    if (id >= 0)
        o->n += (size_t)snprintf(o->buf + o->n, sizeof o->buf - o->n, "[%d]", id);
    else {
        memcpy(o->buf + o->n, p, n);
        o->n += n;
    }
    o->buf[o->n] = 0;
    return 0;
}

static void check_pieces(tok_t *t, const char *text, const char *want)
{
    pieces_t o = {.n = 0};
    o.buf[0] = 0;
    ck_assert_msg(tok_pieces(t, text, strlen(text), collect, &o) == 0, "%s", weft_last_error());
    ck_assert_msg(!strcmp(o.buf, want), "splits of \"%s\": got \"%s\", want \"%s\"", text, o.buf,
                  want);
}

/* Cases common to both styles (expected splits from the regexes). */
static void common_cases(tok_t *t)
{
    check_pieces(t, "I'M here, you'RE IT's", "I|'M| here|,| you|'RE| IT|'s");
    check_pieces(t, "We'LL see THEY'VE", "We|'LL| see| THEY|'VE");
    check_pieces(t, "a   b", "a|  | b");
    check_pieces(t, "line1\r\nline2\r\n\r\nend", "line|1|\r\n|line|2|\r\n\r\n|end");
    check_pieces(t, "hello.World $foo", "hello|.World| $|foo");
    check_pieces(t, "  hi\n\n  there  ", " | hi|\n\n| | there|  ");
    check_pieces(t, "caf\xc3\xa9 \xf0\x9f\x98\x80! na\xc3\xafve",
                 "caf\xc3\xa9| \xf0\x9f\x98\x80!| na\xc3\xafve");
    /* emoji with a skin tone and a ZWJ family stay one piece */
    check_pieces(
        t,
        "x \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2"
        "\x80\x8d\xf0\x9f\x91\xa7 ok",
        "x| \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"
        "\xe2\x80\x8d\xf0\x9f\x91\xa7| ok");
}

static const char *im_tokens[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", NULL};

START_TEST(llama3_splits)
{
    spec_t s = {.style = "llama3", .added = im_tokens};
    tok_t *t = make_tok(&s);
    common_cases(t);
    check_pieces(t, "12345678 x", "123|456|78| x"); /* digits in threes */
    check_pieces(t, "v2024", "v|202|4");
    /* no normaliser: a decomposed e + U+0301 stays apart */
    check_pieces(t, "e\xcc\x81te\xcc\x81", "e|\xcc\x81te|\xcc\x81");
    /* added tokens inside words, matched before anything else */
    check_pieces(t, "foo<|im_start|>bar<|im_end|>baz", "foo|[257]|bar|[258]|baz");
    check_pieces(t, "a<|endoftext|>", "a|[256]");
    ck_assert_int_eq(tok_eot(t), 256);
    ck_assert_int_eq(tok_vocab_size(t), 259);
    tok_destroy(&t);
}
END_TEST

START_TEST(qwen2_splits)
{
    spec_t s = {.style = "qwen2", .added = im_tokens};
    tok_t *t = make_tok(&s);
    common_cases(t);
    check_pieces(t, "12345678 x", "1|2|3|4|5|6|7|8| x"); /* digits one by one */
    /* NFC: e + U+0301 composes to U+00E9, one letter run */
    check_pieces(t, "e\xcc\x81te\xcc\x81", "\xc3\xa9t\xc3\xa9");
    check_pieces(t, "x<|im_start|>user\nhi<|im_end|>", "x|[257]|user|\n|hi|[258]");
    tok_destroy(&t);
}
END_TEST

/* SmolLM2 style: Digits(individual_digits) then ByteLevel with its regex. */
START_TEST(digits_then_bytelevel)
{
    static const char *j =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": []}, \"pre_tokenizer\": "
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", "
        "\"individual_digits\": %s}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
        "\"use_regex\": true}]}, \"decoder\": {\"type\": \"ByteLevel\"}}";
    spec_t s = {.style = "gpt2"};
    char *full = make_json(&s), buf[16384];
    json_error_t err;
    json_t *root = json_loads(full, 0, &err);
    char *vocab = json_dumps(json_object_get(json_object_get(root, "model"), "vocab"), 0);
    snprintf(buf, sizeof buf, j, vocab, "true");
    tok_t *t = tok_from_json(buf, strlen(buf), "digits.json");
    ck_assert_msg(t != NULL, "%s", weft_last_error());
    check_pieces(t, "abc 2024 x9", "abc| |2|0|2|4| x|9");
    tok_destroy(&t);
    snprintf(buf, sizeof buf, j, vocab, "false");
    t = tok_from_json(buf, strlen(buf), "digits.json");
    ck_assert_msg(t != NULL, "%s", weft_last_error());
    check_pieces(t, "abc 2024 x9", "abc| |2024| x|9");
    tok_destroy(&t);
    free(vocab);
    free(full);
    json_decref(root);
}
END_TEST

START_TEST(gpt2_splits)
{
    spec_t s = {.style = "gpt2"};
    tok_t *t = make_tok(&s);
    check_pieces(t, "I'M here, you'RE IT's", "I|'|M| here|,| you|'|RE| IT|'s");
    check_pieces(t, "12345678 x", "12345678| x");
    check_pieces(t, "  hi\n\n  there  ", " | hi|\n\n | there|  ");
    ck_assert_int_eq(tok_eot(t), -1);
    tok_destroy(&t);
}
END_TEST

static void encode_eq(tok_t *t, const char *text, const int32_t *want, size_t nwant)
{
    tok_ids_t ids = {0};
    ck_assert_msg(tok_encode(t, text, strlen(text), &ids) == 0, "%s", weft_last_error());
    ck_assert_msg(ids.n == nwant, "\"%s\": %zu ids, want %zu", text, ids.n, nwant);
    for (size_t i = 0; i < nwant; i++)
        ck_assert_msg(ids.v[i] == want[i], "\"%s\": id %zu is %d, want %d", text, i, ids.v[i],
                      want[i]);
    char *back;
    size_t len;
    ck_assert(tok_decode(t, ids.v, ids.n, &back, &len) == 0);
    ck_assert_str_eq(back, text);
    free(back);
    tok_ids_free(&ids);
}

START_TEST(merges_lowest_rank_first)
{
    /* ids: 256 ab, 257 bc, 258 abc, 259 Ġa; "b c" outranks "a b" */
    static const char *extra[] = {"ab", "bc", "abc",
                                  "\xc4\xa0"
                                  "a",
                                  NULL};
    static const char *merges[] = {"b c", "a b", "ab c", "\xc4\xa0 a", NULL};
    for (int pairs = 0; pairs < 2; pairs++) {
        spec_t s = {.style = "llama3", .extra = extra, .merges = merges, .merges_as_pairs = pairs};
        tok_t *t = make_tok(&s);
        encode_eq(t, "abc", (int32_t[]){'a', 257}, 2); /* b c first, then no "a bc" merge */
        encode_eq(t, "ab", (int32_t[]){256}, 1);
        encode_eq(t, "abab a", (int32_t[]){256, 256, 259}, 3);
        tok_destroy(&t);
    }
}
END_TEST

START_TEST(ignore_merges_takes_whole_words)
{
    static const char *extra[] = {"ab", "abc", NULL};
    static const char *merges[] = {"a b", NULL};
    spec_t s = {.style = "llama3", .extra = extra, .merges = merges};
    tok_t *t = make_tok(&s);
    encode_eq(t, "abc", (int32_t[]){256, 'c'}, 2);
    tok_destroy(&t);
    s.ignore_merges = 1;
    t = make_tok(&s);
    encode_eq(t, "abc", (int32_t[]){257}, 1);
    tok_destroy(&t);
}
END_TEST

START_TEST(decode_replaces_invalid_utf8)
{
    spec_t s = {.style = "gpt2"};
    tok_t *t = make_tok(&s);
    /* E2 82 is a truncated 3-byte sequence: one U+FFFD; FF and FE: one each */
    int32_t ids[] = {0xe2, 0x82, 'A', 0xff, 0xfe, 'B'};
    char *text;
    size_t len;
    ck_assert(tok_decode(t, ids, 6, &text, &len) == 0);
    ck_assert_str_eq(text, "\xef\xbf\xbd"
                           "A\xef\xbf\xbd\xef\xbf\xbd"
                           "B");
    free(text);
    int32_t bad[] = {'a', 300};
    ck_assert(tok_decode(t, bad, 2, &text, &len) < 0);
    ck_assert_msg(strstr(weft_last_error(), "token id 300") != NULL, "%s", weft_last_error());
    tok_destroy(&t);
}
END_TEST

START_TEST(stream_equals_whole)
{
    static const char *extra[] = {"\xc4\xa0"
                                  "t",
                                  "he",
                                  "\xc4\xa0"
                                  "the",
                                  NULL};
    static const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", NULL};
    spec_t s = {.style = "llama3", .extra = extra, .merges = merges, .added = im_tokens};
    tok_t *t = make_tok(&s);
    static const char *words[] = {
        "the",          " the", "  ",    "\r\n", "12345", "caf\xc3\xa9",  "<|im_start|>",
        "x<|im_end|>y", "\t",   "don't", "!!",   " ",     "\xe2\x80\x83", "\n\n"};
    size_t cap = 600000, n = 0;
    char *text = malloc(cap + 64);
    uint64_t r = 12345;
    while (n < cap) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(r >> 33) % (sizeof words / sizeof *words)];
        memcpy(text + n, w, strlen(w));
        n += strlen(w);
    }
    tok_ids_t whole = {0}, streamed = {0};
    ck_assert(tok_encode(t, text, n, &whole) == 0);
    tok_stream_t *st = tok_stream_new(t);
    for (size_t off = 0; off < n;) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t k = 1 + (r >> 33) % 70000;
        if (k > n - off) k = n - off;
        ck_assert(tok_stream_feed(st, text + off, k, &streamed) == 0);
        off += k;
    }
    ck_assert(tok_stream_end(st, &streamed) == 0);
    ck_assert_uint_eq(streamed.n, whole.n);
    ck_assert(!memcmp(streamed.v, whole.v, whole.n * sizeof *whole.v));
    tok_stream_destroy(&st);
    tok_ids_free(&whole);
    tok_ids_free(&streamed);
    free(text);
    tok_destroy(&t);
}
END_TEST

static void refused(const char *json, const char *needle)
{
    tok_t *t = tok_from_json(json, strlen(json), "bad.json");
    ck_assert_msg(t == NULL, "accepted a bad tokenizer (%s)", needle);
    ck_assert_msg(strstr(weft_last_error(), needle) != NULL, "error \"%s\" lacks \"%s\"",
                  weft_last_error(), needle);
    ck_assert_msg(strchr(weft_last_error(), '\n') == NULL, "not one line: %s", weft_last_error());
}

START_TEST(refusals)
{
    refused("{\"model\": {\"type\": \"BPE\", ", "not JSON");
    refused("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "model type WordPiece");
    refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model type Unigram");
    static const char *merges[] = {"a zz", NULL};
    spec_t s = {.style = "llama3", .merges = merges};
    char *j = make_json(&s);
    refused(j, "names token \"zz\", which is not in the vocabulary");
    free(j);
    static const char *merges2[] = {"a b", NULL}; /* "ab" missing */
    s.merges = merges2;
    j = make_json(&s);
    refused(j, "makes \"ab\", which is not in the vocabulary");
    free(j);
    spec_t m = {.style = "llama3", .model = "WordLevel"};
    j = make_json(&m);
    refused(j, "model type WordLevel");
    free(j);
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": "
            "{\"type\": \"Metaspace\"}, \"decoder\": {\"type\": \"Metaspace\"}}",
            "pre_tokenizer Metaspace");
    refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"normalizer\": "
            "{\"type\": \"NFKC\"}}",
            "normalizer NFKC");
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(llama3_splits),
                            CHECK_TEST(qwen2_splits),
                            CHECK_TEST(gpt2_splits),
                            CHECK_TEST(digits_then_bytelevel),
                            CHECK_TEST(merges_lowest_rank_first),
                            CHECK_TEST(ignore_merges_takes_whole_words),
                            CHECK_TEST(decode_replaces_invalid_utf8),
                            CHECK_TEST(stream_equals_whole),
                            CHECK_TEST(refusals)};
    int failed = check_main((check_opts_t){.suite = "tokenizer", .tcase = "bpe"}, tests,
                            CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
