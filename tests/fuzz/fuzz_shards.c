/* fuzz_shards.c: libFuzzer target for the shard-file validator: the input is
 * written to a file and opened with shardset_new; a file that validates is
 * read (sizes, shard ranges, documents, a training and a validation window). */
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shardset.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

/* HDF5 asks malloc for whatever sizes a damaged file names and handles a
 * NULL; under ASan such a request must fail the same way, not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* HDF5 1.10.8 leaks on some damaged files inside H5Dopen2 (the layout
 * message; tests/fuzz/hdf5-bugs/leak-h5dopen-layout): not ours to fix. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libhdf5_openmpi.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        h5_quiet(); /* as every program that opens shard files does */
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof path, "%s/weft-fuzz-shards-%d.h5", tmp, (int)getpid());
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    close(fd);
    shardset_t *s = shardset_new(path);
    unlink(path); /* the open handle keeps it readable */
    if (!s) return 0;
    (void)shardset_tokenizer(s);
    (void)shardset_source_sha256(s);
    int64_t ntrain = shardset_tokens(s, SHARDSET_TRAIN);
    int64_t nshards = shardset_shards(s);
    int64_t start, end, off[2];
    for (int64_t i = 0; i < nshards && i < 8; i++) (void)shardset_shard_range(s, i, &start, &end);
    for (int sp = 0; sp < 2; sp++) {
        int64_t docs = shardset_docs(s, (shardset_split_t)sp);
        for (int64_t i = 0; i < docs && i < 4; i++) {
            (void)shardset_doc_range(s, (shardset_split_t)sp, i, &start, &end);
            (void)shardset_doc_offsets(s, (shardset_split_t)sp, i, 2, off);
        }
    }
    int32_t tok[9];
    if (ntrain > 0) (void)shardset_read(s, SHARDSET_TRAIN, 0, ntrain < 9 ? ntrain : 9, tok);
    if (shardset_select(s, 0, 1, 8) == 0) {
        shardset_cursor_t c;
        shardset_cursor_init(&c, 1);
        (void)shardset_next_window(s, &c, tok);
    }
    if (shardset_val_windows(s, 8) > 0) (void)shardset_val_window(s, 8, 0, tok);
    shardset_destroy(&s);
    return 0;
}
