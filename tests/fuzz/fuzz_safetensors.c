/* fuzz_safetensors.c: libFuzzer target for the safetensors reader: the input
 * is written as a file, opened (length, header, every offset rule) and each
 * float tensor it describes is read and widened. */
#include "common/log.h"
#include "model/safetensors.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/weft-fuzz-st-%d.safetensors", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    close(fd);
    st_file_t *f = st_file_open(path);
    if (f) {
        const st_header_t *h = st_file_header(f);
        for (size_t i = 0; i < h->n; i++) {
            const st_tensor_t *t = &h->tensors[i];
            /* the header's checks bound numel by the file's size */
            float *buf = malloc((size_t)t->numel * sizeof *buf + 1);
            if (!buf) abort();
            st_file_read_f32(f, t, buf);
            free(buf);
        }
        (void)st_header_meta(h, "format");
        st_file_close(&f);
    }
    unlink(path);
    return 0;
}
