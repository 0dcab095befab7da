/* kernels_cuda.cuh: the GPT-2 layer kernels on the GPU, forward and backward,
 * templated on the activation type T (float, or __nv_bfloat16 in bf16
 * precision). The residual stream, statistics and every parameter gradient
 * stay float32. Same glossary and conventions as engine/kernels.h: B batch,
 * T time (Tn here, T is the type), C channels, NH heads, HS head size, V
 * vocabulary, N = B*T rows. No atomics: every sum runs in a fixed order. */
#ifndef WEFT_KERNELS_CUDA_CUH
#define WEFT_KERNELS_CUDA_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---------------------------------------------------------------------------
 * Embedding. out (N,C) = wte[inp] + wpe[t]. */
__global__ void encoder_forward_k(float *out, const int *inp, const float *wte, const float *wpe,
                                  int N, int Tn, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C;
    int c = (int)(i % C), t = (int)(n % Tn);
    out[i] = wte[(size_t)inp[n] * C + c] + wpe[(size_t)t * C + c];
}

/* dwpe (T,C) += sum over b of dres (B,T,C), b in order (as the CPU loop). */
__global__ void wpe_backward_k(float *dwpe, const float *dres, int B, int Tn, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)Tn * C) return;
    float acc = dwpe[i];
    for (int b = 0; b < B; b++) acc += dres[(size_t)b * Tn * C + i];
    dwpe[i] = acc;
}

/* dwte[tok] += dres rows of the positions holding tok, in position order:
 * tokens (U) distinct ids, start (U+1) offsets into pos (N). One block per
 * distinct token; no two blocks write the same row. */
__global__ void wte_backward_k(float *dwte, const float *dres, const int *tokens, const int *start,
                               const int *pos, int C)
{
    int u = blockIdx.x;
    float *row = dwte + (size_t)tokens[u] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = row[c];
        for (int p = start[u]; p < start[u + 1]; p++) acc += dres[(size_t)pos[p] * C + c];
        row[c] = acc;
    }
}

/* ---------------------------------------------------------------------------
 * LayerNorm, one warp per row, eps 1e-5. With add: res = x + add is written
 * to res and normalised (the residual sum fused with the next norm);
 * without, x itself is normalised. out (N,C) T, mean/rstd (N). */
template <typename T>
__global__ void residual_layernorm_k(float *res, T *out, float *mean, float *rstd, const float *x,
                                     const T *add, const float *w, const float *b, int N, int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *xr = x + (size_t)row * C;
    const float *src = xr;
    float s = 0.0f;
    if (add) {
        const T *ar = add + (size_t)row * C;
        float *rr = res + (size_t)row * C;
        for (int i = lane; i < C; i += 32) {
            float v = xr[i] + to_f(ar[i]);
            rr[i] = v;
            s += v;
        }
        src = rr;
    } else {
        for (int i = lane; i < C; i += 32) s += xr[i];
    }
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float d = src[i] - m;
        v += d * d;
    }
    float r = rsqrtf(warp_sum(v) / C + 1e-5f);
    T *o = out + (size_t)row * C;
    for (int i = lane; i < C; i += 32) o[i] = from_f<T>((src[i] - m) * r * w[i] + b[i]);
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

/* dres (N,C) += d(loss)/d(x) through the norm of x; dresT gets a copy of the
 * new dres in T (the next product's input; it may alias dres when T is
 * float). Parameter gradients are left to colsum (fixed order). */
template <typename T>
__global__ void layernorm_backward_k(float *dres, T *dresT, const T *dout, const float *x,
                                     const float *w, const float *mean, const float *rstd, int N,
                                     int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const T *dy = dout + (size_t)row * C;
    const float *xr = x + (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float gsum = 0.0f, gxsum = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float g = to_f(dy[i]) * w[i];
        gsum += g;
        gxsum += g * (xr[i] - m) * s;
    }
    gsum = warp_sum(gsum) / C;
    gxsum = warp_sum(gxsum) / C;
    float *dr = dres + (size_t)row * C;
    T *dt = dresT + (size_t)row * C;
    for (int i = lane; i < C; i += 32) {
        float xhat = (xr[i] - m) * s;
        float d = dr[i] + s * (to_f(dy[i]) * w[i] - gsum - xhat * gxsum);
        dr[i] = d;
        dt[i] = from_f<T>(d);
    }
}

