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

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f,prfchw")))
#define MR 32
#define NR 32

/* Copy 64 bytes (32 bf16) with one AVX-512 load and store: a libc memcpy call per tile row
 * cost about a fifth of a 1024^3 product's time. */
__attribute__((target("avx512f"))) static inline void copy64(void *d, const void *s) {
    _mm512_storeu_si512(d, _mm512_loadu_si512(s));
}

/* A panel (32 rows): per chunk of 32 k, tile A0 (rows 0-15) then A1 (rows 16-31), each row
 * 32 bf16 = 16 pairs (k, k+1); zero beyond the block.  Each source row is read in order. */
__attribute__((target("avx512f"))) static void pack_a(const d2ar__mat *a, int64_t i0, int64_t mc,
                                                     int64_t k0, int64_t kc, int64_t kcp,
                                                     int64_t mr, void *dst) {
    (void)mr;
    uint16_t *panel = (uint16_t *)dst;
    for (int64_t p = 0; p < mc; p += MR, panel += MR * kcp)
        for (int64_t r = 0; r < MR; r++) {
            uint16_t *d = panel + 32 * r; /* chunk q of this row at d + q * 32 * MR */
            if (p + r >= mc) {
                for (int64_t q = 0; q < kcp; q += 32, d += 32 * MR) memset(d, 0, 64);
                continue;
            }
            const uint16_t *src = (const uint16_t *)a->p + (i0 + p + r) * a->rs + k0 * a->cs;
            for (int64_t q = 0; q < kcp; q += 32, d += 32 * MR) {
                int64_t n = kc - q < 32 ? kc - q : 32;
                if (n == 32 && a->cs == 1) {
                    copy64(d, src + q);
                    continue;
                }
                for (int64_t t = 0; t < n; t++) d[t] = src[(q + t) * a->cs];
                memset(d + n, 0, 2 * (size_t)(32 - n));
            }
        }
}

/* Interleave orders for _mm512_permutex2var_epi16(x, idx, y): pairs (x[n], y[n]) for columns
 * n = 0-15 (tile B0's row) and 16-31 (tile B1's row); indices of y are 32 + n. */
