/* gpt2_cuda.cu: the GPT-2 engine on one GPU (see gpt2_cuda.h). Products on
 * cuBLASLt, one algorithm pinned per shape; the rest in kernels_cuda.cuh.
 * Forward and backward follow engine/gpt2.c step for step, with the
 * residual sum fused into the following LayerNorm. */
#include "engine/cuda/gpt2_cuda.h"
#include "engine/cuda/kernels_cuda.cuh"
#include "engine/cuda/attention_wmma.cuh"

extern "C" {
#include "common/log.h"
}

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return weft_error("CUDA: %s failed: %s (%s:%d)", #call, cudaGetErrorString(e_),        \
                              __FILE__, __LINE__);                                                 \
    } while (0)
#define LT_OK(call)                                                                                \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return weft_error("cuBLASLt: %s failed with status %d (%s:%d)", #call, (int)s_,        \
                              __FILE__, __LINE__);                                                 \
    } while (0)
#define LAUNCH_OK()                                                                                \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess)                                                                     \
            return weft_error("CUDA: kernel launch failed: %s (%s:%d)", cudaGetErrorString(e_),    \
                              __FILE__, __LINE__);                                                 \
    } while (0)

#define WORKSPACE_BYTES ((size_t)32 << 20)
#define MAX_ALGOS       256
#define ADAM_CHUNK      65536u

/* One product shape with its descriptors and pinned algorithm. */
typedef struct {
    int m, n, k, ta, tb, lda, ldb, ldd;
    cudaDataType_t at, dt;
    int epi; /* 0 none, 1 bias */
    int align;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} lt_plan_t;

struct gpt2_cuda {
    gpt2_config_t cfg;
    gpt2_cuda_precision_t prec;
    int device;
    char devname[256];
    size_t nparams, ntensors;
    gpt2_tensor_t *tensors;
    /* float32 master buffers, table order */
    float *params, *grads, *m, *v;
    bf16 *params_bf; /* bf16 copy the products read (bf16 precision) */
    adam_chunk_t *chunks;
    int nchunks;
    unsigned chunk_decay; /* decay_kinds the chunk table was built for */
    double *norm_part, *norm_out;
    float *colsum_part;
    size_t colsum_cap;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;
    lt_plan_t plans[MAX_ALGOS];
    int nplans;
    /* activations for capacity (Bc,Tc) */
    int Bc, Tc, B, T, ldv;
    size_t valid;
    void *acts;  /* one allocation, carved below */
    size_t acts_bytes;
    float *res2, *res3, *encoded, *dres;
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd, *lnf_mean, *lnf_rstd, *lse, *losses;
    float *att_lse, *att_D, *scale;
    void *ln1, *qkv, *atty, *ln2, *fch, *fch_gelu, *lnf, *logits, *modout;
    void *dresT, *dln, *datty, *dqkv, *dfch;
    int *inputs, *targets, *wte_tokens, *wte_start, *wte_pos;
    int nuniq;
    int *h_inputs, *h_targets;
    float *h_losses;
};

extern "C" int gpt2_cuda_precision_parse(const char *name, gpt2_cuda_precision_t *prec)
{
    if (!strcmp(name, "fp32"))
        *prec = GPT2_CUDA_FP32;
    else if (!strcmp(name, "tf32"))
        *prec = GPT2_CUDA_TF32;
    else if (!strcmp(name, "bf16"))
        *prec = GPT2_CUDA_BF16;
    else
        return weft_error("unknown precision '%s': use fp32, tf32 or bf16", name);
    return 0;
}

extern "C" const char *gpt2_cuda_precision_name(gpt2_cuda_precision_t prec)
{
    return prec == GPT2_CUDA_BF16 ? "bf16" : prec == GPT2_CUDA_TF32 ? "tf32" : "fp32";
}

extern "C" int gpt2_cuda_device_count(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        weft_error("no usable CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) weft_error("no CUDA device found");
    return n;
}

static size_t act_size(const gpt2_cuda_t *self)
{
    return self->prec == GPT2_CUDA_BF16 ? sizeof(bf16) : sizeof(float);
}

/* ---------------------------------------------------------------------------
 * cuBLASLt products, column-major: D (m,n) = op(A) (m,k) · op(B) (k,n)
 * [+ bias (m)] [+ D when beta = 1]. */

static int align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && a % al) al >>= 1;
    return al;
}

static int lt_plan(gpt2_cuda_t *self, lt_plan_t *key, const void *A, const void *B, const void *D,
                   const void *bias, lt_plan_t **out)
{
    int al = align_of(A);
    if (align_of(B) < al) al = align_of(B);
    if (align_of(D) < al) al = align_of(D);
    if (bias && align_of(bias) < al) al = align_of(bias);
    key->align = al;
    for (int i = 0; i < self->nplans; i++) {
        lt_plan_t *p = &self->plans[i];
        if (p->m == key->m && p->n == key->n && p->k == key->k && p->ta == key->ta &&
            p->tb == key->tb && p->lda == key->lda && p->ldb == key->ldb && p->ldd == key->ldd &&
            p->at == key->at && p->dt == key->dt && p->epi == key->epi && p->align == key->align) {
            *out = p;
            return 0;
        }
    }
    if (self->nplans == MAX_ALGOS) return weft_error("too many product shapes (%d)", MAX_ALGOS);
    lt_plan_t *p = &self->plans[self->nplans];
    *p = *key;
    cublasComputeType_t ct =
        self->prec == GPT2_CUDA_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    LT_OK(cublasLtMatmulDescCreate(&p->desc, ct, CUDA_R_32F));
    cublasOperation_t ta = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (p->epi) {
        cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
        LT_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
        cudaDataType_t bt = p->at;
        LT_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                             sizeof bt));
    }
    LT_OK(cublasLtMatrixLayoutCreate(&p->la, p->at, p->ta ? p->k : p->m, p->ta ? p->m : p->k,
                                     p->lda));
    LT_OK(cublasLtMatrixLayoutCreate(&p->lb, p->at, p->tb ? p->n : p->k, p->tb ? p->k : p->n,
                                     p->ldb));
    LT_OK(cublasLtMatrixLayoutCreate(&p->ld, p->dt, p->m, p->n, p->ldd));
    cublasLtMatmulPreference_t pref;
    LT_OK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = WORKSPACE_BYTES;
    uint32_t a32 = (uint32_t)al;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32,
                                         sizeof a32);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a32,
                                         sizeof a32);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a32,
                                         sizeof a32);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a32,
                                         sizeof a32);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(self->lt, p->desc, p->la, p->lb, p->ld,
                                                       p->ld, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
        return weft_error("cuBLASLt has no algorithm for the product (%d,%d,%d) trans %d%d in %s "
                          "(status %d)",
                          p->m, p->n, p->k, p->ta, p->tb, gpt2_cuda_precision_name(self->prec),
                          (int)st);
    p->algo = res.algo;
    self->nplans++;
    *out = p;
    return 0;
}

