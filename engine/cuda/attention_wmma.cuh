/* attention_wmma.cuh: the fused causal attention of bf16 precision, head
 * size 64, on tensor cores (WMMA 16x16x16, bf16 operands, float32
 * accumulation). Same contract as the scalar kernels of kernels_cuda.cuh:
 * qkv (B,T,3C), out (B,T,C), lse (B,NH,T); the (T,T) scores never reach
 * global memory. A block of 4 warps takes 64 rows, a warp 16; a score tile
 * (16x64 per warp) goes through shared memory as float, where each lane
 * handles half a row (lane/2 the row, lane%2 the half), and comes back as
 * bf16 in place for the next product. The forward makes two passes over the
 * keys (the row's max and sum, then the weighted values), so that no
 * accumulator is ever rescaled; the backward keeps dK, dV (per key tile) or
 * dQ (per query tile) in registers. No atomics. */
#ifndef WEFT_ATTENTION_WMMA_CUH
#define WEFT_ATTENTION_WMMA_CUH

#include <mma.h>

namespace wm = nvcuda::wmma;

#define WA_HS   64
#define WA_LD   72 /* bf16 tile row stride (16-byte pad) */
#define WA_SLD  68 /* float score row stride */
#define WA_PLD  136 /* the same rows seen as bf16 */

typedef wm::fragment<wm::matrix_a, 16, 16, 16, bf16, wm::row_major> fa_t;
typedef wm::fragment<wm::matrix_b, 16, 16, 16, bf16, wm::row_major> fbr_t;
typedef wm::fragment<wm::matrix_b, 16, 16, 16, bf16, wm::col_major> fbc_t;
typedef wm::fragment<wm::accumulator, 16, 16, 16, float> fc_t;

/* Rows r0.. of a (T, ld) bf16 matrix at column col into a [64][WA_LD] tile;
 * rows past T are zero. 128 threads, 16 bytes each. */
__device__ __forceinline__ void wa_load_tile(bf16 (*tile)[WA_LD], const bf16 *src, size_t ld,
                                             int r0, int Tn)
{
    for (int e = threadIdx.x; e < 64 * 8; e += blockDim.x) {
        int r = e / 8, c = (e % 8) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r0 + r < Tn) v = *(const uint4 *)(src + (size_t)(r0 + r) * ld + c);
        *(uint4 *)&tile[r][c] = v;
    }
}

/* acc[n] (16x16, n = 0..3) = A (16x64, row-major at a, lda) · B, where B is
 * 64x64: col-major from tile rows (Bᵀ = tile) or row-major (B = tile). */
template <bool BT>
__device__ __forceinline__ void wa_mm(fc_t *acc, const bf16 *a, int lda, bf16 (*tile)[WA_LD])
{
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        fa_t fa;
        wm::load_matrix_sync(fa, a + kk * 16, lda);
#pragma unroll
        for (int n = 0; n < 4; n++) {
            if (BT) {
                fbc_t fb;
                wm::load_matrix_sync(fb, &tile[n * 16][kk * 16], WA_LD);
                wm::mma_sync(acc[n], fa, fb, acc[n]);
            } else {
                fbr_t fb;
                wm::load_matrix_sync(fb, &tile[kk * 16][n * 16], WA_LD);
                wm::mma_sync(acc[n], fa, fb, acc[n]);
            }
        }
    }
}

/* As wa_mm with A held in registers (4 fragments along its 64 columns). */
template <bool BT>
__device__ __forceinline__ void wa_mm_reg(fc_t *acc, const fa_t *fa, bf16 (*tile)[WA_LD])
{
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int n = 0; n < 4; n++) {
            if (BT) {
                fbc_t fb;
                wm::load_matrix_sync(fb, &tile[n * 16][kk * 16], WA_LD);
                wm::mma_sync(acc[n], fa[kk], fb, acc[n]);
            } else {
                fbr_t fb;
                wm::load_matrix_sync(fb, &tile[kk * 16][n * 16], WA_LD);
                wm::mma_sync(acc[n], fa[kk], fb, acc[n]);
            }
        }
}

