/* conv-avx2.c - direct 2-D convolution (NCHW, stride 1) on x86-64 AVX2/FMA, no im2col.
 *
 * Same results as conv-ref.c's im2col + GEMM bit for bit: every output is one sequential fma
 * chain over k = (cin, ky, kx) starting from 0 (padding reads +0.0f, as im2col writes), then
 * + bias, then the activation (the library's, 8 lanes = the scalar formula).  The register
 * tile is 4 to 6 output channels x 16 pixels of one output row; its B operand is read straight
 * from a zero-padded copy of the input through a table of k offsets, so the im2col matrix and
 * the packed B panels (two extra passes over K x pixels) are never written.
 * Compiled for every x86-64 build through target attributes; used when the selected backend
 * runs on AVX2 (AVX2, AVX-512, AMX). */
#include <string.h>

#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))
#define SEG 16 /* pixels per register tile */

#define ACC_DECL(i)                                                                      \
    __m256 c##i##0 = load ? _mm256_loadu_ps(dst + (i) * ld) : _mm256_setzero_ps();       \
    __m256 c##i##1 = load ? _mm256_loadu_ps(dst + (i) * ld + 8) : _mm256_setzero_ps();
#define ACC_FMA(i, R)                                                                    \
    do {                                                                                 \
        __m256 ai = _mm256_broadcast_ss(a + (i));                                        \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                      \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                      \
    } while (0)
#define ACC_STORE(i)                                                                     \
    do {                                                                                 \
        if (bias) {                                                                      \
            __m256 bi = _mm256_broadcast_ss(bias + (i));                                 \
            c##i##0 = _mm256_add_ps(c##i##0, bi);                                        \
            c##i##1 = _mm256_add_ps(c##i##1, bi);                                        \
        }                                                                                \
        _mm256_storeu_ps(dst + (i) * ld, c##i##0);                                       \
        _mm256_storeu_ps(dst + (i) * ld + 8, c##i##1);                                   \
    } while (0)

/* 6 (or 4) output channels x 16 pixels: a = packed weights (k, i) at a[k * R + i], the pixels'
 * input at base + off[k]; the accumulators start at 0 or, when load, at dst (the partial sums
 * of the earlier k blocks: the fma chain goes on exactly); dst rows i at dst + i * ld get
 * acc (+ bias[i] when bias). */
TGT static void tile6(int64_t K, const float *a, const float *base, const int32_t *off,
                      const float *bias, float *dst, int64_t ld, int load) {
    ACC_DECL(0) ACC_DECL(1) ACC_DECL(2) ACC_DECL(3) ACC_DECL(4) ACC_DECL(5)
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++, a += 6) {
        const float *b = base + off[k];
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ACC_FMA(0, 6);
        ACC_FMA(1, 6);
        ACC_FMA(2, 6);
        ACC_FMA(3, 6);
        ACC_FMA(4, 6);
        ACC_FMA(5, 6);
    }
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
    ACC_STORE(4);
    ACC_STORE(5);
}

TGT static void tile5(int64_t K, const float *a, const float *base, const int32_t *off,
                      const float *bias, float *dst, int64_t ld, int load) {
    ACC_DECL(0) ACC_DECL(1) ACC_DECL(2) ACC_DECL(3) ACC_DECL(4)
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++, a += 5) {
        const float *b = base + off[k];
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ACC_FMA(0, 5);
        ACC_FMA(1, 5);
        ACC_FMA(2, 5);
        ACC_FMA(3, 5);
        ACC_FMA(4, 5);
    }
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
    ACC_STORE(4);
}

TGT static void tile4(int64_t K, const float *a, const float *base, const int32_t *off,
                      const float *bias, float *dst, int64_t ld, int load) {
    ACC_DECL(0) ACC_DECL(1) ACC_DECL(2) ACC_DECL(3)
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++, a += 4) {
        const float *b = base + off[k];
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ACC_FMA(0, 4);
        ACC_FMA(1, 4);
        ACC_FMA(2, 4);
        ACC_FMA(3, 4);
    }
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
}

/* Output channels of the next tile when `left` remain: the fewest tiles of at most 6, as even
 * as possible (32 = 6 6 5 5 5 5), so that every tile keeps 10 or 12 accumulators. */
static int tile_rows(int64_t left) {
    const int64_t t = (left + 5) / 6, base = left / t;
    return (int)(left % t ? base + 1 : base);
}

/* Input channels per k block: about 288 k (32 channels of 3x3), blocks of equal size, so that
 * a 16-pixel window of the block's input rows and a tile's weights stay in L1. */
static int64_t channel_block(int64_t Cin, int64_t ks) {
    int64_t cmax = 288 / (ks * ks);
    cmax = cmax < 1 ? 1 : cmax;
    int64_t nb = (Cin + cmax - 1) / cmax;
    return (Cin + nb - 1) / nb;
}

