/* amx_exactness.c - what TDPBF16PS computes, and whether AMX can reproduce the reference's
 * sequential fma chain (acc = fma(a[k], b[k], acc) for k = 0..K-1) bit for bit.
 *
 * Build and run on a CPU with AMX-BF16 (Linux):
 *     gcc -O2 -ffp-contract=off benchmarks/kernels/amx_exactness.c -lm -o amx_exactness
 *     ./amx_exactness [out.json]
 *
 * Models checked against the hardware, per output element (products of bf16 are exact in fp32):
 *   seq   : the reference, one fma per k, carried in dst across the whole instruction;
 *   sdm   : the current Intel SDM text: within one instruction the even and the odd bf16 lanes
 *           each run their own fma chain from 0 over the k pairs, then elem = even + odd and
 *           dst = dst + elem, all RNE with DAZ and FTZ.
 * Tests:
 *   T1  one k pair per instruction, odd partner 0 (A tile 4 bytes wide): dst + a*b   (normal range)
 *   T1d the same with exponents reaching the fp32 denormal range (DAZ/FTZ)
 *   T2  16 k pairs per instruction, odd partner 0 (the "zero-interleaved" layout)
 *   T3  16 k pairs per instruction, both lanes used (the natural layout)
 *   T4  throughput of TDPBF16PS with 1 and with 16 k pairs (4 independent C tiles)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <immintrin.h>
#include "harness.h"

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f")))

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float bits2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f2bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bf(uint16_t h) { return bits2f((uint32_t)h << 16); }
/* random bf16 with unbiased exponent in [lo, hi] and random sign/mantissa */
static uint16_t rbf(int lo, int hi) {
    uint64_t r = rnd();
    int e = lo + (int)(r % (uint64_t)(hi - lo + 1)) + 127;
    if (e < 1) e = 0; /* denormal (or zero) */
    return (uint16_t)(((r >> 20) & 1) << 15 | (uint32_t)e << 7 | ((r >> 32) & 0x7f));
}
static float rf32(int lo, int hi) {
    uint64_t r = rnd();
    int e = lo + (int)(r % (uint64_t)(hi - lo + 1)) + 127;
    if (e < 1) e = 0;
    return bits2f((uint32_t)(((r >> 20) & 1) << 31 | (uint32_t)e << 23 | ((r >> 32) & 0x7fffff)));
}
static float daz(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }
#define ftz daz

static int same(float x, float y) { return f2bits(x) == f2bits(y) || (isnan(x) && isnan(y)); }

/* dst (16 x 16 fp32), A (16 rows x npair pairs), B (npair rows x 16 pairs); returns dst. */
#ifdef AMX_EMULATE /* self-check of this program's bookkeeping on a CPU without AMX */
static void tdp(int npair, float *dst, const uint16_t *a, const uint16_t *b) {
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float ev = 0.0f, od = 0.0f;
            for (int k = 0; k < npair; k++) {
                ev = ftz(fmaf(daz(bf(a[m * 2 * npair + 2 * k])), daz(bf(b[k * 32 + 2 * n])), ev));
                od = ftz(fmaf(daz(bf(a[m * 2 * npair + 2 * k + 1])), daz(bf(b[k * 32 + 2 * n + 1])),
                              od));
            }
            dst[m * 16 + n] = ftz(daz(dst[m * 16 + n]) + ftz(ev + od));
        }
}
#else
TGT static void tdp(int npair, float *dst, const uint16_t *a, const uint16_t *b) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.colsb[0] = 64, cfg.rows[0] = 16;
    cfg.colsb[1] = (uint16_t)(4 * npair), cfg.rows[1] = 16;
    cfg.colsb[2] = 64, cfg.rows[2] = (uint8_t)npair;
    __asm__ volatile("" : : "m"(cfg)); /* GCC 12 -O2 drops the stores to cfg otherwise */
    _tile_loadconfig(&cfg);
    _tile_loadd(0, dst, 64);
    _tile_loadd(1, a, 4 * npair);
    _tile_loadd(2, b, 64);
    _tile_dpbf16ps(0, 1, 2);
    _tile_stored(0, dst, 64);
    _tile_release();
}
#endif

typedef struct {
    long n, diff_seq, diff_sdm;
} tally;