__device__ __forceinline__ void wa_zero(fc_t *acc)
{
#pragma unroll
    for (int n = 0; n < 4; n++) wm::fill_fragment(acc[n], 0.0f);
}

__device__ __forceinline__ void wa_store(float *s, const fc_t *acc)
{
#pragma unroll
    for (int n = 0; n < 4; n++) wm::store_matrix_sync(s + n * 16, acc[n], WA_SLD, wm::mem_row_major);
}

/* A's 4 fragments (16 rows of a [64][WA_LD] tile from row r). */
__device__ __forceinline__ void wa_frags(fa_t *fa, bf16 (*tile)[WA_LD], int r)
{
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wm::load_matrix_sync(fa[kk], &tile[r][kk * 16], WA_LD);
}

/* Writes the lane's 32 values as bf16 over its half row of the score tile
 * (in place: the caller has read the floats already and synced the warp). */
__device__ __forceinline__ void wa_put_half(float *s, int row, int half, const float *v)
{
    bf16 *p = (bf16 *)s + row * WA_PLD + half * 32;
#pragma unroll
    for (int j = 0; j < 32; j++) p[j] = __float2bfloat16_rn(v[j]);
}

/* Writes 16 rows of a float tile (ld WA_SLD) to dst rows r0.. (bf16, ld),
 * rows past T skipped. One warp. */
__device__ __forceinline__ void wa_write_rows(bf16 *dst, size_t ld, const float *s, int r0, int Tn)
{
    int lane = threadIdx.x % 32;
    for (int e = lane; e < 16 * 64; e += 32) {
        int r = e / 64, c = e % 64;
        if (r0 + r < Tn) dst[(size_t)(r0 + r) * ld + c] = __float2bfloat16_rn(s[r * WA_SLD + c]);
    }
}

__global__ void __launch_bounds__(128)
    attention_forward_wmma_k(bf16 *out, float *lse, const bf16 *qkv, int B, int Tn, int C, int NH,
                             float scale)
{
    __shared__ __align__(32) bf16 qs[64][WA_LD], ks[64][WA_LD], vs[64][WA_LD];
    __shared__ __align__(32) float ss[4][16 * WA_SLD];
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    int q0 = qt * 64, i = q0 + w * 16 + row;
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * Tn * C3 + (size_t)h * WA_HS;
    float *s = ss[w];
    wa_load_tile(qs, base, C3, q0, Tn);
    fa_t fq[4];
    __syncthreads();
    wa_frags(fq, qs, w * 16);
    int kend = min(Tn, q0 + 64);
    /* pass 1: the row's max and sum of exp */
    float m = -INFINITY, l = 0.0f;
    for (int k0 = 0; k0 < kend; k0 += 64) {
        __syncthreads();
        wa_load_tile(ks, base + C, C3, k0, Tn);
        __syncthreads();
        fc_t acc[4];
        wa_zero(acc);
        wa_mm_reg<true>(acc, fq, ks);
        wa_store(s, acc);
        __syncwarp();
        float mx = m, v[32];
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int key = k0 + half * 32 + j;
            v[j] = key <= i ? s[row * WA_SLD + half * 32 + j] * scale : -INFINITY;
            mx = fmaxf(mx, v[j]);
        }
        l *= __expf(m - mx);
#pragma unroll
        for (int j = 0; j < 32; j++) l += __expf(v[j] - mx);
        m = mx;
        __syncwarp();
    }
    float m2 = __shfl_xor_sync(0xffffffffu, m, 1), l2 = __shfl_xor_sync(0xffffffffu, l, 1);
    float mm = fmaxf(m, m2);
    l = (m == -INFINITY ? 0.0f : l * __expf(m - mm)) + (m2 == -INFINITY ? 0.0f : l2 * __expf(m2 - mm));
    float L = mm + logf(l);
    /* pass 2: out = Σ exp(s - L) · v */
    fc_t o[4];
    wa_zero(o);
    for (int k0 = 0; k0 < kend; k0 += 64) {
        __syncthreads();
        wa_load_tile(ks, base + C, C3, k0, Tn);
        wa_load_tile(vs, base + 2 * C, C3, k0, Tn);
        __syncthreads();
        fc_t acc[4];
        wa_zero(acc);
        wa_mm_reg<true>(acc, fq, ks);
        wa_store(s, acc);
        __syncwarp();
        float p[32];
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int key = k0 + half * 32 + j;
            p[j] = key <= i ? __expf(s[row * WA_SLD + half * 32 + j] * scale - L) : 0.0f;
        }
        __syncwarp();
        wa_put_half(s, row, half, p);
        __syncwarp();
        wa_mm<false>(o, (const bf16 *)s, WA_PLD, vs);
        __syncwarp();
    }
    wa_store(s, o);
    __syncwarp();
    wa_write_rows(out + (size_t)b * Tn * C + (size_t)h * WA_HS, C, s, q0 + w * 16, Tn);
    if (half == 0 && i < Tn) lse[(size_t)bh * Tn + i] = L;
}

