/* gemm-avx2.c - x86-64 AVX2/FMA GEMM: 6 x 16 fp32 register tile (12 ymm accumulators), plus
 * the vectorised AVX2 packers that the AVX-512 kernel shares.
 *
 * Vectorised across i and j only: each accumulator lane is one element's sequential fma chain
 * over k, so the result is the reference's bit for bit.  Packing only moves (and for bf16,
 * widens exactly) the operands; it never changes a value or the k order.
 * Compiled for every x86-64 build through target attributes; chosen at run time. */
#include <string.h>

#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define MR 6
#define NR 16
#define TGT __attribute__((target("avx2,fma")))

/* ---- packers --------------------------------------------------------------------------------
 * The fast paths cover operands with a unit stride along k (row-major A, transposed B: "k runs")
 * or along the panel dimension (row-major B, column-major A: "panel runs"), fp32 or bf16.
 * Anything else (both strides > 1, ragged last panels) goes to the portable packers. */

/* 8 consecutive elements at p as fp32 (bf16 bits are widened exactly: bits << 16). */
TGT static inline __m256 load8(const void *p, int bf16) {
    if (!bf16) return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

TGT static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Store the first w (4, 6 or 8) lanes of v at d. */
TGT static inline void store_w(float *d, __m256 v, int w) {
    if (w == 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    _mm_storeu_ps(d, _mm256_castps256_ps128(v));
    if (w == 6) _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
}

/* "k runs": w (4, 6 or 8) sources, each n elements contiguous along k (element size es bytes);
 * writes element (k, r) to d[k * ld + r].  Sources t >= w repeat source 0 (not stored). */
TGT static void pack_kruns(const char *const src_[8], int w, int64_t n, int bf16, float *d,
                           int64_t ld) {
    const size_t es = bf16 ? 2 : 4;
    const char *s0 = src_[0], *s1 = src_[w > 1 ? 1 : 0], *s2 = src_[w > 2 ? 2 : 0],
               *s3 = src_[w > 3 ? 3 : 0], *s4 = src_[w > 4 ? 4 : 0], *s5 = src_[w > 5 ? 5 : 0],
               *s6 = src_[w > 6 ? 6 : 0], *s7 = src_[w > 7 ? 7 : 0];
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const size_t o = (size_t)k * es;
        if ((o & 63) == 0) { /* one prefetch per source cache line, 512 bytes ahead */
            __builtin_prefetch(s0 + o + 512);
            __builtin_prefetch(s1 + o + 512);
            __builtin_prefetch(s2 + o + 512);
            __builtin_prefetch(s3 + o + 512);
            __builtin_prefetch(s4 + o + 512);
            __builtin_prefetch(s5 + o + 512);
            __builtin_prefetch(s6 + o + 512);
            __builtin_prefetch(s7 + o + 512);
        }
        __m256 r[8] = {load8(s0 + o, bf16), load8(s1 + o, bf16), load8(s2 + o, bf16),
                       load8(s3 + o, bf16), load8(s4 + o, bf16), load8(s5 + o, bf16),
                       load8(s6 + o, bf16), load8(s7 + o, bf16)};
        transpose8(r);
        float *dk = d + k * ld;
        if (w == 8) {
            for (int t = 0; t < 8; t++) _mm256_storeu_ps(dk + t * ld, r[t]);
        } else if (w == 6) {
            for (int t = 0; t < 8; t++) store_w(dk + t * ld, r[t], 6);
        } else {
            for (int t = 0; t < 8; t++) store_w(dk + t * ld, r[t], 4);
        }
    }
    for (; k < n; k++)
        for (int t = 0; t < w; t++)
            d[k * ld + t] = bf16 ? d2ar__bf16_to_f32(((const uint16_t *)src_[t])[k])
                                 : ((const float *)src_[t])[k];
}

/* "panel runs": for each of n k, w (a multiple of 8) contiguous elements from s + k * st
 * (st in elements) to d + k * w. */
TGT static void pack_pruns(const char *s, int64_t st, int64_t w, int64_t n, int bf16, float *d) {
    const size_t es = bf16 ? 2 : 4;
    for (int64_t k = 0; k < n; k++, d += w) {
        const char *row = s + (size_t)(k * st) * es;
        for (int64_t t = 0; t < w; t += 8) _mm256_store_ps(d + t, load8(row + (size_t)t * es, bf16));
    }
}

/* A panel of w rows splits into groups of 8 and a last group of 4 or 6 (store_w widths). */
static int fits(int64_t w) { return w % 8 == 0 || w % 8 == 4 || w % 8 == 6; }

TGT void d2ar__pack_a_avx2(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                           int64_t kcp, int64_t mr, void *dst) {
    float *d = (float *)dst;
    const size_t es = a->bf16 ? 2 : 4;
    const char *base = (const char *)a->p;
    for (int64_t p = 0; p < mc; p += mr, d += mr * kcp) {
        int64_t rows = mc - p < mr ? mc - p : mr;
        int kruns = a->cs == 1 && fits(mr), pruns = a->rs == 1 && mr % 8 == 0;
        if (rows < mr || !(kruns || pruns)) {
            d2ar__pack_a_f32(a, i0 + p, rows, k0, kc, kcp, mr, d);
            continue;
        }
        if (kruns) {
            for (int64_t g = 0; g < mr; g += 8) {
                int w = mr - g < 8 ? (int)(mr - g) : 8;
                const char *src[8];
                for (int t = 0; t < 8; t++)
                    src[t] = base + (size_t)((i0 + p + g + (t < w ? t : 0)) * a->rs + k0) * es;
                pack_kruns(src, w, kc, a->bf16, d + g, mr);
            }
        } else {
            pack_pruns(base + (size_t)(k0 * a->cs + i0 + p) * es, a->cs, mr, kc, a->bf16, d);
        }
        if (kcp > kc) memset(d + kc * mr, 0, (size_t)((kcp - kc) * mr) * sizeof(float));
    }
}

TGT void d2ar__pack_b_avx2(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp, int64_t j0,
                           int64_t nc, int64_t nr, void *dst) {
    float *d = (float *)dst;
    const size_t es = b->bf16 ? 2 : 4;
    const char *base = (const char *)b->p;
    if (nr % 8 != 0 || (b->cs != 1 && b->rs != 1)) {
        d2ar__pack_b_f32(b, k0, kc, kcp, j0, nc, nr, dst);
        return;
    }
    int64_t full = nc / nr * nr; /* whole panels; the ragged last one is packed portably */
    if (b->cs == 1) {
        /* k outer, panels inner: each B row is read once, contiguously */
        for (int64_t k = 0; k < kc; k++) {
            const char *row = base + (size_t)((k0 + k) * b->rs + j0) * es;
            float *o = d + k * nr;
            for (int64_t p = 0; p < full; p += nr, o += nr * kcp)
                for (int64_t t = 0; t < nr; t += 8)
                    _mm256_store_ps(o + t, load8(row + (size_t)(p + t) * es, b->bf16));
        }
    } else {
        float *o = d;
        for (int64_t p = 0; p < full; p += nr, o += nr * kcp)
            for (int64_t g = 0; g < nr; g += 8) {
                const char *src[8];
                for (int t = 0; t < 8; t++)
                    src[t] = base + (size_t)(k0 * b->rs + (j0 + p + g + t) * b->cs) * es;
                pack_kruns(src, 8, kc, b->bf16, o + g, nr);
            }
    }
    if (kcp > kc)
        for (int64_t p = 0; p < full; p += nr)
            memset(d + p * kcp + kc * nr, 0, (size_t)((kcp - kc) * nr) * sizeof(float));
    if (full < nc) d2ar__pack_b_f32(b, k0, kc, kcp, j0 + full, nc - full, nr, d + full * kcp);
}

/* ---- micro-kernel -------------------------------------------------------------------------- */

#define ROW_LOAD(i)                                                                      \
    __m256 c##i##0 = load_c ? _mm256_loadu_ps(c + (i) * ldc) : _mm256_setzero_ps();      \
    __m256 c##i##1 = load_c ? _mm256_loadu_ps(c + (i) * ldc + 8) : _mm256_setzero_ps();
#define ROW_FMA(i)                                                                       \
    do {                                                                                 \
        __m256 ai = _mm256_broadcast_ss(a + (i));                                        \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                      \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                      \
    } while (0)
#define ROW_STORE(i)                                                                     \
    _mm256_storeu_ps(c + (i) * ldc, c##i##0);                                            \
    _mm256_storeu_ps(c + (i) * ldc + 8, c##i##1);

TGT static void ukr_avx2(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc,
                         int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3) ROW_LOAD(4) ROW_LOAD(5)
#pragma GCC unroll 4
    for (int64_t k = 0; k < kcp; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        ROW_FMA(0);
        ROW_FMA(1);
        ROW_FMA(2);
        ROW_FMA(3);
        ROW_FMA(4);
        ROW_FMA(5);
        a += MR;
        b += NR;
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
}

/* The same tile with A read in place: row i at a + i * rsa (rows past `rows` repeat row 0;
 * their results are not kept), so row-major fp32 activations need no packing pass. */
#define ROW_FMA_U(i)                                                                     \
    do {                                                                                 \
        __m256 ai = _mm256_broadcast_ss(a##i + k);                                       \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                      \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                      \
    } while (0)

TGT static void ukr_avx2_rows(int64_t kcp, const void *a_, int64_t rsa, int64_t rows,
                              const void *b_, float *c, int64_t ldc, int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    const float *a0 = a, *a1 = a + (rows > 1 ? rsa : 0), *a2 = a + (rows > 2 ? 2 * rsa : 0);
    const float *a3 = a + (rows > 3 ? 3 * rsa : 0), *a4 = a + (rows > 4 ? 4 * rsa : 0);
    const float *a5 = a + (rows > 5 ? 5 * rsa : 0);
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3) ROW_LOAD(4) ROW_LOAD(5)
#pragma GCC unroll 4
    for (int64_t k = 0; k < kcp; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        ROW_FMA_U(0);
        ROW_FMA_U(1);
        ROW_FMA_U(2);
        ROW_FMA_U(3);
        ROW_FMA_U(4);
        ROW_FMA_U(5);
        b += NR;
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
}

/* In-place A up to N = 320 (the decoder's attention and most of its Linear layers): measured
 * 25-35% faster on 64x64x32 attention products, slower on wide N. */
static d2ar__gemm_impl AVX2 = {D2AR_BACKEND_AVX2, MR, NR, 1, 384, 96, 4080, sizeof(float),
                               d2ar__pack_a_avx2, d2ar__pack_b_avx2, ukr_avx2, ukr_avx2_rows,
                               320, NULL};

const d2ar__gemm_impl *d2ar__gemm_avx2(int dtype) {
    (void)dtype;
    return &AVX2;
}
#else
const d2ar__gemm_impl *d2ar__gemm_avx2(int dtype) {
    (void)dtype;
    return 0;
}
#endif