/* Column sums in a fixed order, two stages. Stage 1: block (32,8) sums 32
 * columns over one chunk of rows into part (R, 2*OC): part[r][c] = sum of
 * dy over the chunk, and with x: part[r][OC+c] = sum dy*(x-mean)*rstd (a
 * LayerNorm's dweight). Stage 2 adds the R partials in order. */
template <typename T>
__global__ void colsum_stage1_k(float *part, const T *dy, const float *x, const float *mean,
                                const float *rstd, int N, int OC, int rows_per)
{
    __shared__ float sb[8][33], sw[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, r = blockIdx.y;
    int n0 = r * rows_per, n1 = min(N, n0 + rows_per);
    float ab = 0.0f, aw = 0.0f;
    if (c < OC)
        for (int n = n0 + threadIdx.y; n < n1; n += 8) {
            float d = to_f(dy[(size_t)n * OC + c]);
            ab += d;
            if (x) aw += d * (x[(size_t)n * OC + c] - mean[n]) * rstd[n];
        }
    sb[threadIdx.y][threadIdx.x] = ab;
    sw[threadIdx.y][threadIdx.x] = aw;
    __syncthreads();
    if (threadIdx.y == 0 && c < OC) {
        float tb = 0.0f, tw = 0.0f;
        for (int k = 0; k < 8; k++) {
            tb += sb[k][threadIdx.x];
            tw += sw[k][threadIdx.x];
        }
        part[(size_t)r * 2 * OC + c] = tb;
        part[(size_t)r * 2 * OC + OC + c] = tw;
    }
}

__global__ void colsum_stage2_k(float *dbias, float *dweight, const float *part, int R, int OC)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float tb = 0.0f, tw = 0.0f;
    for (int r = 0; r < R; r++) {
        tb += part[(size_t)r * 2 * OC + c];
        tw += part[(size_t)r * 2 * OC + OC + c];
    }
    if (dbias) dbias[c] += tb;
    if (dweight) dweight[c] += tw;
}

/* ---------------------------------------------------------------------------
 * GELU, tanh form. */
#define GELU_S 0.7978845608028654f
#define GELU_K 0.044715f

template <typename T> __global__ void gelu_forward_k(T *out, const T *inp, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = to_f(inp[i]);
    float t = tanhf(GELU_S * (x + GELU_K * x * x * x));
    out[i] = from_f<T>(0.5f * x * (1.0f + t));
}

/* d (n) = gelu'(inp) * d, in place. */
template <typename T> __global__ void gelu_backward_k(T *d, const T *inp, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = to_f(inp[i]);
    float t = tanhf(GELU_S * (x + GELU_K * x * x * x));
    float g =
        0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_K * x * x);
    d[i] = from_f<T>(g * to_f(d[i]));
}

/* ---------------------------------------------------------------------------
 * Fused causal attention, flash style: the (T,T) scores never reach global
 * memory. qkv (B,T,3C) holds q|k|v, out (B,T,C), lse (B,NH,T) the log-sum-exp
 * of each row's scaled scores for the backward. Each query row is held by
 * TPR threads of one warp, HS/TPR channels each (interleaved); keys and values stream
 * through shared memory in tiles of ATT_BK rows. Loops are uniform over the
 * block (masked keys score -inf), so the warp shuffles always see every
 * lane. Grid: (T/ATT_BQ, B*NH), heaviest (last) query tiles first. */
#define ATT_BQ 64
#define ATT_BK 64

/* a (D) in registers, b a shared-memory row offset by the thread's part:
 * channel d*TPR + part of the row is the thread's d (interleaved, so the
 * TPR threads of a row read neighbouring banks). */
template <int HS, int TPR>
__device__ __forceinline__ float part_dot(const float *a, const float *b)
{
    constexpr int D = HS / TPR;
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < D; d++) s += a[d] * b[d * TPR];
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

