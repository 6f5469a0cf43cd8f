/* internal.h - declarations shared by the cext sources (not part of the public API). */
#ifndef D2AR_INTERNAL_H
#define D2AR_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "d2ar.h"

/* Internal symbols stay out of the shared library's exports; a benchmark build may pass
 * -DD2AR_HIDDEN= to reach them (benchmarks/kernels/gemm_blocking_py.py). */
#ifndef D2AR_HIDDEN
#if defined(__GNUC__)
#define D2AR_HIDDEN __attribute__((visibility("hidden")))
#else
#define D2AR_HIDDEN
#endif
#endif

/* Lets GCC vectorise a function's element-wise loops (plain -O2 vectorises only loops of known
 * trip count).  Only independent element-wise IEEE operations are written under it, so the
 * bits do not change: reductions are never vectorised without -ffast-math. */
#if defined(__GNUC__) && !defined(__clang__)
#define D2AR_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define D2AR_VECTORIZE
#endif

/* A strided matrix operand: element (i, j) is at p[i * rs + j * cs]; bf16 = 1 for uint16 bits. */
typedef struct {
    const void *p;
    int64_t rs, cs;
    int bf16;
} d2ar__mat;

/* Packing: copy the block rows [r0, r0+rows) x k [k0, k0+kc) of an operand into panels of
 * `tile` rows (A) or columns (B), zero-padded to whole panels and to kcp (a multiple of the
 * implementation's k alignment).  Panel p starts at byte p * tile * kcp * elem. */
typedef void (*d2ar__pack_a_fn)(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0,
                                int64_t kc, int64_t kcp, int64_t mr, void *dst);
typedef void (*d2ar__pack_b_fn)(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp,
                                int64_t j0, int64_t nc, int64_t nr, void *dst);
/* Micro-kernel: the full mr x nr tile c (row stride ldc) = (load_c ? c : 0) + sum over the kcp
 * packed k in order, one fused multiply-add per k and element. */
typedef void (*d2ar__ukr_fn)(int64_t kcp, const void *a, const void *b, float *c, int64_t ldc,
                             int load_c);

/* Micro-kernel that reads A unpacked, in its packed element type (fp32 for elem 4, bf16 bits
 * for elem 2): rows a + i * rsa elements (unit stride along k) for the first `rows` (<= mr)
 * rows, otherwise as d2ar__ukr_fn (same products in the same order, same bits). */
typedef void (*d2ar__ukr_rows_fn)(int64_t kcp, const void *a, int64_t rsa, int64_t rows,
                                  const void *b, float *c, int64_t ldc, int load_c);

/* One GEMM implementation: tile shape, blocking, packers and micro-kernel. */
typedef struct {
    int backend;         /* D2AR_BACKEND_* whose micro-kernel this is (for the call counters) */
    int64_t mr, nr;      /* register tile */
    int64_t kalign;      /* packed k is padded to a multiple of this */
    int64_t kc, mc, nc;  /* cache blocking (kc multiple of kalign, mc of mr, nc of nr) */
    size_t elem;         /* bytes of one packed (row, k) element */
    d2ar__pack_a_fn pack_a;
    d2ar__pack_b_fn pack_b;
    d2ar__ukr_fn ukr;
    d2ar__ukr_rows_fn ukr_rows; /* optional (NULL): skips packing row-major A (see gemm.c) */
    int64_t direct_n;           /* ukr_rows is used only when N <= direct_n */
    void (*done)(void);         /* optional: run by the calling thread after its last ukr */
} d2ar__gemm_impl;

/* Per-backend implementations: return NULL when not compiled in.  dtype 0 = fp32, 1 = bf16. */
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__gemm_ref(int dtype);
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__gemm_avx2(int dtype);
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__gemm_avx512(int dtype);
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__gemm_amx(int dtype);
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__gemm_sme(int dtype);

/* Generic packers into fp32 panels (bf16 sources are widened exactly). */
D2AR_HIDDEN void d2ar__pack_a_f32(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0,
                                  int64_t kc, int64_t kcp, int64_t mr, void *dst);
D2AR_HIDDEN void d2ar__pack_b_f32(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp,
                                  int64_t j0, int64_t nc, int64_t nr, void *dst);

/* AVX2 packers (same layout as the portable ones; x86-64 builds only). */
D2AR_HIDDEN void d2ar__pack_a_avx2(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0,
                                   int64_t kc, int64_t kcp, int64_t mr, void *dst);
D2AR_HIDDEN void d2ar__pack_b_avx2(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp,
                                   int64_t j0, int64_t nc, int64_t nr, void *dst);

