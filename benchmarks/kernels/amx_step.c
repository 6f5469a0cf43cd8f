/* amx_step.c - where the AMX bf16 micro-kernel's time goes: the rate of its 2 x 2 tile step
 * (two A tiles, two B tiles, four TDPBF16PS into four C tiles = 65536 flop) by where A and B
 * come from (working sets sized for L1, L2 or L3), by instruction order and by software
 * prefetch distance.  A measurement, not a test.
 *
 * Build and run from the repository root on a CPU with AMX-BF16 (Linux):
 *     gcc -O2 -std=gnu11 benchmarks/kernels/amx_step.c -o amx_step && taskset -c 2 ./amx_step
 * Prints one line per case: ns per step, GFLOP/s, and the share of TDPBF16PS's own rate (one
 * instruction per 16 cycles measured as the "L1, one step" case).
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f")))

/* Step s reads A at A_(s) with row stride lda: packed (sa = 0: 2 KiB per step, wrapping after
 * na steps) or in place (sa = row stride in bytes: 32-row panels of na rows' matrix, 64 bytes
 * of each row per step, the panel's width sa / 64 steps). */
static const char *a_at(const char *a, int64_t na, int64_t sa, int64_t s, size_t *lda) {
    if (!sa) {
        *lda = 64;
        return a + (s % na) * 2048;
    }
    int64_t w = sa / 64, panel = (s / w) % (na / 32);
    *lda = (size_t)sa;
    return a + panel * 32 * sa + (s % w) * 64;
}

/* order 0: four loads then four products (the shipped kernel); 1: each load just before its
 * first product.  B wraps around nb packed steps of 2 KiB; pf: steps to prefetch. */
TGT static double run(const char *a, int64_t na, int64_t sa, const char *b, int64_t nb,
                      int64_t steps, int order, int pf) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    double t = now();
    for (int64_t s = 0; s < steps; s++) {
        size_t lda, ldq;
        const char *pa = a_at(a, na, sa, s, &lda), *pb = b + (s % nb) * 2048;
        if (pf) {
            const char *qa = a_at(a, na, sa, s + pf, &ldq), *qb = b + ((s + pf) % nb) * 2048;
            for (int l = 0; l < 32; l++) {
                _mm_prefetch(qa + ldq * l, _MM_HINT_T0);
                _mm_prefetch(qb + 64 * l, _MM_HINT_T0);
            }
        }
        if (order == 0) {
            _tile_loadd(4, pa, lda);
            _tile_loadd(5, pa + 16 * lda, lda);
            _tile_loadd(6, pb, 64);
            _tile_loadd(7, pb + 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        } else {
            _tile_loadd(4, pa, lda);
            _tile_loadd(6, pb, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(7, pb + 1024, 64);
            _tile_dpbf16ps(1, 4, 7);
            _tile_loadd(5, pa + 16 * lda, lda);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    static float sink[4][256];
    _tile_stored(0, sink[0], 64);
    _tile_stored(1, sink[1], 64);
    _tile_stored(2, sink[2], 64);
    _tile_stored(3, sink[3], 64);
    return now() - t;
}

TGT int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) {
        printf("AMX not permitted or not present\n");
        return 2;
    }
    _tile_loadconfig(&TILES_16x64);
    const int64_t big = 8192; /* steps of 2 KiB: 16 MiB per operand */
    char *a = aligned_alloc(4096, big * 2048), *b = aligned_alloc(4096, big * 2048);
    for (int64_t i = 0; i < big * 1024; i++) { /* small bf16 values, no denormals */
        ((uint16_t *)a)[i] = (uint16_t)(0x3c00 + (i * 7) % 128);
        ((uint16_t *)b)[i] = (uint16_t)(0x3c00 + (i * 13) % 128);
    }
    struct {
        const char *what;
        int64_t na, sa, nb;
    } cases[] = {
        {"L1: A 1 step, B 1 step (4 KiB)", 1, 0, 1},
        {"L1: A 4, B 4 steps (16 KiB)", 4, 0, 4},
        {"L1/L2: A 16, B 16 steps (64 KiB)", 16, 0, 16},
        {"L2: A 64, B 64 steps (256 KiB)", 64, 0, 64},
        {"L2: A 256, B 256 steps (1 MiB)", 256, 0, 256},
        {"B in L1 (8 steps), A from L2 (256)", 256, 0, 8},
        {"B in L1 (12 steps), A from L2 (256)", 256, 0, 12},
        {"L3: A 8192, B 8192 steps (32 MiB)", 8192, 0, 8192},
        {"A in place 1024 rows x 1152 B, B 18", 1024, 1152, 18},
        {"A in place 256 rows x 2048 B, B 32", 256, 2048, 32},
        {"A in place 256 rows x 2112 B, B 32", 256, 2112, 32},
        {"A in place 1024 rows x 2048 B, B 32", 1024, 2048, 32},
    };
    const int64_t steps = 400000;
    double base = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int order = 0; order < 2; order++)
            for (int pf = 0; pf <= 4; pf += 2) {
                double best = 1e9;
                for (int r = 0; r < 5; r++) {
                    double t = run(a, cases[c].na, cases[c].sa, b, cases[c].nb, steps, order, pf);
                    if (t < best) best = t;
                }
                double ns = best / steps * 1e9;
                if (!base) base = ns;
                printf("%-38s order %d pf %d: %6.1f ns/step %7.1f GFLOP/s %5.2f of L1 rate\n",
                       cases[c].what, order, pf, ns, 65536.0 / ns, base / ns);
                fflush(stdout);
            }
    _tile_release();
    return 0;
}