/* dK, dV of 64 key rows (a warp: 16) over the query tiles at or after them:
 * Sᵀ = K·Qᵀ, Pᵀ = exp(Sᵀ·scale - lse), dV += Pᵀ·dO, dPᵀ = V·dOᵀ,
 * dSᵀ = Pᵀ∘(dPᵀ - D)·scale, dK += dSᵀ·Q. */
__global__ void __launch_bounds__(128)
    attention_backward_kv_wmma_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                 const float *Dv, int B, int Tn, int C, int NH, float scale)
{
    __shared__ __align__(32) bf16 qs[64][WA_LD], dos[64][WA_LD];
    __shared__ __align__(32) float ss[4][16 * WA_SLD];
    __shared__ float ls[64], ds_[64];
    int kt = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    int k0 = kt * 64, j = k0 + w * 16 + row;
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * Tn * C3 + (size_t)h * WA_HS;
    const bf16 *dbase = dout + (size_t)b * Tn * C + (size_t)h * WA_HS;
    float *s = ss[w];
    fa_t fk[4], fv[4];
    wa_load_tile(qs, base + C, C3, k0, Tn);
    wa_load_tile(dos, base + 2 * C, C3, k0, Tn);
    __syncthreads();
    wa_frags(fk, qs, w * 16);
    wa_frags(fv, dos, w * 16);
    fc_t dk[4], dv[4];
    wa_zero(dk);
    wa_zero(dv);
    for (int q0 = k0; q0 < Tn; q0 += 64) {
        __syncthreads();
        wa_load_tile(qs, base, C3, q0, Tn);
        wa_load_tile(dos, dbase, C, q0, Tn);
        for (int r = threadIdx.x; r < 64; r += blockDim.x) {
            bool ok = q0 + r < Tn;
            ls[r] = ok ? lse[(size_t)bh * Tn + q0 + r] : INFINITY;
            ds_[r] = ok ? Dv[(size_t)bh * Tn + q0 + r] : 0.0f;
        }
        __syncthreads();
        fc_t acc[4];
        wa_zero(acc);
        wa_mm_reg<true>(acc, fk, qs);
        wa_store(s, acc);
        __syncwarp();
        float p[32];
#pragma unroll
        for (int jj = 0; jj < 32; jj++) {
            int c = half * 32 + jj, qi = q0 + c;
            p[jj] = (qi >= j && qi < Tn) ? __expf(s[row * WA_SLD + c] * scale - ls[c]) : 0.0f;
        }
        __syncwarp();
        wa_put_half(s, row, half, p);
        __syncwarp();
        wa_mm<false>(dv, (const bf16 *)s, WA_PLD, dos);
        __syncwarp();
        wa_zero(acc);
        wa_mm_reg<true>(acc, fv, dos);
        wa_store(s, acc);
        __syncwarp();
        float d[32];
#pragma unroll
        for (int jj = 0; jj < 32; jj++) {
            int c = half * 32 + jj;
            d[jj] = p[jj] * (s[row * WA_SLD + c] - ds_[c]) * scale;
        }
        __syncwarp();
        wa_put_half(s, row, half, d);
        __syncwarp();
        wa_mm<false>(dk, (const bf16 *)s, WA_PLD, qs);
        __syncwarp();
    }
    bf16 *drow = dqkv + (size_t)b * Tn * C3 + (size_t)h * WA_HS;
    wa_store(s, dk);
    __syncwarp();
    wa_write_rows(drow + C, C3, s, k0 + w * 16, Tn);
    __syncwarp();
    wa_store(s, dv);
    __syncwarp();
    wa_write_rows(drow + 2 * C, C3, s, k0 + w * 16, Tn);
}

