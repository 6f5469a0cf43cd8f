/* gemm-avx512.c - x86-64 AVX-512F micro-kernel: 12 x 32 fp32 register tile (24 zmm
 * accumulators), one sequential fma chain per element; panels packed by the AVX2 packers.
 * Also serves fp32 GEMM on the AMX backend (AMX has no fp32 tile product). */
#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define MR 12
#define NR 32
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

#define ROW_LOAD(i)                                                                      \
    __m512 c##i##0 = load_c ? _mm512_loadu_ps(c + (i) * ldc) : _mm512_setzero_ps();      \
    __m512 c##i##1 = load_c ? _mm512_loadu_ps(c + (i) * ldc + 16) : _mm512_setzero_ps();
#define ROW_FMA(i)                                                                       \
    do {                                                                                 \
        __m512 ai = _mm512_set1_ps(a[i]);                                                \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                      \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                      \
    } while (0)
#define ROW_STORE(i)                                                                     \
    _mm512_storeu_ps(c + (i) * ldc, c##i##0);                                            \
    _mm512_storeu_ps(c + (i) * ldc + 16, c##i##1);

TGT static void ukr_avx512(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc,
                           int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3) ROW_LOAD(4) ROW_LOAD(5)
    ROW_LOAD(6) ROW_LOAD(7) ROW_LOAD(8) ROW_LOAD(9) ROW_LOAD(10) ROW_LOAD(11)
#pragma GCC unroll 2
    for (int64_t k = 0; k < kcp; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        ROW_FMA(0);
        ROW_FMA(1);
        ROW_FMA(2);
        ROW_FMA(3);
        ROW_FMA(4);
        ROW_FMA(5);
        ROW_FMA(6);
        ROW_FMA(7);
        ROW_FMA(8);
        ROW_FMA(9);
        ROW_FMA(10);
        ROW_FMA(11);
        a += MR;
        b += NR;
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
    ROW_STORE(6) ROW_STORE(7) ROW_STORE(8) ROW_STORE(9) ROW_STORE(10) ROW_STORE(11)
}

/* The same tile with A read in place: fp32 row i at a + i * rsa (rows past `rows` repeat row
 * 0; their results are not kept), as the AVX2 kernel's in-place path. */
#define ROW_PTR(i) const float *a##i = a + (rows > (i) ? (i) * rsa : 0);
#define ROW_FMA_U(i)                                                                     \
    do {                                                                                 \
        __m512 ai = _mm512_set1_ps(a##i[k]);                                             \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                      \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                      \
    } while (0)

TGT static void ukr_avx512_rows(int64_t kcp, const void *a_, int64_t rsa, int64_t rows,
                                const void *b_, float *c, int64_t ldc, int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    ROW_PTR(0) ROW_PTR(1) ROW_PTR(2) ROW_PTR(3) ROW_PTR(4) ROW_PTR(5)
    ROW_PTR(6) ROW_PTR(7) ROW_PTR(8) ROW_PTR(9) ROW_PTR(10) ROW_PTR(11)
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3) ROW_LOAD(4) ROW_LOAD(5)
    ROW_LOAD(6) ROW_LOAD(7) ROW_LOAD(8) ROW_LOAD(9) ROW_LOAD(10) ROW_LOAD(11)
    for (int64_t k = 0; k < kcp; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        ROW_FMA_U(0);
        ROW_FMA_U(1);
        ROW_FMA_U(2);
        ROW_FMA_U(3);
        ROW_FMA_U(4);
        ROW_FMA_U(5);
        ROW_FMA_U(6);
        ROW_FMA_U(7);
        ROW_FMA_U(8);
        ROW_FMA_U(9);
        ROW_FMA_U(10);
        ROW_FMA_U(11);
        b += NR;
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
    ROW_STORE(6) ROW_STORE(7) ROW_STORE(8) ROW_STORE(9) ROW_STORE(10) ROW_STORE(11)
}

/* Packing is memory-bound: the AVX2 packers (8-wide transposes, exact bf16 widening) serve.
 * Blocking kc 768, mc 96: called from Python on an Emerald Rapids Xeon (2026-11-29,
 * benchmarks/kernels/gemm_blocking_py.py) it beat kc 384, mc 144 (the best of the C harness
 * gemm_blocking.c the day before) at 1024^3 (0.95-0.97x OpenBLAS against 0.91-0.93x) and on
 * 4096x128x1152 (1.15x against 1.06-1.08x), and matched it elsewhere.  In-place A up to N = 320,
 * as on AVX2 (the decoder's attention and most of its Linear layers). */
static d2ar__gemm_impl AVX512 = {D2AR_BACKEND_AVX512, MR, NR, 1, 768, 96, 2048, sizeof(float),
                                 d2ar__pack_a_avx2, d2ar__pack_b_avx2, ukr_avx512,
                                 ukr_avx512_rows, 320, NULL};

const d2ar__gemm_impl *d2ar__gemm_avx512(int dtype) {
    (void)dtype;
    return &AVX512;
}
#else
const d2ar__gemm_impl *d2ar__gemm_avx512(int dtype) {
    (void)dtype;
    return 0;
}
#endif
