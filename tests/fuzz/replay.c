/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer, so the committed corpus and every input that once crashed are
 * replayed by `make check`. Arguments: files or folders; without any, the
 * folders tests/fuzz/corpus/FUZZ_TARGET and tests/fuzz/regress/FUZZ_TARGET
 * under $top_srcdir. Exit status 0 when every input ran (a crash aborts). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return -1;
    /* An exact-size copy, so that a read past the input is caught. */
    uint8_t *in = malloc(n ? n : 1);
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) < 0) return 0; /* an empty regress folder is not committed */
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort), rc = 0;
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, ents[i]->d_name);
            if (run_path(p, count) < 0) rc = -1;
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (run_path(argv[i], &count) < 0) rc = 1;
    } else {
        const char *top = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
        static const char *kinds[] = {"corpus", "regress"};
        for (int k = 0; k < 2; k++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/tests/fuzz/%s/%s", top, kinds[k], FUZZ_TARGET);
            if (run_path(p, &count) < 0) rc = 1;
        }
    }
    printf("%s: replayed %d inputs\n", FUZZ_TARGET, count);
    if (count == 0) {
        fprintf(stderr, "%s: no inputs found\n", FUZZ_TARGET);
        return 1;
    }
    return rc;
}