static int matmul(gpt2_cuda_t *self, void *D, cudaDataType_t dt, int ldd, const void *A, int lda,
                  int ta, const void *B, int ldb, int tb, int m, int n, int k, float beta,
                  const void *bias)
{
    if (m == 0 || n == 0) return 0;
    cudaDataType_t at = self->prec == GPT2_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    lt_plan_t key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.ta = ta, key.tb = tb;
    key.lda = lda, key.ldb = ldb, key.ldd = ldd, key.at = at, key.dt = dt, key.epi = bias != NULL;
    lt_plan_t *p;
    if (lt_plan(self, &key, A, B, D, bias, &p) < 0) return -1;
    if (bias)
        LT_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                             sizeof bias));
    float alpha = 1.0f;
    LT_OK(cublasLtMatmul(self->lt, p->desc, &alpha, A, p->la, B, p->lb, &beta, D, p->ld, D, p->ld,
                         &p->algo, self->workspace, WORKSPACE_BYTES, self->stream));
    return 0;
}

/* The parameter a product reads: the bf16 copy in bf16 precision. */
static const void *wptr(const gpt2_cuda_t *self, size_t off)
{
    return self->prec == GPT2_CUDA_BF16 ? (const void *)(self->params_bf + off)
                                        : (const void *)(self->params + off);
}

static cudaDataType_t act_type(const gpt2_cuda_t *self)
{
    return self->prec == GPT2_CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Row-major linear: out (N,OC) = inp (N,IC) · w (IC,OC) + bias. */
static int linear_forward(gpt2_cuda_t *self, void *out, const void *inp, size_t woff, size_t boff,
                          int N, int IC, int OC)
{
    return matmul(self, out, act_type(self), OC, wptr(self, woff), OC, 0, inp, IC, 0, OC, N, IC,
                  0.0f, wptr(self, boff));
}

template <typename T> static int colsum(gpt2_cuda_t *self, float *dbias, float *dweight,
                                        const T *dy, const float *x, const float *mean,
                                        const float *rstd, int N, int OC)
{
    int R = (N + 255) / 256;
    if (R > 64) R = 64;
    int rows_per = (N + R - 1) / R;
    dim3 grid((OC + 31) / 32, R), block(32, 8);
    colsum_stage1_k<T><<<grid, block, 0, self->stream>>>(self->colsum_part, dy, x, mean, rstd, N,
                                                         OC, rows_per);
    LAUNCH_OK();
    colsum_stage2_k<<<(OC + 255) / 256, 256, 0, self->stream>>>(dbias, dweight, self->colsum_part,
                                                                 R, OC);
    LAUNCH_OK();
    return 0;
}

/* dinp (N,IC) = dout · wᵀ (dinp NULL: skipped); dw (IC,OC) += inpᵀ · dout;
 * dbias (OC) += column sums of dout. */
template <typename T>
static int linear_backward(gpt2_cuda_t *self, T *dinp, const T *dout, const T *inp, size_t woff,
                           size_t boff, int N, int IC, int OC)
{
    if (dinp && matmul(self, dinp, act_type(self), IC, wptr(self, woff), OC, 1, dout, OC, 0, IC, N,
                       OC, 0.0f, NULL) < 0)
        return -1;
    if (matmul(self, self->grads + woff, CUDA_R_32F, OC, dout, OC, 0, inp, IC, 1, OC, IC, N, 1.0f,
               NULL) < 0)
        return -1;
    return colsum<T>(self, self->grads + boff, NULL, dout, NULL, NULL, NULL, N, OC);
}

/* ---------------------------------------------------------------------------
 * Life cycle. */

static void free_acts(gpt2_cuda_t *self)
{
    cudaFree(self->acts);
    self->acts = NULL;
    free(self->h_inputs);
    free(self->h_targets);
    free(self->h_losses);
    self->h_inputs = self->h_targets = NULL;
    self->h_losses = NULL;
    self->Bc = self->Tc = 0;
}

extern "C" void gpt2_cuda_destroy(gpt2_cuda_t **self_p)
{
    gpt2_cuda_t *self = *self_p;
    if (!self) return;
    cudaSetDevice(self->device);
    cudaStreamSynchronize(self->stream);
    free_acts(self);
    for (int i = 0; i < self->nplans; i++) {
        cublasLtMatrixLayoutDestroy(self->plans[i].la);
        cublasLtMatrixLayoutDestroy(self->plans[i].lb);
        cublasLtMatrixLayoutDestroy(self->plans[i].ld);
        cublasLtMatmulDescDestroy(self->plans[i].desc);
    }
    cudaFree(self->params);
    cudaFree(self->grads);
    cudaFree(self->m);
    cudaFree(self->v);
    cudaFree(self->params_bf);
    cudaFree(self->chunks);
    cudaFree(self->norm_part);
    cudaFree(self->norm_out);
    cudaFree(self->workspace);
    if (self->lt) cublasLtDestroy(self->lt);
    if (self->stream) cudaStreamDestroy(self->stream);
    free(self->tensors);
    free(self);
    *self_p = NULL;
}

static int setup(gpt2_cuda_t *self, const gpt2_t *host)
{
    int ndev = 0;
    CUDA_OK(cudaGetDeviceCount(&ndev));
    if (self->device < 0 || self->device >= ndev)
        return weft_error("CUDA device %d does not exist (this machine has %d)", self->device,
                          ndev);
    CUDA_OK(cudaSetDevice(self->device));
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, self->device));
    snprintf(self->devname, sizeof self->devname, "%s", prop.name);
    int hs = self->cfg.n_embd / self->cfg.n_head;
    if (hs != 16 && hs != 32 && hs != 64)
        return weft_error("head size %d (n_embd %d / n_head %d) is not supported by the CUDA "
                          "engine: it runs head sizes 16, 32 and 64",
                          hs, self->cfg.n_embd, self->cfg.n_head);
    CUDA_OK(cudaStreamCreateWithFlags(&self->stream, cudaStreamNonBlocking));
    LT_OK(cublasLtCreate(&self->lt));
    size_t bytes = self->nparams * sizeof(float);
    CUDA_OK(cudaMalloc(&self->params, bytes));
    CUDA_OK(cudaMalloc(&self->grads, bytes));
    CUDA_OK(cudaMalloc(&self->m, bytes));
    CUDA_OK(cudaMalloc(&self->v, bytes));
    CUDA_OK(cudaMemset(self->grads, 0, bytes));
    CUDA_OK(cudaMemset(self->m, 0, bytes));
    CUDA_OK(cudaMemset(self->v, 0, bytes));
    if (self->prec == GPT2_CUDA_BF16)
        CUDA_OK(cudaMalloc(&self->params_bf, self->nparams * sizeof(bf16)));
    CUDA_OK(cudaMalloc(&self->workspace, WORKSPACE_BYTES));
    CUDA_OK(cudaMalloc(&self->norm_part, NORM_BLOCKS * sizeof(double)));
    CUDA_OK(cudaMalloc(&self->norm_out, sizeof(double)));
    /* one chunk list over every tensor; decay flags filled by adamw */
    int n = 0;
    for (size_t i = 0; i < self->ntensors; i++)
        n += (int)((self->tensors[i].numel + ADAM_CHUNK - 1) / ADAM_CHUNK);
    self->nchunks = n;
    CUDA_OK(cudaMalloc(&self->chunks, n * sizeof(adam_chunk_t)));
    self->chunk_decay = ~0u;
    return gpt2_cuda_set_params(self, host->params, host->nparams);
}

