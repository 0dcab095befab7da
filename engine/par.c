/* par.c: the rank's thread count (par.h). */
#include "engine/par.h"

#include <cblas.h>

static int par_n = 1;

void par_set_threads(int n)
{
    par_n = n > 1 ? n : 1;
    openblas_set_num_threads(par_n);
}

int par_threads(void)
{
    return par_n;
}

int par_blas_serial(void)
{
    int saved = openblas_get_num_threads();
    if (saved > 1) openblas_set_num_threads(1);
    return saved;
}

void par_blas_restore(int saved)
{
    if (saved > 1) openblas_set_num_threads(saved);
}
