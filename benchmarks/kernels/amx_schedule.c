/* amx_schedule.c - AMX bf16 GEMM loop schedules side by side, one thread, same process:
 *   call        the library's d2ar_gemm_bf16 as it is;
 *   ks K1 mc M1 B packed over the whole K once per N block, A packed per M block, then the
 *               micro-kernels over k sub-blocks of K1 (B sub-panel kept in L1 over the M block's
 *               A panels, C reloaded once per sub-block while it is still in L2);
 *   fly         as "call" but A is packed on the fly: the first B panel of each M block reads A
 *               in place and stores the loaded A tiles into the packed buffer for the others.
 * Best of REPEATS interleaved runs, GFLOP/s and time relative to "call"; results are checked
 * to be equal to "call" bit for bit.
 *
 * Build from the repository root (the AMX implementation table is internal):
 *     gcc -O2 -std=gnu11 -ffp-contract=off -fno-math-errno -Icext/include \
 *         benchmarks/kernels/amx_schedule.c cext/src/dispatch.c $(ls cext/kernels/STAR/STAR.c) \
 *         -lm -lpthread -o amx_schedule          (STAR: a shell glob star)
 *     ./amx_schedule [REPEATS]
 * Needs an x86-64 CPU with AMX-BF16 (exits 2 otherwise).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../cext/src/internal.h"
#include "harness.h"

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f")))

TGT static void config(void) { _tile_loadconfig(&TILES_16x64); }

/* One 32 x 32 C tile over kcp k: A rows 0-15 at a and 16-31 at a + 16 * lda bytes, advancing
 * astep bytes per 32-k step (packed: lda 64, astep 2048; in place: lda = row bytes, astep 64);
 * B packed.  ap not NULL: the A tiles are also stored there in the packed layout (A packed on the
 * fly); cn not NULL: PREFETCHW of the 32 x 32 C tile at cn (row stride ldc), 4 lines per step. */
