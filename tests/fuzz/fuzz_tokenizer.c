/* fuzz_tokenizer.c: libFuzzer target for the BPE tokenizer reader and
 * encoder: the input is a tokenizer.json, a NUL byte, then a text. A
 * tokenizer that loads encodes the text whole and streamed in small pieces,
 * which must give the same ids, and decoding them must give the text back
 * (after a prefix space, if the tokenizer adds one) when it is valid UTF-8
 * and NFC is off. */
#include "model/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t njson = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t ntext = nul ? size - njson - 1 : 0;
    tok_t *tok = tok_from_json(data, njson, "fuzz.json");
    if (!tok) return 0;
    tok_ids_t whole = {0}, streamed = {0};
    if (tok_encode(tok, text, ntext, &whole) == 0) {
        tok_stream_t *s = tok_stream_new(tok);
        for (size_t o = 0; o < ntext; o += 3)
            if (tok_stream_feed(s, text + o, ntext - o < 3 ? ntext - o : 3, &streamed) < 0) abort();
        if (tok_stream_end(s, &streamed) < 0) abort();
        tok_stream_destroy(&s);
        if (streamed.n != whole.n || memcmp(streamed.v, whole.v, whole.n * sizeof *whole.v)) {
            fprintf(stderr, "streamed ids differ from whole-text ids\n");
            abort();
        }
        char *back;
        size_t len;
        if (tok_decode(tok, whole.v, whole.n, &back, &len) < 0) abort();
        /* NFC may change the text; a prefix space adds one */
        int nfc = memmem(data, njson, "NFC", 3) != NULL;
        int same = len == ntext && !memcmp(back, text, len);
        int prefixed = len == ntext + 1 && back[0] == ' ' && !memcmp(back + 1, text, ntext);
        if (!nfc && tok_utf8_ok(text, ntext) && !same && !prefixed) {
            fprintf(stderr, "decode(encode(x)) != x\n");
            abort();
        }
        free(back);
    }
    tok_ids_free(&whole);
    tok_ids_free(&streamed);
    tok_destroy(&tok);
    return 0;
}
