/* par.h: the rank's threads for the engine's loops outside sgemm (norms,
 * RoPE, activations, attention, cross-entropy, AdamW, embeddings), run on
 * OpenMP. Every parallel loop cuts its work by rows, heads, sequences,
 * columns or fixed-size chunks, each piece computed exactly as the serial
 * loop computes it, and no reduction is split across threads: results do
 * not depend on the thread count. */
#ifndef WEFT_PAR_H
#define WEFT_PAR_H

/* Sets the rank's threads (n >= 1) for the engine's loops and for OpenBLAS
 * (products over all rows thread inside BLAS). Call outside parallel code. */
void par_set_threads(int n);
/* The count par_set_threads set (1 until it is called). */
int par_threads(void);

/* OpenBLAS single-threaded for a parallel region whose threads call sgemm
 * themselves; returns what par_blas_restore gives back afterwards. */
int par_blas_serial(void);
void par_blas_restore(int saved);

/* `#pragma omp parallel for` over the rank's threads, for a loop of n
 * iterations of about `work` operations each: serial below a size where a
 * region costs more than it saves. */
#define PAR_MIN_WORK         8192
#define PAR_THREADS(n, work) ((double)(n) * (double)(work) >= PAR_MIN_WORK ? par_threads() : 1)

#endif