extern "C" gpt2_cuda_t *gpt2_cuda_new(const gpt2_t *host, gpt2_cuda_precision_t prec, int device)
{
    if (host->cfg.arch != ARCH_GPT2)
        return weft_error("the CUDA engine runs GPT-2 models only; this one is of the Llama "
                          "family: train it with device = \"cpu\""),
               (gpt2_cuda_t *)NULL;
    gpt2_cuda_t *self = (gpt2_cuda_t *)calloc(1, sizeof *self);
    if (!self) return weft_error("out of memory"), (gpt2_cuda_t *)NULL;
    self->cfg = host->cfg;
    self->prec = prec;
    self->device = device;
    self->nparams = host->nparams;
    self->ntensors = host->ntensors;
    self->tensors = (gpt2_tensor_t *)malloc(host->ntensors * sizeof *self->tensors);
    if (self->tensors) memcpy(self->tensors, host->tensors, host->ntensors * sizeof *self->tensors);
    if (!self->tensors || setup(self, host) < 0) {
        if (!self->tensors) weft_error("out of memory");
        gpt2_cuda_destroy(&self);
        cudaGetLastError(); /* a refused device leaves no error behind for the next call */
        return NULL;
    }
    return self;
}

extern "C" size_t gpt2_cuda_nparams(const gpt2_cuda_t *self)
{
    return self->nparams;
}

extern "C" const char *gpt2_cuda_device_name(const gpt2_cuda_t *self)
{
    return self->devname;
}

static int check_n(const gpt2_cuda_t *self, size_t n)
{
    if (n != self->nparams)
        return weft_error("buffer of %zu floats does not match the model's %zu parameters", n,
                          self->nparams);
    return 0;
}

extern "C" int gpt2_cuda_set_params(gpt2_cuda_t *self, const float *params, size_t n)
{
    if (check_n(self, n) < 0) return -1;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaMemcpy(self->params, params, n * sizeof(float), cudaMemcpyHostToDevice));
    if (self->params_bf) {
        convert_k<bf16><<<(unsigned)((n + 255) / 256), 256, 0, self->stream>>>(self->params_bf,
                                                                                 self->params, n);
        LAUNCH_OK();
    }
    return gpt2_cuda_sync(self);
}

