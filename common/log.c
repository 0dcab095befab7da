/* log.c: per-thread last error and stderr logging (see log.h). */
#include "common/log.h"

#include <stdio.h>
#include <string.h>

#define ERRMAX 1024

static _Thread_local char last_error[ERRMAX];
static const char *prog_name = "weft";

int weft_verror(const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return -1;
}

int weft_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft_verror(fmt, ap);
    va_end(ap);
    return -1;
}

const char *weft_last_error(void)
{
    return last_error[0] ? last_error : "unknown error";
}

int weft_error_prefix(const char *fmt, ...)
{
    char prefix[ERRMAX], old[ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* prefix ": " old, cut to the buffer */
    size_t n = strlen(prefix);
    const char *tail = old[0] ? old : "unknown error";
    memcpy(last_error, prefix, n);
    if (n + 2 < ERRMAX) {
        memcpy(last_error + n, ": ", 2);
        n += 2;
        size_t t = strlen(tail);
        if (t > ERRMAX - 1 - n) t = ERRMAX - 1 - n;
        memcpy(last_error + n, tail, t);
        n += t;
    }
    last_error[n < ERRMAX ? n : ERRMAX - 1] = 0;
    return -1;
}

void weft_log_init(const char *prog)
{
    const char *slash = strrchr(prog, '/');
    prog_name = slash ? slash + 1 : prog;
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[ERRMAX];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "%s: %s%s\n", prog_name, level, line);
}

void weft_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void weft_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void weft_report(void)
{
    fprintf(stderr, "%s: error: %s\n", prog_name, weft_last_error());
}
