/* gemm-avx2.c - x86-64 AVX2/FMA micro-kernel: 6 x 16 fp32 register tile (12 ymm accumulators).
 * Vectorised across i and j only: each accumulator lane is one element's sequential fma chain.
 * Compiled for every x86-64 build through target attributes; chosen at run time. */
#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define MR 6
#define NR 16

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

__attribute__((target("avx2,fma"))) static void ukr_avx2(int64_t kcp, const void *a_,
                                                           const void *b_, float *c,
                                                           int64_t ldc, int load_c) {
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

static const d2ar__gemm_impl AVX2 = {D2AR_BACKEND_AVX2, MR, NR, 1, 256, 144, 4080, sizeof(float),
                                     d2ar__pack_a_f32, d2ar__pack_b_f32, ukr_avx2};

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