static int copy_out(gpt2_cuda_t *self, float *dst, const float *src, size_t n)
{
    if (check_n(self, n) < 0) return -1;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    CUDA_OK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int gpt2_cuda_get_params(gpt2_cuda_t *self, float *params, size_t n)
{
    return copy_out(self, params, self->params, n);
}

extern "C" int gpt2_cuda_get_grads(gpt2_cuda_t *self, float *grads, size_t n)
{
    return copy_out(self, grads, self->grads, n);
}

extern "C" int gpt2_cuda_set_grads(gpt2_cuda_t *self, const float *grads, size_t n)
{
    if (check_n(self, n) < 0) return -1;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    CUDA_OK(cudaMemcpy(self->grads, grads, n * sizeof(float), cudaMemcpyHostToDevice));
    return 0;
}

extern "C" int gpt2_cuda_get_moments(gpt2_cuda_t *self, float *m, float *v, size_t n)
{
    if (copy_out(self, m, self->m, n) < 0) return -1;
    return copy_out(self, v, self->v, n);
}

extern "C" int gpt2_cuda_set_moments(gpt2_cuda_t *self, const float *m, const float *v, size_t n)
{
    if (check_n(self, n) < 0) return -1;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    CUDA_OK(cudaMemcpy(self->m, m, n * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(self->v, v, n * sizeof(float), cudaMemcpyHostToDevice));
    return 0;
}

extern "C" int gpt2_cuda_zero_grad(gpt2_cuda_t *self)
{
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaMemsetAsync(self->grads, 0, self->nparams * sizeof(float), self->stream));
    return 0;
}

extern "C" int gpt2_cuda_sync(gpt2_cuda_t *self)
{
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    CUDA_OK(cudaGetLastError());
    return 0;
}

/* ---------------------------------------------------------------------------
 * Activations: one device allocation, carved in 256-byte aligned pieces. */

static size_t carve(void **field, size_t *off, size_t bytes, char *base)
{
    size_t at = (*off + 255) & ~(size_t)255;
    if (field) *field = base ? base + at : NULL;
    *off = at + bytes;
    return *off;
}

static size_t acts_layout(gpt2_cuda_t *self, int B, int T, char *base)
{
    size_t L = self->cfg.n_layer, C = self->cfg.n_embd, NH = self->cfg.n_head;
    size_t N = (size_t)B * T, A = act_size(self), off = 0;
    size_t ldv = ((size_t)self->cfg.vocab_size + 63) & ~(size_t)63;
    size_t R = 64, OCmax = ldv > 4 * C ? ldv : 4 * C;
#define F(field, count) carve((void **)&self->field, &off, (count) * sizeof(float), base)
#define X(field, count) carve((void **)&self->field, &off, (count) * A, base)
#define I(field, count) carve((void **)&self->field, &off, (count) * sizeof(int), base)
    F(res2, L * N * C);
    F(res3, L * N * C);
    F(encoded, N * C);
    F(dres, N * C);
    F(ln1_mean, L * N);
    F(ln1_rstd, L * N);
    F(ln2_mean, L * N);
    F(ln2_rstd, L * N);
    F(lnf_mean, N);
    F(lnf_rstd, N);
    F(lse, N);
    F(losses, N);
    F(att_lse, L * NH * N);
    F(att_D, NH * N);
    F(scale, (size_t)B);
    F(colsum_part, R * 2 * OCmax);
    X(ln1, L * N * C);
    X(qkv, L * N * 3 * C);
    X(atty, L * N * C);
    X(ln2, L * N * C);
    X(fch, L * N * 4 * C);
    X(fch_gelu, L * N * 4 * C);
    X(lnf, N * C);
    X(logits, N * ldv);
    X(modout, N * C);
    X(dln, N * C);
    X(datty, N * C);
    X(dqkv, N * 3 * C);
    X(dfch, N * 4 * C);
    if (self->prec == GPT2_CUDA_BF16) X(dresT, N * C);
    I(inputs, N);
    I(targets, N);
    I(wte_tokens, N);
    I(wte_start, N + 1);
    I(wte_pos, N);
#undef F
#undef X
#undef I
    if (base) {
        if (self->prec != GPT2_CUDA_BF16) self->dresT = self->dres;
        self->ldv = (int)ldv;
        self->colsum_cap = R * 2 * OCmax;
    }
    return off;
}

extern "C" int gpt2_cuda_alloc(gpt2_cuda_t *self, int B, int T)
{
    if (B < 1 || T < 1) return weft_error("batch shape (%d,%d) must be positive", B, T);
    if (T > self->cfg.n_ctx)
        return weft_error("seq_len %d is longer than the model's context n_ctx = %d: use a "
                          "shorter sequence",
                          T, self->cfg.n_ctx);
    if (self->acts && B <= self->Bc && T <= self->Tc) return 0;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    free_acts(self);
    size_t bytes = acts_layout(self, B, T, NULL);
    cudaError_t e = cudaMalloc(&self->acts, bytes);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        self->acts = NULL;
        return weft_error("out of GPU memory: activations for batch %dx%d need %zu MB, %s has "
                          "%zu MB free of %zu MB; use a smaller batch_size or seq_len",
                          B, T, bytes >> 20, self->devname, fr >> 20, tot >> 20);
    }
    acts_layout(self, B, T, (char *)self->acts);
    size_t N = (size_t)B * T;
    self->h_inputs = (int *)malloc(N * sizeof(int));
    self->h_targets = (int *)malloc(N * sizeof(int));
    self->h_losses = (float *)malloc(N * sizeof(float));
    if (!self->h_inputs || !self->h_targets || !self->h_losses) {
        free_acts(self);
        return weft_error("out of memory for host buffers of batch %dx%d", B, T);
    }
    self->Bc = B;
    self->Tc = T;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Forward and backward. Offsets of a block's tensors: table entries
 * 2 + 12·l + i, in build_table's order. */

enum { LN1W, LN1B, QKVW, QKVB, PROJW, PROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB };

static size_t toff(const gpt2_cuda_t *self, int l, int i)
{
    return self->tensors[2 + 12 * (size_t)l + i].offset;
}

template <int HS, int TPR, typename T>
static int attention_forward(gpt2_cuda_t *self, T *out, float *lse, const T *qkv, int B, int Tn)
{
    int C = self->cfg.n_embd, NH = self->cfg.n_head;
    dim3 grid((Tn + ATT_BQ - 1) / ATT_BQ, B * NH);
    attention_forward_k<T, HS, TPR><<<grid, ATT_BQ * TPR, 0, self->stream>>>(
        out, lse, qkv, B, Tn, C, NH, 1.0f / sqrtf((float)HS));
    LAUNCH_OK();
    return 0;
}

template <int HS, int TPR, typename T>
static int attention_backward(gpt2_cuda_t *self, T *dqkv, const T *dout, const T *qkv, const T *out,
                              const float *lse, int B, int Tn)
{
    int C = self->cfg.n_embd, NH = self->cfg.n_head;
    size_t rows = (size_t)B * NH * Tn;
    float scale = 1.0f / sqrtf((float)HS);
    attention_dsum_k<T><<<(unsigned)((rows + 255) / 256), 256, 0, self->stream>>>(
        self->att_D, dout, out, B, Tn, C, NH);
    LAUNCH_OK();
    dim3 grid((Tn + ATT_BQ - 1) / ATT_BQ, B * NH);
    attention_backward_kv_k<T, HS, TPR><<<grid, ATT_BK * TPR, 0, self->stream>>>(
        dqkv, dout, qkv, lse, self->att_D, B, Tn, C, NH, scale);
    LAUNCH_OK();
    attention_backward_q_k<T, HS, TPR><<<grid, ATT_BQ * TPR, 0, self->stream>>>(
        dqkv, dout, qkv, lse, self->att_D, B, Tn, C, NH, scale);
    LAUNCH_OK();
    return 0;
}

/* bf16 with head size 64 runs on tensor cores (attention_wmma.cuh); the rest
 * on the scalar kernels. */
template <typename T>
static int attn_fwd(gpt2_cuda_t *self, T *out, float *lse, const T *qkv, int B, int Tn)
{
    int C = self->cfg.n_embd, NH = self->cfg.n_head;
    if constexpr (std::is_same<T, bf16>::value)
        if (C / NH == 64) {
            dim3 grid((Tn + 63) / 64, B * NH);
            attention_forward_wmma_k<<<grid, 128, 0, self->stream>>>(out, lse, qkv, B, Tn, C, NH,
                                                                     0.125f);
            LAUNCH_OK();
            return 0;
        }
    switch (self->cfg.n_embd / self->cfg.n_head) {
    case 16: return attention_forward<16, 1>(self, out, lse, qkv, B, Tn);
    case 32: return attention_forward<32, 1>(self, out, lse, qkv, B, Tn);
    default: return attention_forward<64, 2>(self, out, lse, qkv, B, Tn);
    }
}

template <typename T>
static int attn_bwd(gpt2_cuda_t *self, T *dqkv, const T *dout, const T *qkv, const T *out,
                    const float *lse, int B, int Tn)
{
    int C = self->cfg.n_embd, NH = self->cfg.n_head;
    if constexpr (std::is_same<T, bf16>::value)
        if (C / NH == 64) {
            size_t rows = (size_t)B * NH * Tn;
            attention_dsum_k<T><<<(unsigned)((rows + 255) / 256), 256, 0, self->stream>>>(
                self->att_D, dout, out, B, Tn, C, NH);
            LAUNCH_OK();
            dim3 grid((Tn + 63) / 64, B * NH);
            attention_backward_kv_wmma_k<<<grid, 128, 0, self->stream>>>(
                dqkv, dout, qkv, lse, self->att_D, B, Tn, C, NH, 0.125f);
            LAUNCH_OK();
            attention_backward_q_wmma_k<<<grid, 128, 0, self->stream>>>(
                dqkv, dout, qkv, lse, self->att_D, B, Tn, C, NH, 0.125f);
            LAUNCH_OK();
            return 0;
        }
    switch (self->cfg.n_embd / self->cfg.n_head) {
    case 16: return attention_backward<16, 1>(self, dqkv, dout, qkv, out, lse, B, Tn);
    case 32: return attention_backward<32, 1>(self, dqkv, dout, qkv, out, lse, B, Tn);
    default: return attention_backward<64, 2>(self, dqkv, dout, qkv, out, lse, B, Tn);
    }
}

#define LN_BLOCK 256 /* 8 rows (warps) per block */

template <typename T> static int forward_t(gpt2_cuda_t *self, int B, int Tn)
{
    const gpt2_config_t *c = &self->cfg;
    int C = c->n_embd, NH = c->n_head, V = c->vocab_size, L = c->n_layer;
    int N = B * Tn;
    size_t cap = (size_t)self->Bc * self->Tc;
    unsigned lnb = (unsigned)((N + LN_BLOCK / 32 - 1) / (LN_BLOCK / 32));
    const float *P = self->params;
    size_t wte = self->tensors[0].offset, wpe = self->tensors[1].offset;
    size_t lnfw = self->tensors[self->ntensors - 2].offset;
    size_t lnfb = self->tensors[self->ntensors - 1].offset;
    T *ln1 = (T *)self->ln1, *qkv = (T *)self->qkv, *atty = (T *)self->atty, *ln2 = (T *)self->ln2;
    T *fch = (T *)self->fch, *fchg = (T *)self->fch_gelu, *modout = (T *)self->modout;

    encoder_forward_k<<<(unsigned)(((size_t)N * C + 255) / 256), 256, 0, self->stream>>>(
        self->encoded, self->inputs, P + wte, P + wpe, N, Tn, C);
    LAUNCH_OK();
    residual_layernorm_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(
        NULL, ln1, self->ln1_mean, self->ln1_rstd, self->encoded, (const T *)NULL,
        P + toff(self, 0, LN1W), P + toff(self, 0, LN1B), N, C);
    LAUNCH_OK();
    for (int l = 0; l < L; l++) {
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? self->encoded : self->res3 + lc - cap * C;
        T *l_ln1 = ln1 + lc, *l_qkv = qkv + 3 * lc, *l_atty = atty + lc, *l_ln2 = ln2 + lc;
        T *l_fch = fch + 4 * lc, *l_fchg = fchg + 4 * lc;
        float *l_res2 = self->res2 + lc, *l_res3 = self->res3 + lc;

        if (linear_forward(self, l_qkv, l_ln1, toff(self, l, QKVW), toff(self, l, QKVB), N, C,
                           3 * C) < 0)
            return -1;
        if (attn_fwd<T>(self, l_atty, self->att_lse + (size_t)l * NH * cap, l_qkv, B, Tn) < 0)
            return -1;
        if (linear_forward(self, modout, l_atty, toff(self, l, PROJW), toff(self, l, PROJB), N, C,
                           C) < 0)
            return -1;
        residual_layernorm_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(
            l_res2, l_ln2, self->ln2_mean + ln, self->ln2_rstd + ln, x, modout,
            P + toff(self, l, LN2W), P + toff(self, l, LN2B), N, C);
        LAUNCH_OK();
        if (linear_forward(self, l_fch, l_ln2, toff(self, l, FCW), toff(self, l, FCB), N, C,
                           4 * C) < 0)
            return -1;
        size_t n4 = (size_t)N * 4 * C;
        gelu_forward_k<T><<<(unsigned)((n4 + 255) / 256), 256, 0, self->stream>>>(l_fchg, l_fch, n4);
        LAUNCH_OK();
        if (linear_forward(self, modout, l_fchg, toff(self, l, FCPROJW), toff(self, l, FCPROJB), N,
                           4 * C, C) < 0)
            return -1;
        /* res3 = res2 + modout, normalised by the next block's ln_1 or ln_f */
        int last = l == L - 1;
        T *next_ln = last ? (T *)self->lnf : ln1 + lc + cap * C;
        float *nm = last ? self->lnf_mean : self->ln1_mean + ln + cap;
        float *nr = last ? self->lnf_rstd : self->ln1_rstd + ln + cap;
        const float *nw = P + (last ? lnfw : toff(self, l + 1, LN1W));
        const float *nb = P + (last ? lnfb : toff(self, l + 1, LN1B));
        residual_layernorm_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(l_res3, next_ln, nm, nr,
                                                                     l_res2, modout, nw, nb, N, C);
        LAUNCH_OK();
    }
    /* logits (N,V) = lnf (N,C) · wteᵀ (C,V), row stride ldv */
    if (matmul(self, self->logits, act_type(self), self->ldv, wptr(self, wte), C, 1, self->lnf, C,
               0, V, N, C, 0.0f, NULL) < 0)
        return -1;
    crossentropy_forward_k<T><<<N, CE_THREADS, 0, self->stream>>>(
        self->losses, self->lse, (const T *)self->logits, self->targets, V, self->ldv);
    LAUNCH_OK();
    return 0;
}

extern "C" int gpt2_cuda_forward(gpt2_cuda_t *self, const int *inputs, const int *targets, int B,
                                 int T, float *loss)
{
    if (gpt2_cuda_alloc(self, B, T) < 0) return -1;
    int V = self->cfg.vocab_size;
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= V)
            return weft_error("input token %d at row %zu, position %zu is outside the vocabulary "
                              "[0,%d)",
                              inputs[i], i / T, i % T, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return weft_error("target %d at row %zu, position %zu is outside [-1,%d)", targets[i],
                              i / T, i % T, V);
    }
    self->B = B;
    self->T = T;
    memcpy(self->h_inputs, inputs, N * sizeof(int));
    self->valid = 0;
    for (size_t i = 0; i < N; i++) {
        self->h_targets[i] = targets ? targets[i] : -1;
        self->valid += self->h_targets[i] >= 0;
    }
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaMemcpyAsync(self->inputs, self->h_inputs, N * sizeof(int), cudaMemcpyHostToDevice,
                            self->stream));
    CUDA_OK(cudaMemcpyAsync(self->targets, self->h_targets, N * sizeof(int),
                            cudaMemcpyHostToDevice, self->stream));
    int rc = self->prec == GPT2_CUDA_BF16 ? forward_t<bf16>(self, B, T)
                                          : forward_t<float>(self, B, T);
    if (rc < 0) return -1;
    CUDA_OK(cudaMemcpyAsync(self->h_losses, self->losses, N * sizeof(float),
                            cudaMemcpyDeviceToHost, self->stream));
    CUDA_OK(cudaStreamSynchronize(self->stream));
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) sum += self->h_losses[i];
    if (loss) *loss = self->valid ? (float)(sum / (double)self->valid) : 0.0f;
    return 0;
}

