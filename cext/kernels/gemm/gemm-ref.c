/* gemm-ref.c - portable scalar micro-kernel, always built: the definition of the results. */
#include <math.h>

#include "../../src/internal.h"

#define MR 4
#define NR 8

static void ukr_ref(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc,
                    int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kcp; k++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[k * MR + i], b[k * NR + j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

static const d2ar__gemm_impl REF = {D2AR_BACKEND_REF, MR, NR, 1, 256, 64, 1024, sizeof(float),
                                    d2ar__pack_a_f32, d2ar__pack_b_f32, ukr_ref};

const d2ar__gemm_impl *d2ar__gemm_ref(int dtype) {
    (void)dtype; /* bf16 operands are widened exactly while packing */
    return &REF;
}