template <typename T, int HS, int TPR>
__global__ void __launch_bounds__(ATT_BQ *TPR)
    attention_forward_k(T *out, float *lse, const T *qkv, int B, int Tn, int C, int NH, float scale)
{
    constexpr int D = HS / TPR;
    __shared__ float ks[ATT_BK][HS], vs[ATT_BK][HS];
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int row = threadIdx.x / TPR, part = threadIdx.x % TPR;
    int q0 = qt * ATT_BQ, i = q0 + row;
    size_t C3 = 3 * (size_t)C;
    const T *base = qkv + (size_t)b * Tn * C3 + (size_t)h * HS;
    float q[D], o[D];
#pragma unroll
    for (int d = 0; d < D; d++) {
        q[d] = i < Tn ? to_f(base[(size_t)i * C3 + d * TPR + part]) : 0.0f;
        o[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int kend = min(Tn, q0 + ATT_BQ);
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_BK * HS; e += blockDim.x) {
            int j = e / HS, d = e % HS;
            bool ok = k0 + j < Tn;
            ks[j][d] = ok ? to_f(base[(size_t)(k0 + j) * C3 + C + d]) : 0.0f;
            vs[j][d] = ok ? to_f(base[(size_t)(k0 + j) * C3 + 2 * C + d]) : 0.0f;
        }
        __syncthreads();
        for (int j0 = 0; j0 < ATT_BK; j0 += 16) {
            float s[16], mx = m;
#pragma unroll
            for (int jj = 0; jj < 16; jj++) {
                int j = k0 + j0 + jj;
                float v = part_dot<HS, TPR>(q, &ks[j0 + jj][part]) * scale;
                s[jj] = j <= i ? v : -INFINITY;
                mx = fmaxf(mx, s[jj]);
            }
            float corr = __expf(m - mx);
            l *= corr;
#pragma unroll
            for (int d = 0; d < D; d++) o[d] *= corr;
#pragma unroll
            for (int jj = 0; jj < 16; jj++) {
                float p = __expf(s[jj] - mx);
                l += p;
                const float *vr = &vs[j0 + jj][part];
#pragma unroll
                for (int d = 0; d < D; d++) o[d] += p * vr[d * TPR];
            }
            m = mx;
        }
    }
    if (i < Tn) {
        float inv = 1.0f / l;
        T *orow = out + ((size_t)b * Tn + i) * C + (size_t)h * HS + part;
#pragma unroll
        for (int d = 0; d < D; d++) orow[d * TPR] = from_f<T>(o[d] * inv);
        if (part == 0) lse[(size_t)bh * Tn + i] = m + logf(l);
    }
}

/* Dv (B,NH,T) = rowsum(dout * out) per head: the softmax backward's dot. */
template <typename T>
__global__ void attention_dsum_k(float *Dv, const T *dout, const T *out, int B, int Tn, int C,
                                 int NH)
{
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int HS = C / NH;
    if (idx >= (size_t)B * NH * Tn) return;
    int t = (int)(idx % Tn);
    size_t bh = idx / Tn;
    int b = (int)(bh / NH), h = (int)(bh % NH);
    size_t off = ((size_t)b * Tn + t) * C + (size_t)h * HS;
    float s = 0.0f;
    for (int d = 0; d < HS; d++) s += to_f(dout[off + d]) * to_f(out[off + d]);
    Dv[idx] = s;
}

/* dk, dv of key rows j (one tile of ATT_BK per block) over the query rows
 * i >= j: p = exp(s - lse_i), dv += p·dO_i, ds = p·(dO_i·v - D_i),
 * dk += ds·q_i·scale. Writes the k and v parts of dqkv. */