/* dQ of 64 query rows (a warp: 16) over the key tiles up to them:
 * S = Q·Kᵀ, P = exp(S·scale - lse), dP = dO·Vᵀ, dS = P∘(dP - D)·scale,
 * dQ += dS·K. */
__global__ void __launch_bounds__(128)
    attention_backward_q_wmma_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                const float *Dv, int B, int Tn, int C, int NH, float scale)
{
    __shared__ __align__(32) bf16 ks[64][WA_LD], vs[64][WA_LD];
    __shared__ __align__(32) float ss[4][16 * WA_SLD];
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
    int q0 = qt * 64, i = q0 + w * 16 + row;
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * Tn * C3 + (size_t)h * WA_HS;
    const bf16 *dbase = dout + (size_t)b * Tn * C + (size_t)h * WA_HS;
    float *s = ss[w];
    fa_t fq[4], fdo[4];
    wa_load_tile(ks, base, C3, q0, Tn);
    wa_load_tile(vs, dbase, C, q0, Tn);
    __syncthreads();
    wa_frags(fq, ks, w * 16);
    wa_frags(fdo, vs, w * 16);
    float Li = i < Tn ? lse[(size_t)bh * Tn + i] : INFINITY;
    float Di = i < Tn ? Dv[(size_t)bh * Tn + i] : 0.0f;
    fc_t dq[4];
    wa_zero(dq);
    int kend = min(Tn, q0 + 64);
    for (int k0 = 0; k0 < kend; k0 += 64) {
        __syncthreads();
        wa_load_tile(ks, base + C, C3, k0, Tn);
        wa_load_tile(vs, base + 2 * C, C3, k0, Tn);
        __syncthreads();
        fc_t acc[4];
        wa_zero(acc);
        wa_mm_reg<true>(acc, fq, ks);
        wa_store(s, acc);
        __syncwarp();
        float p[32];
#pragma unroll
        for (int jj = 0; jj < 32; jj++) {
            int key = k0 + half * 32 + jj;
            p[jj] = key <= i ? __expf(s[row * WA_SLD + half * 32 + jj] * scale - Li) : 0.0f;
        }
        __syncwarp();
        wa_zero(acc);
        wa_mm_reg<true>(acc, fdo, vs);
        wa_store(s, acc);
        __syncwarp();
#pragma unroll
        for (int jj = 0; jj < 32; jj++)
            p[jj] = p[jj] * (s[row * WA_SLD + half * 32 + jj] - Di) * scale;
        __syncwarp();
        wa_put_half(s, row, half, p);
        __syncwarp();
        wa_mm<false>(dq, (const bf16 *)s, WA_PLD, ks);
        __syncwarp();
    }
    wa_store(s, dq);
    __syncwarp();
    wa_write_rows(dqkv + (size_t)b * Tn * C3 + (size_t)h * WA_HS, C3, s, q0 + w * 16, Tn);
}

#endif