static const uint16_t PAIR_LO[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                     8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
static const uint16_t PAIR_HI[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54,
                                     23, 55, 24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61,
                                     30, 62, 31, 63};

/* B panel (32 columns): per chunk of 32 k, tile B0 (columns 0-15) then B1 (16-31); tile row kk
 * holds, per column, the pair (k = 2 kk, 2 kk + 1) - the VNNI layout TDPBF16PS reads; zero
 * beyond the block.  Row-major B is read one row pair at a time across every panel (each row
 * once, contiguously: walking it panel by panel read 32 bytes per row per visit and took a third
 * of a 512^3 product's time). */
__attribute__((target("avx512f,avx512bw"))) static void pack_b(const d2ar__mat *b, int64_t k0,
                                                              int64_t kc, int64_t kcp,
                                                              int64_t j0, int64_t nc, int64_t nr,
                                                              void *dst) {
    (void)nr;
    const uint16_t *src = (const uint16_t *)b->p;
    const __m512i lo = _mm512_loadu_si512(PAIR_LO), hi = _mm512_loadu_si512(PAIR_HI);
    for (int64_t k = 0; k < kcp; k += 2) {
        /* tile row k / 2 % 16 of chunk k / 32, in panel 0; panel p / 32 is NR * kcp further */
        uint16_t *row = (uint16_t *)dst + k / 32 * (32 * NR) + k % 32 / 2 * 32;
        const int pair = b->cs == 1 && k + 1 < kc; /* both rows present, unit column stride */
        const uint16_t *r0 = src + (k0 + k) * b->rs + j0, *r1 = r0 + b->rs;
        for (int64_t p = 0; p < nc; p += NR, row += NR * kcp) {
            if (pair && nc - p >= NR) {
                __m512i x = _mm512_loadu_si512(r0 + p), y = _mm512_loadu_si512(r1 + p);
                _mm512_storeu_si512(row, _mm512_permutex2var_epi16(x, lo, y));
                _mm512_storeu_si512(row + 512, _mm512_permutex2var_epi16(x, hi, y));
                continue;
            }
            for (int64_t n = 0; n < NR; n++)
                for (int64_t h = 0; h < 2; h++)
                    row[n / 16 * 512 + 2 * (n % 16) + h] =
                        p + n < nc && k + h < kc
                            ? src[(k0 + k + h) * b->rs + (j0 + p + n) * b->cs]
                            : 0;
        }
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* The tile configuration (8 tiles of 16 rows x 64 bytes) is loaded by a thread's first micro-
 * kernel of a GEMM call and released by amx_done at the end of that call: LDTILECFG and
 * TILERELEASE once per call rather than once per 32 x 32 tile.  The configuration is a constant
 * in memory, not a local filled in just before LDTILECFG: GCC 12's _tile_loadconfig tells the
 * compiler it reads only the first 8 bytes, so at -O2 the stores of the row and column sizes to
 * such a local were dropped, which loaded rows = 0 and made the first tile instruction fault
 * (SIGILL). */
static __thread int g_configured;
static const tilecfg CFG __attribute__((aligned(64))) = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

TGT static void amx_config(void) {
    if (g_configured) return;
    _tile_loadconfig(&CFG);
    g_configured = 1;
}

TGT static void amx_done(void) {
    if (!g_configured) return;
    _tile_release();
    g_configured = 0;
}

/* Tiles 0-3 = the 32 x 32 fp32 block of C (row stride ldc), loaded or zeroed, and stored. */
TGT static void c_begin(const float *c, int64_t ldc, int load_c) {
    amx_config();
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
}

TGT static void c_end(float *c, int64_t ldc) {
    const size_t ld = (size_t)ldc * sizeof(float);
    _tile_stored(0, c, ld);
    _tile_stored(1, c + 16, ld);
    _tile_stored(2, c + 16 * ldc, ld);
    _tile_stored(3, c + 16 * ldc + 16, ld);
}

/* One 32-k step: A rows 0-15 at a0 and 16-31 at a1 (row stride lda bytes), B tiles at b and
 * b + 1024 (packed), four tile products into C. */
#define AMX_STEP(a0, a1, lda, b)                                                               \
    do {                                                                                       \
        _tile_loadd(4, (a0), (lda));                                                           \
        _tile_loadd(5, (a1), (lda));                                                           \
        _tile_loadd(6, (b), 64);                                                               \
        _tile_loadd(7, (b) + 1024, 64);                                                        \
        _tile_dpbf16ps(0, 4, 6);                                                               \
        _tile_dpbf16ps(1, 4, 7);                                                               \
        _tile_dpbf16ps(2, 5, 6);                                                               \
        _tile_dpbf16ps(3, 5, 7);                                                               \
    } while (0)

/* Ask for the next C tile's cache lines for writing, two of its 32 rows (4 lines) per step, while
 * this tile's products run: the tile stores otherwise wait for each line's read-for-ownership,
 * which made storing C cost a third of a 512^3 product (benchmarks/kernels/amx_phases.c).  The
 * next tile is taken to be the one below (the driver's inner loop walks A panels down one B
 * panel); at the end of a column of tiles the guess is wrong, or lies past C, which PREFETCHW
 * tolerates (prefetches never fault).  benchmarks/kernels/amx_schedule.c measures it. */
#define AMX_PREFETCH_NEXT(c, ldc, row)                                                         \
    do {                                                                                       \
        if ((row) < MR) {                                                                      \
            const float *next = (c) + (MR + (row)) * (ldc);                                    \
            _m_prefetchw((void *)next);                                                        \
            _m_prefetchw((void *)(next + 16));                                                 \
            _m_prefetchw((void *)(next + (ldc)));                                              \
            _m_prefetchw((void *)(next + (ldc) + 16));                                         \
            (row) += 2;                                                                        \
        }                                                                                      \
    } while (0)

TGT static void ukr_amx(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc,
                        int load_c) {
    c_begin(c, ldc, load_c);
    const char *a = (const char *)a_, *b = (const char *)b_;
    int64_t row = 0;
    for (int64_t q = 0; q < kcp; q += 32, a += 2048, b += 2048) {
        AMX_STEP(a, a + 1024, 64, b);
        AMX_PREFETCH_NEXT(c, ldc, row);
    }
    c_end(c, ldc);
}

/* The same tile with A read in place: bf16 row i at a + i * rsa, kcp a multiple of 32 within
 * the row.  A partial panel (rows < 32) is copied one 32-k step at a time into a zeroed
 * buffer, so no row past the matrix is read. */
TGT static void ukr_amx_rows(int64_t kcp, const void *a_, int64_t rsa, int64_t rows,
                             const void *b_, float *c, int64_t ldc, int load_c) {
    c_begin(c, ldc, load_c);
    const uint16_t *a = (const uint16_t *)a_;
    const char *b = (const char *)b_;
    int64_t row = 0;
    if (rows == MR) {
        const size_t lda = (size_t)rsa * 2;
        for (int64_t q = 0; q < kcp; q += 32, b += 2048) {
            AMX_STEP(a + q, a + 16 * rsa + q, lda, b);
            AMX_PREFETCH_NEXT(c, ldc, row);
        }
    } else {
        _Alignas(64) uint16_t buf[MR * 32];
        memset(buf, 0, sizeof buf);
        for (int64_t q = 0; q < kcp; q += 32, b += 2048) {
            for (int64_t r = 0; r < rows; r++) copy64(buf + 32 * r, a + r * rsa + q);
            /* GCC's _tile_loadd is an asm with no memory operand: without this barrier the
             * stores to buf may be dropped or moved past the tile loads that read them */
            __asm__ volatile("" ::: "memory");
            AMX_STEP(buf, buf + 16 * 32, 64, b);
        }
    }
    c_end(c, ldc);
}

/* kc 1024, mc 64, nc 512 (packed B block 1 MiB, in L2: a step with its operands from L3 ran
 * 4-6 times slower, benchmarks/kernels/amx_step.c; M blocks of 64 rows beat 128 by 3-7% at
 * 512^3 and 1024^3 in three device runs of amx_schedule.c); A in place up to N = 128 (strided
 * A tiles are slower than packed ones, but skipping the packing pass pays where few B panels
 * reuse it: 1024x64x576; packing won at 256^3 once the driver's store-forwarding stall was
 * gone).  Sweeps: benchmarks/results/device/amx_sweep.txt, amx_schedule.txt; BENCHMARKS.md
 * section 6. */
static d2ar__gemm_impl AMX = {D2AR_BACKEND_AMX, MR, NR, 32, 1024, 64, 512, 2,
                              pack_a, pack_b, ukr_amx, ukr_amx_rows, 128, amx_done};

const d2ar__gemm_impl *d2ar__gemm_amx(int dtype) {
    return dtype == 0 ? d2ar__gemm_avx512(0) : &AMX;
}
#else
const d2ar__gemm_impl *d2ar__gemm_amx(int dtype) {
    (void)dtype;
    return 0;
}
#endif
