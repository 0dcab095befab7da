/* log.h: the last error of this thread, and log lines on stderr.
 * A failing function records one sentence with weft_error() and returns -1;
 * whoever can act on it (usually main) prints weft_last_error(). */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include <stdarg.h>

/* Records the message as this thread's last error; always returns -1 so that
 * `return weft_error("...")` reads naturally. */
int weft_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int weft_verror(const char *fmt, va_list ap);
/* The last recorded error ("unknown error" when none). */
const char *weft_last_error(void);
/* Prefixes the last error with "context: ", e.g. a file name. Returns -1. */
int weft_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log lines: "weft[<prog>] <level>: message" on stderr. */
void weft_log_init(const char *prog);
void weft_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void weft_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "<prog>: error: <last error>" on stderr. */
void weft_report(void);

#endif