/* One experiment: trials instructions, npair pairs, odd lane zero if zero_odd. */
static tally run(int trials, int npair, int zero_odd, int elo, int ehi, int clo, int chi) {
    tally t = {0, 0, 0};
    uint16_t a[16 * 32], b[16 * 32];
    float c[256], hw[256];
    for (int tr = 0; tr < trials; tr++) {
        for (int i = 0; i < 16 * 2 * npair; i++) {
            int odd = i & 1;
            a[i] = zero_odd && odd ? 0 : rbf(elo, ehi);
            b[i] = zero_odd && odd ? 0 : rbf(elo, ehi);
        }
        for (int i = 0; i < 256; i++) c[i] = rf32(clo, chi);
        memcpy(hw, c, sizeof c);
        tdp(npair, hw, a, b);
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 16; n++) {
                /* A row m: pairs k at a[m * 2 npair + 2k + {0,1}]; B row k: pair n at
                 * b[k * 32 + 2n + {0,1}] */
                float seq = c[m * 16 + n], ev = 0.0f, od = 0.0f;
                for (int k = 0; k < npair; k++) {
                    float a0 = bf(a[m * 2 * npair + 2 * k]), a1 = bf(a[m * 2 * npair + 2 * k + 1]);
                    float b0 = bf(b[k * 32 + 2 * n]), b1 = bf(b[k * 32 + 2 * n + 1]);
                    seq = fmaf(a0, b0, seq);
                    if (!zero_odd) seq = fmaf(a1, b1, seq);
                    ev = ftz(fmaf(daz(a0), daz(b0), ev));
                    od = ftz(fmaf(daz(a1), daz(b1), od));
                }
                float sdm = ftz(daz(c[m * 16 + n]) + ftz(ev + od));
                float h = hw[m * 16 + n];
                t.n++;
                t.diff_seq += !same(h, seq);
                t.diff_sdm += !same(h, sdm);
            }
    }
    return t;
}

/* ns per TDPBF16PS, 4 independent accumulators (tiles 0-3), A tiles 4-5, B tiles 6-7. */
TGT static double timing(int npair, long iters) {
    static uint16_t buf[16 * 32 * 2] __attribute__((aligned(64)));
    static float cbuf[256] __attribute__((aligned(64)));
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 4; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    for (int i = 4; i < 6; i++) cfg.colsb[i] = (uint16_t)(4 * npair), cfg.rows[i] = 16;
    for (int i = 6; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = (uint8_t)npair;
    __asm__ volatile("" : : "m"(cfg)); /* GCC 12 -O2 drops the stores to cfg otherwise */
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 4 * npair);
    _tile_loadd(5, buf, 4 * npair);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, cbuf, 64);
    double dt = now() - t0;
    _tile_release();
    return dt / (4.0 * iters) * 1e9;
}

int main(int argc, char **argv) {
#ifndef AMX_EMULATE
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
        printf("AMX tile data not granted by the OS (or no AMX): nothing to test\n");
        return 0;
    }
#endif
    struct {
        const char *name;
        int trials, npair, zero_odd, elo, ehi, clo, chi;
    } tests[] = {
        {"T1 one pair/instr, odd=0, normal range", 4000, 1, 1, -20, 20, -40, 40},
        {"T1d one pair/instr, odd=0, denormal range", 4000, 1, 1, -75, -50, -140, -100},
        {"T2 16 pairs/instr, odd=0 (zero-interleaved)", 2000, 16, 1, -20, 20, -40, 40},
        {"T3 16 pairs/instr, both lanes (natural)", 2000, 16, 0, -20, 20, -40, 40},
    };
    FILE *js = argc > 1 ? fopen(argv[1], "w") : NULL;
    if (js) fprintf(js, "{\n  \"tests\": [\n");
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        tally t = run(tests[i].trials, tests[i].npair, tests[i].zero_odd, tests[i].elo,
                      tests[i].ehi, tests[i].clo, tests[i].chi);
        printf("%-46s: %ld outputs; differ from seq fma chain: %ld; from SDM model: %ld\n",
               tests[i].name, t.n, t.diff_seq, t.diff_sdm);
        if (js)
            fprintf(js, "    {\"name\": \"%s\", \"outputs\": %ld, \"diff_seq\": %ld, "
                        "\"diff_sdm_model\": %ld}%s\n", tests[i].name, t.n, t.diff_seq,
                    t.diff_sdm, i + 1 < sizeof tests / sizeof tests[0] ? "," : "");
    }
#ifdef AMX_EMULATE
    return 0;
#endif
    double t16 = 1e9, t1 = 1e9;
    for (int r = 0; r < 5; r++) {
        double x = timing(16, 2000000), y = timing(1, 2000000);
        t16 = x < t16 ? x : t16;
        t1 = y < t1 ? y : t1;
    }
    /* useful flops per instruction: 16 x 16 outputs x (pairs x 2 products, or 1 product) x 2 */
    double g16 = 16 * 16 * 32 * 2 / t16, g1 = 16 * 16 * 1 * 2 / t1;
    printf("T4 TDPBF16PS: %.2f ns/instr with 16 pairs (%.0f GFLOP/s), %.2f ns/instr with 1 pair"
           " (%.0f GFLOP/s of exact one-product-per-instruction work)\n", t16, g16, t1, g1);
    if (js) {
        fprintf(js, "  ],\n  \"ns_per_tdpbf16ps_16pairs\": %.4f,\n  \"gflops_16pairs\": %.1f,\n"
                    "  \"ns_per_tdpbf16ps_1pair\": %.4f,\n  \"gflops_exact_1product\": %.1f\n}\n",
                t16, g16, t1, g1);
        fclose(js);
    }
    return 0;
}
