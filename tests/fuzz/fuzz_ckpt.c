/* fuzz_ckpt.c: libFuzzer target for the checkpoint manifest reader: the input
 * becomes the MANIFEST of a checkpoint folder that also holds a real file
 * (state.h5) and a symlink (link), then ckpt_verify and ckpt_find_latest
 * read it. */
#include "worker/ckpt.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char run_dir[256], ckpt_dir[300], manifest[320];

static void write_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    close(fd);
}

static void cleanup(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/state.h5", ckpt_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/link", ckpt_dir);
    unlink(p);
    unlink(manifest);
    rmdir(ckpt_dir);
    rmdir(run_dir);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(run_dir, sizeof run_dir, "%s/weft-fuzz-ckpt-XXXXXX", tmp);
    if (!mkdtemp(run_dir)) abort();
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt-7", run_dir);
    if (mkdir(ckpt_dir, 0700) < 0) abort();
    char p[400];
    snprintf(p, sizeof p, "%s/state.h5", ckpt_dir);
    write_file(p, "weft\n", 5); /* sha256 in the seeds */
    snprintf(p, sizeof p, "%s/link", ckpt_dir);
    if (symlink("/etc/passwd", p) < 0) abort();
    snprintf(manifest, sizeof manifest, "%s/MANIFEST", ckpt_dir);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!run_dir[0]) setup();
    write_file(manifest, data, size);
    (void)ckpt_verify(ckpt_dir);
    char dir[512];
    int64_t step = 0;
    int rc = ckpt_find_latest(run_dir, dir, sizeof dir, &step);
    if (rc == 1 && step != 7) abort();
    return 0;
}