extern "C" int gpt2_cuda_logits(gpt2_cuda_t *self, float *logits)
{
    if (!self->B) return weft_error("gpt2_cuda_logits called before a forward pass");
    size_t N = (size_t)self->B * self->T, V = self->cfg.vocab_size;
    float *tmp;
    CUDA_OK(cudaSetDevice(self->device));
    CUDA_OK(cudaMalloc(&tmp, N * V * sizeof(float)));
    if (self->prec == GPT2_CUDA_BF16)
        to_float_k<bf16><<<(unsigned)((N * V + 255) / 256), 256, 0, self->stream>>>(
            tmp, (const bf16 *)self->logits, N, (int)V, self->ldv);
    else
        to_float_k<float><<<(unsigned)((N * V + 255) / 256), 256, 0, self->stream>>>(
            tmp, (const float *)self->logits, N, (int)V, self->ldv);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaStreamSynchronize(self->stream);
    if (e == cudaSuccess) e = cudaMemcpy(logits, tmp, N * V * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(tmp);
    if (e != cudaSuccess) return weft_error("CUDA: copying the logits failed: %s", cudaGetErrorString(e));
    return 0;
}

extern "C" int gpt2_cuda_losses(gpt2_cuda_t *self, float *losses)
{
    if (!self->B) return weft_error("gpt2_cuda_losses called before a forward pass");
    memcpy(losses, self->h_losses, (size_t)self->B * self->T * sizeof(float));
    return 0;
}

extern "C" size_t gpt2_cuda_valid_targets(const gpt2_cuda_t *self)
{
    return self->valid;
}

/* Positions of each distinct input token, in position order (counting sort
 * on the host, where the inputs are), for the deterministic wte gradient. */
static int wte_buckets(gpt2_cuda_t *self, int N)
{
    int V = self->cfg.vocab_size;
    int *count = (int *)calloc((size_t)V + 1, sizeof(int));
    int *tokens = (int *)malloc((size_t)N * sizeof(int));
    int *start = (int *)malloc(((size_t)N + 1) * sizeof(int));
    int *pos = (int *)malloc((size_t)N * sizeof(int));
    if (!count || !tokens || !start || !pos) {
        free(count), free(tokens), free(start), free(pos);
        return weft_error("out of memory for the embedding gradient's buckets");
    }
    for (int i = 0; i < N; i++) count[self->h_inputs[i] + 1]++;
    for (int t = 0; t < V; t++) count[t + 1] += count[t];
    int U = 0;
    for (int t = 0; t < V; t++)
        if (count[t + 1] > count[t]) {
            tokens[U] = t;
            start[U++] = count[t];
        }
    start[U] = N;
    for (int i = 0; i < N; i++) pos[count[self->h_inputs[i]]++] = i;
    self->nuniq = U;
    cudaError_t e = cudaMemcpy(self->wte_tokens, tokens, U * sizeof(int), cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(self->wte_start, start, (U + 1) * sizeof(int), cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(self->wte_pos, pos, N * sizeof(int), cudaMemcpyHostToDevice);
    free(count), free(tokens), free(start), free(pos);
    if (e != cudaSuccess) return weft_error("CUDA: copying buckets failed: %s", cudaGetErrorString(e));
    return 0;
}

template <typename T> static int backward_t(gpt2_cuda_t *self)
{
    const gpt2_config_t *c = &self->cfg;
    int B = self->B, Tn = self->T, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    int L = c->n_layer, N = B * Tn;
    size_t cap = (size_t)self->Bc * self->Tc;
    unsigned lnb = (unsigned)((N + LN_BLOCK / 32 - 1) / (LN_BLOCK / 32));
    const float *P = self->params;
    float *G = self->grads;
    size_t wte = self->tensors[0].offset, wpe = self->tensors[1].offset;
    size_t lnfw = self->tensors[self->ntensors - 2].offset;
    size_t lnfb = self->tensors[self->ntensors - 1].offset;
    T *dlogits = (T *)self->logits, *dln = (T *)self->dln, *dresT = (T *)self->dresT;
    T *datty = (T *)self->datty, *dqkv = (T *)self->dqkv, *dfch = (T *)self->dfch;

    crossentropy_backward_k<T><<<N, 256, 0, self->stream>>>(dlogits, self->lse, self->targets,
                                                            self->scale, Tn, V, self->ldv);
    LAUNCH_OK();
    /* dlnf (N,C) = dlogits (N,V) · wte (V,C); dwte (V,C) += dlogitsᵀ · lnf */
    if (matmul(self, dln, act_type(self), C, wptr(self, wte), C, 0, dlogits, self->ldv, 0, C, N, V,
               0.0f, NULL) < 0)
        return -1;
    if (matmul(self, G + wte, CUDA_R_32F, C, self->lnf, C, 0, dlogits, self->ldv, 1, C, V, N, 1.0f,
               NULL) < 0)
        return -1;
    CUDA_OK(cudaMemsetAsync(self->dres, 0, (size_t)N * C * sizeof(float), self->stream));
    const float *last = self->res3 + (L - 1) * cap * C;
    layernorm_backward_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(
        self->dres, dresT, dln, last, P + lnfw, self->lnf_mean, self->lnf_rstd, N, C);
    LAUNCH_OK();
    if (colsum<T>(self, G + lnfb, G + lnfw, dln, last, self->lnf_mean, self->lnf_rstd, N, C) < 0)
        return -1;

    for (int l = L - 1; l >= 0; l--) {
        size_t lc = l * cap * C, ln = l * cap;
        const float *x = l == 0 ? self->encoded : self->res3 + lc - cap * C;
        const T *l_ln1 = (T *)self->ln1 + lc, *l_qkv = (T *)self->qkv + 3 * lc;
        const T *l_atty = (T *)self->atty + lc, *l_ln2 = (T *)self->ln2 + lc;
        const T *l_fch = (T *)self->fch + 4 * lc, *l_fchg = (T *)self->fch_gelu + 4 * lc;
        const float *l_res2 = self->res2 + lc;
        size_t n4 = (size_t)N * 4 * C;

        if (linear_backward<T>(self, dfch, dresT, l_fchg, toff(self, l, FCPROJW),
                               toff(self, l, FCPROJB), N, 4 * C, C) < 0)
            return -1;
        gelu_backward_k<T><<<(unsigned)((n4 + 255) / 256), 256, 0, self->stream>>>(dfch, l_fch, n4);
        LAUNCH_OK();
        if (linear_backward<T>(self, dln, dfch, l_ln2, toff(self, l, FCW), toff(self, l, FCB), N, C,
                               4 * C) < 0)
            return -1;
        layernorm_backward_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(
            self->dres, dresT, dln, l_res2, P + toff(self, l, LN2W), self->ln2_mean + ln,
            self->ln2_rstd + ln, N, C);
        LAUNCH_OK();
        if (colsum<T>(self, G + toff(self, l, LN2B), G + toff(self, l, LN2W), dln, l_res2,
                      self->ln2_mean + ln, self->ln2_rstd + ln, N, C) < 0)
            return -1;
        if (linear_backward<T>(self, datty, dresT, l_atty, toff(self, l, PROJW),
                               toff(self, l, PROJB), N, C, C) < 0)
            return -1;
        if (attn_bwd<T>(self, dqkv, datty, l_qkv, l_atty, self->att_lse + (size_t)l * NH * cap, B,
                        Tn) < 0)
            return -1;
        if (linear_backward<T>(self, dln, dqkv, l_ln1, toff(self, l, QKVW), toff(self, l, QKVB), N,
                               C, 3 * C) < 0)
            return -1;
        layernorm_backward_k<T><<<lnb, LN_BLOCK, 0, self->stream>>>(
            self->dres, dresT, dln, x, P + toff(self, l, LN1W), self->ln1_mean + ln,
            self->ln1_rstd + ln, N, C);
        LAUNCH_OK();
        if (colsum<T>(self, G + toff(self, l, LN1B), G + toff(self, l, LN1W), dln, x,
                      self->ln1_mean + ln, self->ln1_rstd + ln, N, C) < 0)
            return -1;
    }
    if (wte_buckets(self, N) < 0) return -1;
    wte_backward_k<<<self->nuniq, 256, 0, self->stream>>>(G + wte, self->dres, self->wte_tokens,
                                                          self->wte_start, self->wte_pos, C);
    LAUNCH_OK();
    wpe_backward_k<<<(unsigned)(((size_t)Tn * C + 255) / 256), 256, 0, self->stream>>>(
        G + wpe, self->dres, B, Tn, C);
    LAUNCH_OK();
    return 0;
}

extern "C" int gpt2_cuda_backward(gpt2_cuda_t *self, const float *scale)
{
    if (!self->acts || !self->B) return weft_error("gpt2_cuda_backward called before a forward pass");
    int B = self->B;
    float *h = (float *)malloc((size_t)B * sizeof(float));
    if (!h) return weft_error("out of memory");
    for (int b = 0; b < B; b++)
        h[b] = scale ? scale[b] : (self->valid ? 1.0f / (float)self->valid : 0.0f);
    CUDA_OK(cudaSetDevice(self->device));
    cudaError_t e = cudaMemcpy(self->scale, h, (size_t)B * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) return weft_error("CUDA: copying the loss scale failed: %s", cudaGetErrorString(e));
    return self->prec == GPT2_CUDA_BF16 ? backward_t<bf16>(self) : backward_t<float>(self);
}

extern "C" double gpt2_cuda_grad_norm(gpt2_cuda_t *self)
{
    double s = 0.0;
    if (cudaSetDevice(self->device) != cudaSuccess) return weft_error("CUDA: no device"), -1.0;
    sumsq_stage1_k<<<NORM_BLOCKS, 256, 0, self->stream>>>(self->norm_part, self->grads,
                                                          self->nparams);
    sumsq_stage2_k<<<1, 32, 0, self->stream>>>(self->norm_out, self->norm_part, NORM_BLOCKS);
    cudaError_t e = cudaMemcpyAsync(&s, self->norm_out, sizeof s, cudaMemcpyDeviceToHost,
                                    self->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(self->stream);
    if (e != cudaSuccess)
        return weft_error("CUDA: gradient norm failed: %s", cudaGetErrorString(e)), -1.0;
    return sqrt(s);
}

extern "C" float gpt2_cuda_grad_clip(gpt2_cuda_t *self, double norm, float max_norm)
{
    if (max_norm <= 0.0f || !(norm > max_norm)) return 1.0f;
    float f = (float)(max_norm / (norm + 1e-6));
    if (cudaSetDevice(self->device) != cudaSuccess) return weft_error("CUDA: no device"), -1.0f;
    scale_k<<<(unsigned)((self->nparams + 255) / 256), 256, 0, self->stream>>>(self->grads,
                                                                               self->nparams, f);
    if (cudaGetLastError() != cudaSuccess) return weft_error("CUDA: clipping failed"), -1.0f;
    return f;
}

extern "C" int gpt2_cuda_adamw(gpt2_cuda_t *self, float lr, const adamw_hparams_t *hp,
                               unsigned decay_kinds, long t)
{
    CUDA_OK(cudaSetDevice(self->device));
    if (self->chunk_decay != decay_kinds) {
        adam_chunk_t *h = (adam_chunk_t *)malloc(self->nchunks * sizeof *h);
        if (!h) return weft_error("out of memory");
        int k = 0;
        for (size_t i = 0; i < self->ntensors; i++) {
            const gpt2_tensor_t *x = &self->tensors[i];
            for (size_t o = 0; o < x->numel; o += ADAM_CHUNK) {
                h[k].off = x->offset + o;
                h[k].n = (unsigned)(x->numel - o < ADAM_CHUNK ? x->numel - o : ADAM_CHUNK);
                h[k].decay = (decay_kinds >> x->kind) & 1u;
                k++;
            }
        }
        cudaError_t e = cudaMemcpy(self->chunks, h, k * sizeof *h, cudaMemcpyHostToDevice);
        free(h);
        if (e != cudaSuccess) return weft_error("CUDA: copying the chunk table failed: %s", cudaGetErrorString(e));
        self->chunk_decay = decay_kinds;
    }
    /* the scalars exactly as optim.c's adamw_update computes them */
    float decay = (float)(1.0 - (double)lr * hp->weight_decay);
    double bc1 = 1.0 - pow(hp->beta1, (double)t), bc2 = 1.0 - pow(hp->beta2, (double)t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    adamw_k<<<self->nchunks, 512, 0, self->stream>>>(self->params, self->grads, self->m, self->v,
                                                     self->params_bf, self->chunks, hp->beta1,
                                                     hp->beta2, hp->eps, step_size, bc2_sqrt,
                                                     decay);
    LAUNCH_OK();
    return 0;
}

extern "C" float *gpt2_cuda_grads_device(gpt2_cuda_t *self)
{
    return self->grads;
}

extern "C" void *gpt2_cuda_stream(gpt2_cuda_t *self)
{
    return (void *)self->stream;
}

extern "C" int gpt2_cuda_scale_grads(gpt2_cuda_t *self, float f)
{
    CUDA_OK(cudaSetDevice(self->device));
    scale_k<<<(unsigned)((self->nparams + 255) / 256), 256, 0, self->stream>>>(self->grads,
                                                                               self->nparams, f);
    CUDA_OK(cudaGetLastError());
    return 0;
}
