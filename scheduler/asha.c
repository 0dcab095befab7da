/* asha.c: the ASHA rule (see asha.h). */
#include "scheduler/asha.h"

#include <math.h>

int asha_rung(int64_t s, int64_t min_steps, int eta, int64_t steps)
{
    if (min_steps < 1 || eta < 2 || s > steps) return -1;
    int64_t r = min_steps;
    for (int k = 0; r <= s; k++) {
        if (r == s) return k;
        if (r > INT64_MAX / eta) break;
        r *= eta;
    }
    return -1;
}

int asha_continues(const double *losses, size_t n, double mine, int eta)
{
    if (isnan(mine) || eta < 2) return 0;
    size_t better = 0;
    for (size_t i = 0; i < n; i++)
        if (losses[i] < mine) better++;
    size_t keep = (n + (size_t)eta - 1) / (size_t)eta;
    return better + 1 <= (keep ? keep : 1);
}
