/* gemm-amx.c - x86-64 AMX-BF16 micro-kernel for bf16 GEMM: 32 x 32 fp32 tile (4 C tiles).
 *
 * NOT bit-identical to the reference, and it cannot be at a useful speed.  Measured on an
 * Emerald Rapids Xeon with benchmarks/kernels/amx_exactness.c (2026-11-28), TDPBF16PS computes
 * exactly what the current Intel SDM describes: within one instruction the even and the odd bf16
 * lanes each run their own fma chain from 0 over the instruction's k pairs, then
 * dst = dst + (even + odd), RNE, with DAZ and FTZ.  So:
 *   - two k per pair, or one k per pair with a zero partner but several pairs per instruction,
 *     sums each instruction's products apart from dst (a blocked sum, not the reference chain);
 *   - one k per instruction (A tile 4 bytes wide, zero partner) is exactly fma(a, b, dst) for
 *     normal numbers (0 of 1,024,000 outputs differed), but an instruction costs the same
 *     5.6 ns with 1 pair as with 16, which caps that layout at 91 GFLOP/s per core, below the
 *     AVX-512 kernel on the same core (about 150);
 *   - denormal inputs and results are flushed (DAZ/FTZ), unlike the reference's fmaf.
 * The kernel therefore uses the natural layout, two k per pair, 32 k per tile step, and bf16
 * results agree with the reference within fp32 accumulation tolerance only.  This backend is
 * never chosen automatically; force it (XR_D2AR_KERNELS=amx) for speed where bit-exactness is
 * not needed.  fp32 GEMM on this backend runs the AVX-512 kernel and stays bit-exact. */
#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <string.h>

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f")))
#define MR 32
#define NR 32

static uint16_t get16(const d2ar__mat *m, int64_t i, int64_t j) {
    return ((const uint16_t *)m->p)[i * m->rs + j * m->cs];
}

/* A panel (32 rows): per chunk of 32 k, tile A0 (rows 0-15) then A1 (rows 16-31), each row
 * 32 bf16 = 16 pairs (k, k+1); zero beyond the block.  Rows with unit k stride are copied. */
static void pack_a(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                   int64_t kcp, int64_t mr, void *dst) {
    uint16_t *d = (uint16_t *)dst;
    (void)mr;
    for (int64_t p = 0; p < mc; p += MR)
        for (int64_t q = 0; q < kcp; q += 32)
            for (int64_t r = 0; r < MR; r++, d += 32) {
                int64_t n = kc - q < 32 ? kc - q : 32;
                if (p + r >= mc || n <= 0) {
                    memset(d, 0, 64);
                    continue;
                }
                if (a->cs == 1) {
                    memcpy(d, (const uint16_t *)a->p + (i0 + p + r) * a->rs + k0 + q, 2 * n);
                } else {
                    for (int64_t s = 0; s < n; s++) d[s] = get16(a, i0 + p + r, k0 + q + s);
                }
                if (n < 32) memset(d + n, 0, 2 * (32 - n));
            }
}

/* Interleave 16 bf16 of row r0 and 16 of row r1 into 16 pairs (r0[n], r1[n]) at d. */
__attribute__((target("avx2"))) static void pair16(const uint16_t *r0, const uint16_t *r1,
                                                  uint16_t *d) {
    __m256i x = _mm256_loadu_si256((const __m256i *)r0), y = _mm256_loadu_si256((const __m256i *)r1);
    __m256i lo = _mm256_unpacklo_epi16(x, y), hi = _mm256_unpackhi_epi16(x, y);
    _mm256_storeu_si256((__m256i *)d, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(d + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* B panel (32 columns): per chunk of 32 k, tile B0 (columns 0-15) then B1 (16-31); tile row kk
 * holds, per column, the pair (k = 2 kk, 2 kk + 1) - the VNNI layout TDPBF16PS reads. */
static void pack_b(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp, int64_t j0,
                   int64_t nc, int64_t nr, void *dst) {
    uint16_t *d = (uint16_t *)dst;
    (void)nr;
    for (int64_t p = 0; p < nc; p += NR)
        for (int64_t q = 0; q < kcp; q += 32)
            for (int64_t t = 0; t < 2; t++)
                for (int64_t kk = 0; kk < 16; kk++, d += 32) {
                    int64_t k = q + 2 * kk, col = p + 16 * t;
                    int64_t cols = nc - col < 16 ? nc - col : 16;
                    if (cols <= 0 || k >= kc) {
                        memset(d, 0, 64);
                        continue;
                    }
                    if (b->cs == 1 && cols == 16 && k + 1 < kc) { /* row-major: vectorised */
                        const uint16_t *r0 = (const uint16_t *)b->p + (k0 + k) * b->rs + j0 + col;
                        pair16(r0, r0 + b->rs, d);
                        continue;
                    }
                    for (int64_t h = 0; h < 2; h++) {
                        if (k + h >= kc) {
                            for (int64_t n = 0; n < 16; n++) d[2 * n + h] = 0;
                            continue;
                        }
                        const uint16_t *src = (const uint16_t *)b->p + (k0 + k + h) * b->rs;
                        for (int64_t n = 0; n < 16; n++)
                            d[2 * n + h] = n < cols ? src[(j0 + col + n) * b->cs] : 0;
                    }
                }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

TGT static void ukr_amx(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc,
                        int load_c) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    const size_t ld = (size_t)ldc * sizeof(float);
    if (load_c) {
        _tile_loadd(0, c, ld);
        _tile_loadd(1, c + 16, ld);
        _tile_loadd(2, c + 16 * ldc, ld);
        _tile_loadd(3, c + 16 * ldc + 16, ld);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const char *a = (const char *)a_, *b = (const char *)b_;
    for (int64_t q = 0; q < kcp; q += 32) {
        _tile_loadd(4, a, 64);
        _tile_loadd(5, a + 1024, 64);
        _tile_loadd(6, b, 64);
        _tile_loadd(7, b + 1024, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        a += 2048;
        b += 2048;
    }
    _tile_stored(0, c, ld);
    _tile_stored(1, c + 16, ld);
    _tile_stored(2, c + 16 * ldc, ld);
    _tile_stored(3, c + 16 * ldc + 16, ld);
    _tile_release();
}

static const d2ar__gemm_impl AMX = {D2AR_BACKEND_AMX, MR, NR, 32, 1024, 128, 512, 2,
                                    pack_a, pack_b, ukr_amx};

const d2ar__gemm_impl *d2ar__gemm_amx(int dtype) {
    return dtype == 0 ? d2ar__gemm_avx512(0) : &AMX;
}
#else
const d2ar__gemm_impl *d2ar__gemm_amx(int dtype) {
    (void)dtype;
    return 0;
}
#endif