/* Returns D2AR_OK, D2AR_ENOMEM, or 1 when the shape is not handled (caller uses im2col). */
int d2ar__conv2d_avx2(int64_t N, int64_t Cin, int64_t H, int64_t W, const float *x, int64_t Cout,
                      int64_t ks, int64_t pad, const float *w, const float *bias, int act,
                      float *y) {
    const int64_t Ho = H + 2 * pad - ks + 1, Wo = W + 2 * pad - ks + 1, K = Cin * ks * ks;
    const int64_t Hp = H + 2 * pad, Wp = (W + 2 * pad + SEG + 7) / 8 * 8;
    if (Cin < 1 || Wo < 8 || (int64_t)Cin * Hp * Wp > ((int64_t)1 << 30)) return 1;
    const int64_t P = Ho * Wo, plane = Hp * Wp, cb = channel_block(Cin, ks), kk = ks * ks;
    const int64_t coutp = Cout + 4; /* room for the zero rows of a last tile of < 4 channels */
    float *xp = d2ar__alloc((size_t)(Cin * plane + 8) * sizeof(float));
    int32_t *off = d2ar__alloc((size_t)(cb * kk) * sizeof(int32_t));
    float *ap = d2ar__alloc((size_t)(coutp * cb * kk) * sizeof(float));
    float *tmp = d2ar__alloc((size_t)(6 * SEG) * sizeof(float));
    if (!xp || !off || !ap || !tmp) {
        d2ar__free(xp), d2ar__free(off), d2ar__free(ap), d2ar__free(tmp);
        return D2AR_ENOMEM;
    }
    memset(xp, 0, (size_t)(Cin * plane + 8) * sizeof(float)); /* +0.0f padding */
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * Cin * H * W;
        float *yn = y + n * Cout * P;
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int64_t iy = 0; iy < H; iy++)
                memcpy(xp + ci * plane + (iy + pad) * Wp + pad, xn + (ci * H + iy) * W,
                       (size_t)W * sizeof(float));
        for (int64_t c0 = 0; c0 < Cin; c0 += cb) {
            const int64_t nc = Cin - c0 < cb ? Cin - c0 : cb, kc = nc * kk;
            const int load = c0 > 0, last = c0 + nc == Cin;
            for (int64_t ci = 0, k = 0; ci < nc; ci++)
                for (int64_t ky = 0; ky < ks; ky++)
                    for (int64_t kx = 0; kx < ks; kx++)
                        off[k++] = (int32_t)(ci * plane + ky * Wp + kx);
            /* weights of this k block, tile by tile: (k, i) at a[k * R + i], zero past Cout */
            for (int64_t co = 0; co < Cout;) {
                const int rows = tile_rows(Cout - co), R = rows < 4 ? 4 : rows;
                float *a = ap + co * kc;
                for (int64_t k = 0; k < kc; k++)
                    for (int i = 0; i < R; i++)
                        a[k * R + i] = i < rows ? w[(co + i) * K + c0 * kk + k] : 0.0f;
                co += rows;
            }
            const float *xb = xp + c0 * plane;
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox += SEG) {
                    const int64_t cols = Wo - ox < SEG ? Wo - ox : SEG;
                    const float *base = xb + oy * Wp + ox;
                    for (int64_t co = 0; co < Cout;) {
                        const int rows = tile_rows(Cout - co), R = rows < 4 ? 4 : rows;
                        float *dst = yn + co * P + oy * Wo + ox;
                        const float *bco = last && bias ? bias + co : NULL;
                        float bpad[6];
                        if (bco && rows < R) {
                            for (int i = 0; i < R; i++) bpad[i] = i < rows ? bco[i] : 0.0f;
                            bco = bpad;
                        }
                        const int direct = cols == SEG && rows == R;
                        float *d = direct ? dst : tmp;
                        const int64_t ld = direct ? P : SEG;
                        if (!direct && load)
                            for (int i = 0; i < rows; i++)
                                memcpy(tmp + i * SEG, dst + i * P, (size_t)cols * sizeof(float));
                        if (R == 6)
                            tile6(kc, ap + co * kc, base, off, bco, d, ld, load);
                        else if (R == 5)
                            tile5(kc, ap + co * kc, base, off, bco, d, ld, load);
                        else
                            tile4(kc, ap + co * kc, base, off, bco, d, ld, load);
                        for (int i = 0; i < rows; i++) {
                            float *row = dst + i * P;
                            if (!direct) memcpy(row, tmp + i * SEG, (size_t)cols * sizeof(float));
                            if (last) d2ar__act_row(row, cols, act);
                        }
                        co += rows;
                    }
                }
        }
    }
    d2ar__free(xp), d2ar__free(off), d2ar__free(ap), d2ar__free(tmp);
    return D2AR_OK;
}
#else
int d2ar__conv2d_avx2(int64_t N, int64_t Cin, int64_t H, int64_t W, const float *x, int64_t Cout,
                      int64_t ks, int64_t pad, const float *w, const float *bias, int act,
                      float *y) {
    (void)N, (void)Cin, (void)H, (void)W, (void)x, (void)Cout, (void)ks, (void)pad, (void)w;
    (void)bias, (void)act, (void)y;
    return 1;
}
#endif
