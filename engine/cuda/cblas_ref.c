/* cblas_ref.c: a plain row-major sgemm behind shim/cblas.h, so that the CPU
 * engine (the CUDA engine's reference) builds without a BLAS. Correct, not
 * fast: the references it serves are small models. */
#include "cblas.h"

#include <stddef.h>

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                 int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    (void)order; /* the engine only calls row-major */
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int k = 0; k < K; k++) {
            float a = alpha * (ta == CblasNoTrans ? A[(size_t)i * lda + k] : A[(size_t)k * lda + i]);
            if (tb == CblasNoTrans) {
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
}
