/* suggest.c: edit distance and the closest known name (see suggest.h). */
#include "common/suggest.h"

#include <string.h>

int weft_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int m = sub < del ? sub : del;
            d[i][j] = m < ins ? m : ins;
            /* a swap of neighbours counts as one edit */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[na][nb];
}

int weft_closest(const char *s, const char *const *names, int count)
{
    int best = -1, bestd = 99;
    for (int i = 0; i < count; i++) {
        int d = weft_edit_distance(s, names[i]);
        if (d < bestd) bestd = d, best = i;
    }
    return bestd <= 3 ? best : -1;
}
