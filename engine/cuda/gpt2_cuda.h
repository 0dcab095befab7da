/* gpt2_cuda.h: the GPT-2 engine on one NVIDIA GPU, behind the same calls as
 * the CPU engine (engine/gpt2.h): parameters from the host flat buffer in the
 * same tensor table order, forward to the loss, hand-written backward, global
 * gradient norm, clipping and a multi-tensor AdamW, all on the device.
 *
 * Precision: float32 master weights, gradients and AdamW moments always.
 * Products run on cuBLASLt: GPT2_CUDA_FP32 in float32, GPT2_CUDA_TF32 on
 * float32 buffers with TF32 tensor cores, GPT2_CUDA_BF16 with bfloat16
 * operands and activations (float32 accumulation, float32 residual stream,
 * weight gradients accumulated straight into the float32 buffer).
 * Same inputs, same bits: no atomics, every reduction in a fixed order, one
 * cuBLASLt algorithm pinned per product shape. */
#ifndef WEFT_GPT2_CUDA_H
#define WEFT_GPT2_CUDA_H

#include "engine/gpt2.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GPT2_CUDA_FP32, GPT2_CUDA_TF32, GPT2_CUDA_BF16 } gpt2_cuda_precision_t;

/* "fp32", "tf32" or "bf16"; -1 and a one-line error otherwise. */
int gpt2_cuda_precision_parse(const char *name, gpt2_cuda_precision_t *prec);
const char *gpt2_cuda_precision_name(gpt2_cuda_precision_t prec);

/* Number of CUDA devices usable by this process (0 when none, or when the
 * driver is missing: the reason is then the last error). */
int gpt2_cuda_device_count(void);

typedef struct gpt2_cuda gpt2_cuda_t;

/* A device copy of host: its config, tensor table and parameters, on CUDA
 * device `device` (e.g. the local MPI rank). NULL and a one-line error when
 * the device, the head size or memory is not there. */
gpt2_cuda_t *gpt2_cuda_new(const gpt2_t *host, gpt2_cuda_precision_t prec, int device);
void gpt2_cuda_destroy(gpt2_cuda_t **self_p);

size_t gpt2_cuda_nparams(const gpt2_cuda_t *self);
/* Device name, e.g. "NVIDIA H100 80GB HBM3". */
const char *gpt2_cuda_device_name(const gpt2_cuda_t *self);

/* Host <-> device copies of the flat buffers (n floats each, table order). */
int gpt2_cuda_set_params(gpt2_cuda_t *self, const float *params, size_t n);
int gpt2_cuda_get_params(gpt2_cuda_t *self, float *params, size_t n);
int gpt2_cuda_get_grads(gpt2_cuda_t *self, float *grads, size_t n);
int gpt2_cuda_set_grads(gpt2_cuda_t *self, const float *grads, size_t n);
/* AdamW moments, for checkpoints (device-independent: same layout as CPU). */
int gpt2_cuda_get_moments(gpt2_cuda_t *self, float *m, float *v, size_t n);
int gpt2_cuda_set_moments(gpt2_cuda_t *self, const float *m, const float *v, size_t n);
int gpt2_cuda_zero_grad(gpt2_cuda_t *self);

/* Allocates, once, activations for batches up to (B,T); T <= n_ctx. Out of
 * memory names the sizes tried. */
int gpt2_cuda_alloc(gpt2_cuda_t *self, int B, int T);

/* As gpt2_forward: inputs, targets (B,T) on the host (-1: ignored; NULL: no
 * loss); the mean loss over valid targets in *loss. */
int gpt2_cuda_forward(gpt2_cuda_t *self, const int *inputs, const int *targets, int B, int T,
                      float *loss);
/* After a forward, before the backward: logits (B,T,V) and per-position
 * losses (B,T) copied to the host as float. */
int gpt2_cuda_logits(gpt2_cuda_t *self, float *logits);
int gpt2_cuda_losses(gpt2_cuda_t *self, float *losses);
size_t gpt2_cuda_valid_targets(const gpt2_cuda_t *self);

/* As gpt2_backward: scale (B) on the host, NULL for the mean loss.
 * Accumulates (+=) into the gradients. */
int gpt2_cuda_backward(gpt2_cuda_t *self, const float *scale);

/* Global gradient norm (double accumulation, fixed order); -1 on error. */
double gpt2_cuda_grad_norm(gpt2_cuda_t *self);
/* As grad_clip over the whole buffer: scales by max_norm/(norm + 1e-6) when
 * norm > max_norm > 0. Returns the factor (1 when none), -1 on error. */
float gpt2_cuda_grad_clip(gpt2_cuda_t *self, double norm, float max_norm);
/* As gpt2_adamw, in one launch over every tensor (moments kept on the
 * device, zero at first). */
int gpt2_cuda_adamw(gpt2_cuda_t *self, float lr, const adamw_hparams_t *hp, unsigned decay_kinds,
                    long t);

/* For a collective over ranks on the device (NCCL), in place: the gradient
 * buffer (nparams floats, table order) and the engine's stream (a
 * cudaStream_t) its kernels run on; then grads *= f. */
float *gpt2_cuda_grads_device(gpt2_cuda_t *self);
void *gpt2_cuda_stream(gpt2_cuda_t *self);
int gpt2_cuda_scale_grads(gpt2_cuda_t *self, float f);

/* Waits for the device; reports an asynchronous error. */
int gpt2_cuda_sync(gpt2_cuda_t *self);

#ifdef __cplusplus
}
#endif

#endif