template <typename T, int HS, int TPR>
__global__ void __launch_bounds__(ATT_BK *TPR)
    attention_backward_kv_k(T *dqkv, const T *dout, const T *qkv, const float *lse,
                            const float *Dv, int B, int Tn, int C, int NH, float scale)
{
    constexpr int D = HS / TPR;
    __shared__ float qs[ATT_BQ][HS], dos[ATT_BQ][HS], ls[ATT_BQ], ds_[ATT_BQ];
    int kt = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int row = threadIdx.x / TPR, part = threadIdx.x % TPR;
    int k0 = kt * ATT_BK, j = k0 + row;
    size_t C3 = 3 * (size_t)C;
    const T *base = qkv + (size_t)b * Tn * C3 + (size_t)h * HS;
    const T *dbase = dout + (size_t)b * Tn * C + (size_t)h * HS;
    float k[D], v[D], dk[D], dv[D];
#pragma unroll
    for (int d = 0; d < D; d++) {
        k[d] = j < Tn ? to_f(base[(size_t)j * C3 + C + d * TPR + part]) : 0.0f;
        v[d] = j < Tn ? to_f(base[(size_t)j * C3 + 2 * C + d * TPR + part]) : 0.0f;
        dk[d] = dv[d] = 0.0f;
    }
    for (int q0 = k0; q0 < Tn; q0 += ATT_BQ) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_BQ * HS; e += blockDim.x) {
            int r = e / HS, d = e % HS;
            bool ok = q0 + r < Tn;
            qs[r][d] = ok ? to_f(base[(size_t)(q0 + r) * C3 + d]) : 0.0f;
            dos[r][d] = ok ? to_f(dbase[(size_t)(q0 + r) * C + d]) : 0.0f;
        }
        for (int r = threadIdx.x; r < ATT_BQ; r += blockDim.x) {
            bool ok = q0 + r < Tn;
            ls[r] = ok ? lse[(size_t)bh * Tn + q0 + r] : INFINITY;
            ds_[r] = ok ? Dv[(size_t)bh * Tn + q0 + r] : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < ATT_BQ; r++) {
            int i = q0 + r;
            const float *qr = &qs[r][part], *dor = &dos[r][part];
            float s = part_dot<HS, TPR>(qr, k) * scale;
            float dp = part_dot<HS, TPR>(dor, v);
            float p = (i >= j && i < Tn) ? __expf(s - ls[r]) : 0.0f;
            float ds = p * (dp - ds_[r]) * scale;
#pragma unroll
            for (int d = 0; d < D; d++) {
                dv[d] += p * dor[d * TPR];
                dk[d] += ds * qr[d * TPR];
            }
        }
    }
    if (j < Tn) {
        T *drow = dqkv + ((size_t)b * Tn + j) * C3 + (size_t)h * HS + part;
#pragma unroll
        for (int d = 0; d < D; d++) {
            drow[C + d * TPR] = from_f<T>(dk[d]);
            drow[2 * C + d * TPR] = from_f<T>(dv[d]);
        }
    }
}

/* dq of query rows i over keys j <= i: dq += ds·k_j·scale. Writes the q part
 * of dqkv. */
template <typename T, int HS, int TPR>
__global__ void __launch_bounds__(ATT_BQ *TPR)
    attention_backward_q_k(T *dqkv, const T *dout, const T *qkv, const float *lse,
                           const float *Dv, int B, int Tn, int C, int NH, float scale)
{
    constexpr int D = HS / TPR;
    __shared__ float ks[ATT_BK][HS], vs[ATT_BK][HS];
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int row = threadIdx.x / TPR, part = threadIdx.x % TPR;
    int q0 = qt * ATT_BQ, i = q0 + row;
    size_t C3 = 3 * (size_t)C;
    const T *base = qkv + (size_t)b * Tn * C3 + (size_t)h * HS;
    const T *dbase = dout + (size_t)b * Tn * C + (size_t)h * HS;
    float q[D], dO[D], dq[D];
#pragma unroll
    for (int d = 0; d < D; d++) {
        q[d] = i < Tn ? to_f(base[(size_t)i * C3 + d * TPR + part]) : 0.0f;
        dO[d] = i < Tn ? to_f(dbase[(size_t)i * C + d * TPR + part]) : 0.0f;
        dq[d] = 0.0f;
    }
    float li = i < Tn ? lse[(size_t)bh * Tn + i] : INFINITY;
    float Di = i < Tn ? Dv[(size_t)bh * Tn + i] : 0.0f;
    int kend = min(Tn, q0 + ATT_BQ);
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_BK * HS; e += blockDim.x) {
            int j = e / HS, d = e % HS;
            bool ok = k0 + j < Tn;
            ks[j][d] = ok ? to_f(base[(size_t)(k0 + j) * C3 + C + d]) : 0.0f;
            vs[j][d] = ok ? to_f(base[(size_t)(k0 + j) * C3 + 2 * C + d]) : 0.0f;
        }
        __syncthreads();
        for (int jj = 0; jj < ATT_BK; jj++) {
            int j = k0 + jj;
            const float *kr = &ks[jj][part], *vr = &vs[jj][part];
            float s = part_dot<HS, TPR>(q, kr) * scale;
            float dp = part_dot<HS, TPR>(dO, vr);
            float p = j <= i ? __expf(s - li) : 0.0f;
            float ds = p * (dp - Di) * scale;
#pragma unroll
            for (int d = 0; d < D; d++) dq[d] += ds * kr[d * TPR];
        }
    }
    if (i < Tn) {
        T *drow = dqkv + ((size_t)b * Tn + i) * C3 + (size_t)h * HS + part;
#pragma unroll
        for (int d = 0; d < D; d++) drow[d * TPR] = from_f<T>(dq[d]);
    }
}

