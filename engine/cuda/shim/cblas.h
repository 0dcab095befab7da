/* cblas.h (shim): the one CBLAS call the CPU engine makes, for building the
 * CUDA engine's tests and benchmark where no CBLAS is installed (the device
 * machine). cblas_ref.c implements it; configure-based builds never see
 * this folder. */
#ifndef WEFT_CBLAS_SHIM_H
#define WEFT_CBLAS_SHIM_H

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                 int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

#endif
