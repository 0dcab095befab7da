/* clock.h: the one monotonic clock, in seconds, for timeouts, rates and
 * durations (never for dates: it starts at an arbitrary point). */
#ifndef WEFT_CLOCK_H
#define WEFT_CLOCK_H

#include <time.h>

static inline double weft_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