/* The GEMM driver on the current backend (arguments already checked). */
D2AR_HIDDEN int d2ar__gemm(int dtype, int64_t M, int64_t N, int64_t K, const d2ar__mat *a,
                           const d2ar__mat *b, const float *bias, int bias_kind, int act,
                           float *c, int64_t ldc);

/* Dispatch state; d2ar__count adds one to a backend's counter of micro-kernel blocks run. */
D2AR_HIDDEN const d2ar__gemm_impl *d2ar__impl_current(int dtype, int *backend);
D2AR_HIDDEN void d2ar__count(int backend);
/* Benchmarking aid, not thread-safe and not exported: set the cache blocking (kc, mc, nc) and
 * the in-place A limit direct_n of a backend's GEMM for dtype (0 fp32, 1 bf16); the AVX2,
 * AVX-512 and AMX kernels are tunable.  Results do not depend on it, only speed does (AMX bf16:
 * the k blocking does change its rounding, within its documented tolerance). */
D2AR_HIDDEN int d2ar__gemm_tune(int backend, int dtype, int64_t kc, int64_t mc, int64_t nc,
                                int64_t direct_n);

/* Scalar maths shared by every backend (IEEE basic operations only, fixed order). */
D2AR_HIDDEN float d2ar__expf(float x);
D2AR_HIDDEN float d2ar__act1(float x, int act);
D2AR_HIDDEN void d2ar__act_row(float *y, int64_t n, int act);
/* The same activations 8 lanes at a time (bit-identical); returns how many it did (x86-64). */
D2AR_HIDDEN int64_t d2ar__act_row_avx2(float *y, int64_t n, int act);
/* y[i] = d2ar__expf(x[i] * scale - m), 8 lanes at a time (bit-identical); returns how many. */
D2AR_HIDDEN int64_t d2ar__exp_row_avx2(const float *x, int64_t n, float scale, float m, float *y);
/* y[i] = y[i] / d, 8 lanes at a time; returns how many (x86-64). */
D2AR_HIDDEN int64_t d2ar__div_row_avx2(float *y, int64_t n, float d);
/* *m = the largest x[i] * scale, which is the sequential (v > m ? v : m) maximum whenever no
 * product is NaN (up to the sign of a zero maximum, which x * scale - m cannot tell apart);
 * returns 0 (caller runs the sequential loop) when n < 8, a product is NaN, or not x86-64. */
D2AR_HIDDEN int d2ar__max_row_avx2(const float *x, int64_t n, float scale, float *m);
/* GEMM epilogue of a rows x cols block of C (bias of kind bias_kind at block position i0, j0,
 * then act), 8 lanes at a time (bit-identical to gemm.c's scalar epilogue; x86-64 only). */
D2AR_HIDDEN void d2ar__epilogue_avx2(float *c, int64_t ldc, int64_t rows, int64_t cols,
                                     const float *bias, int bias_kind, int64_t i0, int64_t j0,
                                     int act);
/* True when the selected backend runs on an x86-64 CPU with AVX2 (AVX2, AVX-512, AMX). */
D2AR_HIDDEN int d2ar__use_avx2(void);
D2AR_HIDDEN int d2ar__act_valid(int act);
D2AR_HIDDEN float d2ar__bf16_to_f32(uint16_t h);

/* LayerNorm of rows x cols contiguous (d2ar_layer_norm_f32 without checks). */
D2AR_HIDDEN void d2ar__layer_norm_rows(int64_t rows, int64_t cols, const float *x,
                                       const float *gamma, const float *beta, float eps, float *y);
/* One attention head with row-strided q, k, v, o (see softmax-ref.c); s: Lq * Lk scratch. */
D2AR_HIDDEN int d2ar__attention_head(int64_t Lq, int64_t Lk, int64_t D, int64_t Dv,
                                     const float *q, int64_t rsq, const float *k, int64_t rsk,
                                     const float *v, int64_t rsv, float scale, float *o,
                                     int64_t ldo, float *s);

/* Direct convolution on AVX2 (conv-avx2.c), same bits as im2col + GEMM: D2AR_OK, D2AR_ENOMEM,
 * or 1 when it does not handle the shape (x86-64 only; elsewhere always 1). */
D2AR_HIDDEN int d2ar__conv2d_avx2(int64_t N, int64_t Cin, int64_t H, int64_t W, const float *x,
                                  int64_t Cout, int64_t ks, int64_t pad, const float *w,
                                  const float *bias, int act, float *y);

/* Aligned workspace. */
D2AR_HIDDEN void *d2ar__alloc(size_t bytes);
D2AR_HIDDEN void d2ar__free(void *p);

#endif