__attribute__((target("amx-tile,amx-bf16,avx512f,prfchw"))) static void ukr_variant(
    int64_t kcp, const char *a, size_t lda, size_t astep, const char *b, char *ap, float *c,
    int64_t ldc, const float *cn) {
    const size_t ld = (size_t)ldc * 4;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    int64_t row = 0;
    for (int64_t q = 0; q < kcp; q += 32, a += astep, b += 2048) {
        _tile_loadd(4, a, lda);
        _tile_loadd(5, a + 16 * lda, lda);
        _tile_loadd(6, b, 64);
        _tile_loadd(7, b + 1024, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        if (ap) {
            _tile_stored(4, ap, 64);
            _tile_stored(5, ap + 1024, 64);
            ap += 2048;
        }
        for (int t = 0; t < 2 && cn && row < 32; t++, row++) {
            _m_prefetchw((void *)(cn + row * ldc));
            _m_prefetchw((void *)(cn + row * ldc + 16));
        }
    }
    _tile_stored(0, c, ld);
    _tile_stored(1, c + 16, ld);
    _tile_stored(2, c + 16 * ldc, ld);
    _tile_stored(3, c + 16 * ldc + 16, ld);
}

/* Copy a 32 x 32 fp32 tile from the L1 scratch s (row stride 32) to c (row stride ldc). */
__attribute__((target("avx512f"))) static void copy_tile(float *c, int64_t ldc, const float *s,
                                                         int nt) {
    for (int i = 0; i < 32; i++, c += ldc, s += 32) {
        __m512 x = _mm512_load_ps(s), y = _mm512_load_ps(s + 16);
        if (nt) {
            _mm512_stream_ps(c, x);
            _mm512_stream_ps(c + 16, y);
        } else {
            _mm512_storeu_ps(c, x);
            _mm512_storeu_ps(c + 16, y);
        }
    }
}

enum { NV = 14 };

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (d2ar_set_backend(D2AR_BACKEND_AMX) != D2AR_OK) {
        printf("AMX backend not available on this CPU\n");
        return 2;
    }
    const d2ar__gemm_impl *im = d2ar__gemm_amx(1);
    /* variant v: 0 call, then (fly, k sub-block, M block); k sub-block 0: all of K */
    /* fly 2: packed A, C tile written to an L1 scratch and copied by AVX-512 stores; 3: the
     * same with non-temporal stores */
    const int fly_of[NV] = {0, 1, 1, 1, 0, 0, 0, 0, 0, 2, 3, 4, 5, 6};
    const int64_t ks_of[NV] = {0, 0, 0, 0, 0, 0, 256, 256, 128, 0, 0, 0, 0, 0};
    const int64_t mc_of[NV] = {0, 64, 128, 256, 64, 128, 64, 128, 128, 128, 128, 128, 128, 128};
    _Alignas(64) float scratch[32 * 32];
    int shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {1024, 64, 576}};
    for (int s = 0; s < 4; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        uint16_t *A = malloc(2 * M * K), *B = malloc(2 * K * N);
        float *C = aligned_alloc(64, 4 * M * N), *R = malloc(4 * M * N), *F = malloc(4 * (M > N ? M : N) * K);
        for (int64_t i = 0; i < (M > N ? M : N) * K; i++) F[i] = (float)rand() / RAND_MAX - 0.5f;
        d2ar_f32_to_bf16(M * K, F, A);
        d2ar_f32_to_bf16(K * N, F, B);
        d2ar_gemm_bf16(M, N, K, A, K, 1, B, N, 1, NULL, 0, 0, R, N);
        d2ar__mat a = {A, K, 1, 1}, b = {B, N, 1, 1};
        const int64_t mr = im->mr, nr = im->nr, ncb = im->nc;
        char *ap = d2ar__alloc(M * K * 2 + 4096), *bp = d2ar__alloc(ncb * K * 2 + 4096);
        double best[NV];
        int same[NV];
        for (int v = 0; v < NV; v++) best[v] = 1e9, same[v] = 1;
        for (int r = 0; r < reps; r++) {
            for (int v = 0; v < NV; v++) {
                if (ks_of[v] && (K % ks_of[v] || ks_of[v] >= K)) continue;
                memset(C, 0xff, 4 * M * N); /* not timed: every variant writes a warm C */
                d2ar_gemm_bf16(M, N, K, A, K, 1, B, N, 1, NULL, 0, 0, C, N);
                double t = now();
                if (v == 0) {
                    d2ar_gemm_bf16(M, N, K, A, K, 1, B, N, 1, NULL, 0, 0, C, N);
                } else {
                    config();
                    const int64_t mcb = mc_of[v], ks = ks_of[v] ? ks_of[v] : K;
                    for (int64_t jc = 0; jc < N; jc += ncb) {
                        const int64_t nc = N - jc < ncb ? N - jc : ncb;
                        im->pack_b(&b, 0, K, K, jc, nc, nr, bp);
                        for (int64_t ic = 0; ic < M; ic += mcb) {
                            const int64_t mc = M - ic < mcb ? M - ic : mcb;
                            if (fly_of[v] != 1) im->pack_a(&a, ic, mc, 0, K, K, mr, ap);
                            for (int64_t k0 = 0; k0 < K; k0 += ks)
                                for (int64_t jr = 0; jr < nc; jr += nr)
                                    for (int64_t ir = 0; ir < mc; ir += mr) {
                                        float *ct = C + (ic + ir) * N + jc + jr;
                                        char *apan = ap + ir * K * 2 + k0 * 64;
                                        const char *bpan = bp + jr * K * 2 + k0 * 64;
                                        if (fly_of[v] == 1 && jr == 0)
                                            ukr_variant(K, (const char *)(A + (ic + ir) * K), 2 * K,
                                                        64, bpan, apan, ct, N, NULL);
                                        else if (fly_of[v] == 6)
                                            ukr_variant(ks, apan, 64, 2048, bpan, NULL, ct, N, NULL);
                                        else if (fly_of[v] == 5)
                                            ukr_variant(ks, apan, 64, 2048, bpan, NULL, ct, N,
                                                        ct + mr * N);
                                        else if (fly_of[v] == 4) {
                                            /* next tile: next A panel, or the next column */
                                            const float *cn =
                                                ir + mr < mc ? ct + mr * N
                                                             : C + ic * N + jc + jr + nr;
                                            if (jr + nr >= nc && ir + mr >= mc) cn = ct;
                                            ukr_variant(ks, apan, 64, 2048, bpan, NULL, ct, N, cn);
                                        } else if (fly_of[v] >= 2 && ks == K) {
                                            im->ukr(ks, apan, bpan, scratch, 32, 0);
                                            copy_tile(ct, N, scratch, fly_of[v] == 3);
                                        } else
                                            im->ukr(ks, apan, bpan, ct, N, k0 > 0);
                                    }
                        }
                    }
                    im->done();
                    _mm_sfence();
                }
                t = now() - t;
                if (t < best[v]) best[v] = t;
                if (memcmp(C, R, 4 * M * N)) same[v] = 0;
            }
        }
        double f = 2.0 * M * N * K / 1e9;
        printf("%ldx%ldx%ld:", (long)M, (long)N, (long)K);
        for (int v = 0; v < NV; v++) {
            if (best[v] >= 1e9) continue;
            if (v == 0)
                printf(" call");
            else
                printf(" | %s ks %ld mc %ld",
                       (const char *[]){"packed", "fly", "via L1", "via L1 NT", "prefetchw next", "prefetchw below",
                                        "no prefetchw"}[fly_of[v]],
                       (long)ks_of[v], (long)mc_of[v]);
            printf(" %.1f us (%.0f GFLOP/s, %.2f of call)%s", 1e6 * best[v], f / best[v],
                   best[v] / best[0], same[v] ? "" : " DIFFERS");
        }
        printf("\n");
        d2ar__free(ap), d2ar__free(bp);
        free(A), free(B), free(C), free(R), free(F);
    }
    return 0;
}
