/* amx_phases.c - where a single-thread AMX bf16 GEMM spends its time: the whole call next to
 * each of its parts run alone over the same shape (B packing, A packing, the micro-kernels on
 * packed operands writing the real C, the same writing a scratch tile that stays in L1, the
 * micro-kernels reading A in place), best of REPEATS interleaved runs, in GFLOP/s of the whole
 * product (so the parts' times add up: 1/rate is time per flop).
 *
 * Build from the repository root (the AMX implementation table is internal):
 *     gcc -O2 -std=gnu11 -ffp-contract=off -fno-math-errno -Icext/include \
 *         benchmarks/kernels/amx_phases.c cext/src/dispatch.c $(ls cext/kernels/STAR/STAR.c) \
 *         -lm -lpthread -o amx_phases          (STAR: a shell glob star)
 *     ./amx_phases [REPEATS]
 * Needs an x86-64 CPU with AMX-BF16 (exits 2 otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../cext/src/internal.h"
#include "harness.h"

enum { FULL, REPLICA, PACK_B, PACK_A, UKR_C, UKR_SCRATCH, UKR_A_OUTER, UKR_ROWS_C, ROWS_A_OUTER,
       ROWS_A_OUTER_L1, MEMSET_C, NPHASE };
static const char *NAMES[NPHASE] = {"whole call", "the driver's steps", "pack B", "pack A (per N block)",
                                    "ukr, packed A, C", "ukr, packed A, C in L1",
                                    "ukr, packed A, A panel outer",
                                    "ukr, A in place, C", "ukr, A in place, A outer, C",
                                    "ukr, A in place, A outer, C in L1", "memset C"};

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    if (d2ar_set_backend(D2AR_BACKEND_AMX) != D2AR_OK) {
        printf("AMX backend not available on this CPU\n");
        return 2;
    }
    const d2ar__gemm_impl *im = d2ar__gemm_amx(1);
    printf("AMX blocking kc %ld mc %ld nc %ld, A in place up to N = %ld\n", (long)im->kc,
           (long)im->mc, (long)im->nc, (long)im->direct_n);
    int shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {1024, 64, 576}};
    for (int s = 0; s < 4; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        if (K > im->kc || K % 32) continue; /* one k block, no padding: what the phases assume */
        uint16_t *A = malloc(2 * M * K), *B = malloc(2 * K * N);
        float *C = aligned_alloc(64, 4 * M * N), *F = malloc(4 * (M > N ? M : N) * K);
        for (int64_t i = 0; i < (M > N ? M : N) * K; i++) F[i] = (float)rand() / RAND_MAX - 0.5f;
        d2ar_f32_to_bf16(M * K, F, A);
        d2ar_f32_to_bf16(K * N, F, B);
        d2ar__mat a = {A, K, 1, 1}, b = {B, N, 1, 1};
        const int64_t mr = im->mr, nr = im->nr, mcb = im->mc, ncb = im->nc;
        const int64_t Mp = (M + mr - 1) / mr * mr, Np = (N + nr - 1) / nr * nr;
        char *ap = d2ar__alloc(Mp * K * 2), *bp = d2ar__alloc(Np * K * 2);
        _Alignas(64) float scratch[32 * 32];
        double best[NPHASE];
        for (int p = 0; p < NPHASE; p++) best[p] = 1e9;
        for (int r = 0; r < reps; r++) {
            for (int p = 0; p < NPHASE; p++) {
                double t = now();
                switch (p) {
                case FULL:
                    d2ar_gemm_bf16(M, N, K, A, K, 1, B, N, 1, NULL, 0, 0, C, N);
                    break;
                case REPLICA: /* the driver's sequence on this harness's buffers */
                    for (int64_t jc = 0; jc < N; jc += ncb) {
                        const int64_t nc = N - jc < ncb ? N - jc : ncb;
                        im->pack_b(&b, 0, K, K, jc, nc, nr, bp);
                        for (int64_t ic = 0; ic < M; ic += mcb) {
                            const int64_t mc = M - ic < mcb ? M - ic : mcb;
                            im->pack_a(&a, ic, mc, 0, K, K, mr, ap);
                            for (int64_t jr = 0; jr < nc; jr += nr)
                                for (int64_t ir = 0; ir < mc; ir += mr)
                                    im->ukr(K, ap + ir * K * 2, bp + jr * K * 2,
                                            C + (ic + ir) * N + jc + jr, N, 0);
                        }
                    }
                    im->done();
                    break;
                case ROWS_A_OUTER:
                case ROWS_A_OUTER_L1: /* A rows in place, kept in L1 over the B panels */
                    for (int64_t jc = 0; jc < N; jc += ncb)
                        for (int64_t ir = 0; ir < M; ir += mr)
                            for (int64_t jr = jc; jr < N && jr < jc + ncb; jr += nr) {
                                float *ct = p == ROWS_A_OUTER ? C + ir * N + jr : scratch;
                                im->ukr_rows(K, A + ir * K, K, mr, bp + jr * K * 2, ct,
                                             p == ROWS_A_OUTER ? N : 32, 0);
                            }
                    im->done();
                    break;
                case PACK_B:
                    for (int64_t jc = 0; jc < N; jc += ncb)
                        im->pack_b(&b, 0, K, K, jc, N - jc < ncb ? N - jc : ncb, nr,
                                   bp + jc * K * 2);
                    break;
                case PACK_A:
                    for (int64_t jc = 0; jc < N; jc += ncb)
                        for (int64_t ic = 0; ic < M; ic += mcb)
                            im->pack_a(&a, ic, M - ic < mcb ? M - ic : mcb, 0, K, K, mr,
                                       ap + ic * K * 2);
                    break;
                case UKR_C:
                case UKR_SCRATCH:
                case UKR_ROWS_C:
                    /* the driver's order: N block, M block, then B panel outer, A panel inner */
                    for (int64_t jc = 0; jc < N; jc += ncb)
                        for (int64_t ic = 0; ic < M; ic += mcb)
                            for (int64_t jr = jc; jr < N && jr < jc + ncb; jr += nr)
                                for (int64_t ir = ic; ir < M && ir < ic + mcb; ir += mr) {
                                    const char *bq = bp + jr * K * 2;
                                    if (p == UKR_ROWS_C)
                                        im->ukr_rows(K, A + ir * K, K, mr, bq, C + ir * N + jr,
                                                     N, 0);
                                    else if (p == UKR_C)
                                        im->ukr(K, ap + ir * K * 2, bq, C + ir * N + jr, N, 0);
                                    else
                                        im->ukr(K, ap + ir * K * 2, bq, scratch, 32, 0);
                                }
                    im->done();
                    break;
                case UKR_A_OUTER: /* A panel outer (kept in L1), B panels inner */
                    for (int64_t jc = 0; jc < N; jc += ncb)
                        for (int64_t ic = 0; ic < M; ic += mcb)
                            for (int64_t ir = ic; ir < M && ir < ic + mcb; ir += mr)
                                for (int64_t jr = jc; jr < N && jr < jc + ncb; jr += nr)
                                    im->ukr(K, ap + ir * K * 2, bp + jr * K * 2, C + ir * N + jr,
                                            N, 0);
                    im->done();
                    break;
                case MEMSET_C:
                    memset(C, 0, 4 * M * N);
                    break;
                }
                t = now() - t;
                if (t < best[p]) best[p] = t;
            }
        }
        double f = 2.0 * M * N * K / 1e9;
        printf("%ldx%ldx%ld:", (long)M, (long)N, (long)K);
        for (int p = 0; p < NPHASE; p++)
            printf(" | %s %.1f us (%.0f)", NAMES[p], 1e6 * best[p], f / best[p]);
        printf("\n");
        d2ar__free(ap), d2ar__free(bp);
        /* micro-kernels alone, C in L1, GFLOP/s: panels PAD bytes apart (L1 set conflicts
         * between the A and B tiles of a step?), B panel outer or A panel outer, and the same
         * two panels over and over (the micro-kernel's ceiling at this K) */
        const int64_t pads[] = {0, 64, 1024, 2048, 3072};
        printf("  C in L1, pad: B outer / A outer / same panels:");
        for (int q = 0; q < 5; q++) {
            const int64_t sa = mr * K * 2 + pads[q], sb = nr * K * 2 + pads[q];
            char *ap2 = d2ar__alloc((Mp / mr) * sa), *bp2 = d2ar__alloc((Np / nr) * sb);
            memset(ap2, 0, (Mp / mr) * sa);
            memset(bp2, 0, (Np / nr) * sb);
            double bt[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r < reps; r++)
                for (int v = 0; v < 3; v++) {
                    double t = now();
                    for (int64_t ic = 0; ic < M; ic += mcb)
                        for (int64_t x = 0; x < (v == 1 ? mcb : ncb); x += v == 1 ? mr : nr)
                            for (int64_t y = 0; y < (v == 1 ? ncb : mcb); y += v == 1 ? nr : mr) {
                                int64_t ir = ic + (v == 1 ? x : y), jr = v == 1 ? y : x;
                                if (ir >= M || jr >= N) continue;
                                if (v == 2) ir = jr = 0;
                                im->ukr(K, ap2 + ir / mr * sa, bp2 + jr / nr * sb, scratch, 32,
                                        0);
                            }
                    im->done();
                    t = now() - t;
                    if (t < bt[v]) bt[v] = t;
                }
            /* one N block only (nc columns): scale the flops to what ran */
            double fr = f * (N < ncb ? N : ncb) / N;
            printf(" | %ld: %.0f / %.0f / %.0f", (long)pads[q], fr / bt[0], fr / bt[1],
                   fr / bt[2]);
            d2ar__free(ap2), d2ar__free(bp2);
        }
        printf("\n");
        free(A), free(B), free(C), free(F);
    }
    return 0;
}
