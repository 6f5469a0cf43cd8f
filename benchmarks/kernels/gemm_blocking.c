/* gemm_blocking.c - single-thread GEMM (fp32 or bf16) of one cext backend against OpenBLAS fp32
 * in the same process, for several cache blockings (kc, mc, nc) and in-place A limits (dn: A is
 * read unpacked when N <= dn, where the backend can); calls interleaved, best time kept.
 *
 * Build from the repository root (links the kernel sources directly: the blocking hook
 * d2ar__gemm_tune is internal), pointing OBLAS at an OpenBLAS such as numpy's:
 *     gcc -O2 -std=gnu11 -ffp-contract=off -fno-math-errno -Icext/include \
 *         benchmarks/kernels/gemm_blocking.c cext/src/dispatch.c $(ls cext/kernels/STAR/STAR.c) \
 *         -lm -lpthread -ldl -o gemm_blocking          (STAR: a shell glob star)
 *     OBLAS=$(python -c "import numpy,glob,os; print(glob.glob(os.path.join(
 *         os.path.dirname(numpy.__file__), '..', 'numpy.libs', '*openblas*'))[0])") \
 *         ./gemm_blocking BACKEND DTYPE REPEATS kc mc nc dn [kc mc nc dn ...]
 * BACKEND is the D2AR_BACKEND_* id (1 avx2, 2 avx512, 3 amx), DTYPE 0 fp32 or 1 bf16.  Prints
 * GFLOP/s and the ratio to OpenBLAS fp32 per shape and blocking (for bf16 a yardstick only:
 * the bf16 baseline, torch's oneDNN matmul, is in bench_gemm.py).  Results do not depend on the
 * blocking (bit-exact; AMX bf16 within its tolerance), only speed does.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../cext/src/internal.h"
#include "harness.h"

typedef void (*sgemm_t)(int, int, int, long, long, long, float, const float *, long,
                        const float *, long, float, float *, long);

int main(int argc, char **argv) {
    const char *lib = getenv("OBLAS");
    void *h = lib ? dlopen(lib, RTLD_NOW) : NULL;
    if (!h || argc < 8 || (argc - 4) % 4) {
        printf("usage: OBLAS=libopenblas.so %s BACKEND DTYPE REPEATS kc mc nc dn [...]\n",
               argv[0]);
        return 2;
    }
    const char *names[][2] = {{"scipy_cblas_sgemm64_", "scipy_openblas_set_num_threads64_"},
                              {"cblas_sgemm64_", "openblas_set_num_threads64_"},
                              {"cblas_sgemm", "openblas_set_num_threads"}};
    sgemm_t sg = NULL;
    void (*threads)(int) = NULL;
    for (int i = 0; i < 3 && !sg; i++) {
        sg = (sgemm_t)dlsym(h, names[i][0]);
        threads = (void (*)(int))dlsym(h, names[i][1]);
    }
    if (!sg) {
        printf("no cblas_sgemm in %s\n", lib);
        return 2;
    }
    if (threads) threads(1);
    int be = atoi(argv[1]), dtype = atoi(argv[2]), reps = atoi(argv[3]), nt = (argc - 4) / 4;
    if (d2ar_set_backend(be) != D2AR_OK) {
        printf("backend %d not available\n", be);
        return 2;
    }
    int shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {1024, 64, 576}};
    for (int s = 0; s < 4; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(4L * M * K), *B = malloc(4L * K * N), *C = malloc(4L * M * N);
        for (long i = 0; i < (long)M * K; i++) A[i] = (float)rand() / RAND_MAX - 0.5f;
        for (long i = 0; i < (long)K * N; i++) B[i] = (float)rand() / RAND_MAX - 0.5f;
        uint16_t *A16 = malloc(2L * M * K), *B16 = malloc(2L * K * N);
        d2ar_f32_to_bf16((int64_t)M * K, A, A16);
        d2ar_f32_to_bf16((int64_t)K * N, B, B16);
        double bo = 1e9, bd[64];
        for (int t = 0; t < nt && t < 64; t++) bd[t] = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            sg(101, 111, 111, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            t0 = now() - t0;
            if (t0 < bo) bo = t0;
            for (int t = 0; t < nt && t < 64; t++) {
                char **arg = argv + 4 + 4 * t;
                if (d2ar__gemm_tune(be, dtype, atol(arg[0]), atol(arg[1]), atol(arg[2]),
                                    atol(arg[3])) != D2AR_OK) {
                    printf("blocking %s/%s/%s/%s refused\n", arg[0], arg[1], arg[2], arg[3]);
                    return 2;
                }
                double t1 = now();
                if (dtype)
                    d2ar_gemm_bf16(M, N, K, A16, K, 1, B16, N, 1, NULL, 0, 0, C, N);
                else
                    d2ar_gemm_f32(M, N, K, A, K, 1, B, N, 1, NULL, 0, 0, C, N);
                t1 = now() - t1;
                if (t1 < bd[t]) bd[t] = t1;
            }
        }
        double f = 2.0 * M * N * K / 1e9;
        printf("%dx%dx%d openblas %.1f |", M, N, K, f / bo);
        for (int t = 0; t < nt && t < 64; t++)
            printf(" %s/%s/%s/%s: %.1f (%.2f)", argv[4 + 4 * t], argv[5 + 4 * t],
                   argv[6 + 4 * t], argv[7 + 4 * t], f / bd[t], bo / bd[t]);
        printf("\n");
        free(A), free(B), free(C), free(A16), free(B16);
    }
    return 0;
}