/* ---------------------------------------------------------------------------
 * Softmax cross-entropy over the vocabulary, one block per row, the row read
 * in chunks with an online max and sum. logits (N,ldv) of which V columns
 * are real. losses, lse (N); losses 0 where the target is < 0. */
#define CE_THREADS 512
template <typename T>
__global__ void __launch_bounds__(CE_THREADS)
    crossentropy_forward_k(float *losses, float *lse, const T *logits, const int *targets, int V,
                           int ldv)
{
    __shared__ float sm[CE_THREADS / 32], ss[CE_THREADS / 32];
    size_t n = blockIdx.x;
    const T *x = logits + n * ldv;
    float m = -INFINITY, s = 0.0f;
    for (int i = threadIdx.x; i < V; i += CE_THREADS) {
        float v = to_f(x[i]);
        if (v > m) {
            s = s * __expf(m - v) + 1.0f;
            m = v;
        } else {
            s += __expf(v - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        float mm = fmaxf(m, m2);
        s = (m == -INFINITY ? 0.0f : s * __expf(m - mm)) +
            (m2 == -INFINITY ? 0.0f : s2 * __expf(m2 - mm));
        m = mm;
    }
    int w = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0) {
        sm[w] = m;
        ss[w] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float M = sm[0], S = ss[0];
        for (int k = 1; k < CE_THREADS / 32; k++) {
            float mm = fmaxf(M, sm[k]);
            S = (M == -INFINITY ? 0.0f : S * __expf(M - mm)) +
                (sm[k] == -INFINITY ? 0.0f : ss[k] * __expf(sm[k] - mm));
            M = mm;
        }
        float l = M + logf(S);
        lse[n] = l;
        int t = targets[n];
        losses[n] = t >= 0 ? l - to_f(x[t]) : 0.0f;
    }
}

/* logits (N,ldv) become d(loss)/d(logits) = (softmax - onehot)·scale[b], in
 * place; rows with target < 0 become zero. */
template <typename T>
__global__ void crossentropy_backward_k(T *logits, const float *lse, const int *targets,
                                        const float *scale, int Tn, int V, int ldv)
{
    size_t n = blockIdx.x;
    T *x = logits + n * ldv;
    int t = targets[n];
    float s = scale[n / Tn], m = lse[n];
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float d = t < 0 ? 0.0f : s * __expf(to_f(x[i]) - m);
        if (i == t) d -= s;
        x[i] = from_f<T>(d);
    }
}

/* ---------------------------------------------------------------------------
 * Optimizer and norms over the flat float buffer. */

/* Sum of squares in double: stage 1 each block over a fixed stride, stage 2
 * one block in order. */
#define NORM_BLOCKS 1024
__global__ void sumsq_stage1_k(double *part, const float *g, size_t n)
{
    __shared__ double sh[256];
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        s += (double)g[i] * g[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

__global__ void sumsq_stage2_k(double *out, const double *part, int nparts)
{
    if (threadIdx.x != 0) return;
    double s = 0.0;
    for (int i = 0; i < nparts; i++) s += part[i];
    *out = s;
}

__global__ void scale_k(float *g, size_t n, float f)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] *= f;
}

template <typename T> __global__ void convert_k(T *out, const float *in, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = from_f<T>(in[i]);
}

template <typename T> __global__ void to_float_k(float *out, const T *in, size_t rows, int cols, int ld)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    out[i] = to_f(in[(i / cols) * ld + i % cols]);
}

/* One chunk of the multi-tensor AdamW: a slice of one tensor. */
typedef struct {
    size_t off;
    unsigned n;
    unsigned decay; /* 1: weight decay applies */
} adam_chunk_t;

/* One launch over every chunk (block b takes chunk b). The arithmetic is
 * optim.c's adamw_update, step for step. pbf (may be NULL) receives the
 * bf16 copy of the updated parameters that the products read. */
__global__ void adamw_k(float *p, const float *g, float *m, float *v, bf16 *pbf,
                        const adam_chunk_t *chunks, float b1, float b2, float eps, float step_size,
                        float bc2_sqrt, float decay_on)
{
    adam_chunk_t c = chunks[blockIdx.x];
    float decay = c.decay ? decay_on : 1.0f;
    for (unsigned k = threadIdx.x; k < c.n; k += blockDim.x) {
        size_t i = c.off + k;
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + (1.0f - b1) * gi;
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        pi = pi - step_size * (mi / denom);
        p[i] = pi;
        if (pbf) pbf[i] = __float2bfloat16_rn(pi);
    }
}

#endif
