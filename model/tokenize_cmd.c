/* tokenize_cmd.c: `weft tokenize`: text to ids or, with --decode, ids to
 * text, with a Hugging Face byte-level BPE tokenizer (tokenizer.h); the tool
 * to reach for when a sample looks wrong. Encoding streams: memory stays
 * bounded whatever the input's size. */
#include "common/log.h"
#include "model/tokenizer.h"
#include "common/weft_cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sysexits.h>

#define BLOCK (1 << 20)

static void usage(FILE *out)
{
    fprintf(out, "usage: weft tokenize --tokenizer PATH [--json] [FILE|-]\n"
                 "       weft tokenize --tokenizer PATH --decode [FILE|-]\n"
                 "       weft tokenize --tokenizer PATH --info\n\n"
                 "Encodes text into token ids (printed space-separated, or {\"ids\": [...]} with\n"
                 "--json), or decodes ids (space-separated, or JSON) back to text, exactly as\n"
                 "Hugging Face tokenizers does with add_special_tokens=False.\n\n"
                 "  --tokenizer PATH  a tokenizer.json, a folder holding one (or vocab.json +\n"
                 "                    merges.txt), or a weft-model file carrying a tokenizer\n"
                 "  --decode          read ids, print text\n"
                 "  --json            print {\"ids\": [...]}\n"
                 "  --info            print the vocabulary size, end-of-text id and SHA-256\n");
}

static int print_ids(const tok_ids_t *ids, int json, int64_t *count)
{
    for (size_t i = 0; i < ids->n; i++) {
        const char *sep = *count == 0 ? "" : json ? ", " : " ";
        if (printf("%s%d", sep, ids->v[i]) < 0) return weft_error("cannot write the output");
        (*count)++;
    }
    return 0;
}

static int encode(tok_t *tok, int fd, const char *name, int json)
{
    tok_stream_t *s = tok_stream_new(tok);
    char *buf = malloc(BLOCK);
    tok_ids_t ids = {0};
    int64_t count = 0;
    int rc = s && buf ? 0 : weft_error("out of memory");
    if (rc == 0 && json) printf("{\"ids\": [");
    while (rc == 0) {
        ssize_t n = read(fd, buf, BLOCK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) rc = weft_error("cannot read %s: %s", name, strerror(errno));
        if (n <= 0) break;
        ids.n = 0;
        rc = tok_stream_feed(s, buf, (size_t)n, &ids);
        if (rc == 0) rc = print_ids(&ids, json, &count);
    }
    ids.n = 0;
    if (rc == 0) rc = tok_stream_end(s, &ids);
    if (rc == 0) rc = print_ids(&ids, json, &count);
    if (rc == 0) printf(json ? "]}\n" : "\n");
    if (rc == 0 && fflush(stdout) != 0) rc = weft_error("cannot write the output");
    tok_ids_free(&ids);
    tok_stream_destroy(&s);
    free(buf);
    return rc;
}

static int read_all(int fd, const char *name, char **out, size_t *n)
{
    size_t cap = BLOCK, len = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (!b) return weft_error("out of memory reading %s", name);
        ssize_t r = read(fd, b + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(b);
            return weft_error("cannot read %s: %s", name, strerror(errno));
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) {
            char *p = realloc(b, 2 * cap + 1);
            if (!p) free(b);
            b = p;
            cap *= 2;
        }
    }
    b[len] = 0;
    *out = b;
    *n = len;
    return 0;
}

/* Ids as JSON ([...] or {"ids": [...]}) or as whole numbers separated by
 * spaces or commas. */
static int parse_ids(const char *text, size_t n, const char *name, tok_ids_t *ids)
{
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p == '[' || *p == '{') {
        json_error_t err;
        json_t *root = json_loadb(text, n, 0, &err), *arr = root;
        if (!root)
            return weft_error("%s: not JSON (%s, line %d); give ids as numbers or {\"ids\": [...]}",
                              name, err.text, err.line);
        if (json_is_object(root)) arr = json_object_get(root, "ids");
        int rc = json_is_array(arr) ? 0 : weft_error("%s: no \"ids\" array", name);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            if (rc < 0) break;
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
                json_integer_value(v) > INT32_MAX)
                rc = weft_error("%s: ids[%zu] is not a token id (a whole number)", name, i);
            else
                rc = tok_ids_push(ids, (int32_t)json_integer_value(v));
        }
        json_decref(root);
        return rc;
    }
    while (*p) {
        if (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            !(*end == 0 || *end == ' ' || *end == ',' || *end == '\n' || *end == '\t' ||
              *end == '\r')) {
            size_t k = strcspn(p, " ,\n\t\r");
            return weft_error("%s: '%.*s' (token %zu) is not a token id (a whole number)", name,
                              (int)(k > 40 ? 40 : k), p, ids->n + 1);
        }
        if (tok_ids_push(ids, (int32_t)v) < 0) return -1;
        p = end;
    }
    return 0;
}

static int decode(tok_t *tok, int fd, const char *name)
{
    char *in = NULL, *text = NULL;
    size_t n = 0, len = 0;
    tok_ids_t ids = {0};
    if (read_all(fd, name, &in, &n) < 0) return -1;
    int rc = parse_ids(in, n, name, &ids);
    if (rc == 0) rc = tok_decode(tok, ids.v, ids.n, &text, &len);
    if (rc == 0 && (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0))
        rc = weft_error("cannot write the output");
    free(in);
    free(text);
    tok_ids_free(&ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option longopts[] = {{"tokenizer", required_argument, 0, 't'},
                                             {"decode", no_argument, 0, 'd'},
                                             {"json", no_argument, 0, 'j'},
                                             {"info", no_argument, 0, 'i'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *path = NULL;
    int dec = 0, json = 0, info = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            path = optarg;
            break;
        case 'd':
            dec = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'i':
            info = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            weft_error("unknown or incomplete option '%s'; see weft tokenize --help",
                       argv[optind - 1]);
            weft_report();
            return EX_USAGE;
        }
    }
    if (!path || argc - optind > 1) {
        weft_error(!path ? "no tokenizer: give --tokenizer PATH" : "give at most one input FILE");
        weft_report();
        return EX_USAGE;
    }
    tok_t *tok = tok_load(path);
    if (!tok) {
        weft_report();
        return EX_DATAERR;
    }
    const char *name = optind < argc ? argv[optind] : "-";
    int fd = strcmp(name, "-") ? open(name, O_RDONLY | O_CLOEXEC) : 0;
    int rc = 0;
    if (fd < 0)
        rc = weft_error("cannot open %s: %s", name, strerror(errno));
    else if (info) {
        int eot = tok_eot(tok);
        printf("vocab_size %d\neot %d%s%s\nsha256 %s\n", tok_vocab_size(tok), eot,
               eot >= 0 ? " " : "", eot >= 0 ? tok_token(tok, eot) : "", tok_sha256(tok));
    } else
        rc = dec ? decode(tok, fd, strcmp(name, "-") ? name : "standard input")
                 : encode(tok, fd, strcmp(name, "-") ? name : "standard input", json);
    if (fd > 0) close(fd);
    tok_destroy(&tok);
    if (rc < 0) {
        weft_report();
        return EX_DATAERR;
    }
    return 0;
}
