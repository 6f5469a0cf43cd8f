/* test_kernels.c - standalone check of every available backend against the reference.
 *
 * Usage: test_kernels [--expect NAME]
 *   Runs GEMM fp32/bf16 (random shapes, ragged edges, K = 0, strided and transposed operands),
 *   convolution and attention on every backend this CPU supports and requires the bits to equal
 *   the reference backend's (AMX bf16, documented as not bit-exact: within tolerance, and its
 *   differences are measured); checks the reference against a double-precision product.
 *   --expect NAME fails unless NAME is the backend chosen at load time and its micro-kernels
 *   actually ran (their call counter moved).  Prints a digest of the reference outputs (equal on
 *   every machine when results are bit-identical across architectures) and "N passed, N failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d2ar.h"

static int g_pass, g_fail;
static uint64_t g_digest = 1469598103934665603ull; /* FNV-1a over every reference output */

static void digest(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) g_digest = (g_digest ^ b[i]) * 1099511628211ull;
}
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static int64_t irand(int64_t lo, int64_t hi) {
    return lo + (int64_t)((frand() + 1.0f) * 0.5f * (float)(hi - lo + 1)) % (hi - lo + 1);
}

static void check(int ok, const char *what, const char *backend) {
    if (ok) {
        g_pass++;
    } else {
        g_fail++;
        printf("FAIL %s [%s]\n", what, backend);
    }
}

static float *fill(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* One GEMM case on every backend; a/b strided with (rs, cs); compared bit for bit to ref. */
static void gemm_case(int64_t M, int64_t N, int64_t K, int transpose_b, int pad, int bf16,
                      int act) {
    int64_t rsa = K + pad, csa = 1;
    int64_t rsb = transpose_b ? 1 : N + pad, csb = transpose_b ? K + pad : 1;
    int64_t na = M * rsa + 1, nb = transpose_b ? N * csb + 1 : K * rsb + 1;
    float *a = fill(na), *b = fill(nb), *bias = fill(N);
    uint16_t *a16 = malloc((size_t)na * 2), *b16 = malloc((size_t)nb * 2);
    d2ar_f32_to_bf16(na, a, a16);
    d2ar_f32_to_bf16(nb, b, b16);
    int64_t ldc = N + 3;
    size_t cn = (size_t)(M * ldc + 1);
    float *ref = calloc(cn, 4), *out = calloc(cn, 4);
    char what[160];
    snprintf(what, sizeof what, "gemm %s M=%lld N=%lld K=%lld tb=%d pad=%d act=%d",
             bf16 ? "bf16" : "f32", (long long)M, (long long)N, (long long)K, transpose_b, pad,
             act);
    for (int be = 0; be < D2AR_BACKEND_COUNT; be++) {
        if (!d2ar_backend_available(be)) continue;
        d2ar_set_backend(be);
        float *dst = be == D2AR_BACKEND_REF ? ref : out;
        for (size_t i = 0; i < cn; i++) dst[i] = -7.0f; /* sentinel outside the written area */
        int rc = bf16 ? d2ar_gemm_bf16(M, N, K, a16, rsa, csa, b16, rsb, csb, bias, D2AR_BIAS_COL,
                                       act, dst, ldc)
                      : d2ar_gemm_f32(M, N, K, a, rsa, csa, b, rsb, csb, bias, D2AR_BIAS_COL, act,
                                      dst, ldc);
        check(rc == D2AR_OK, what, d2ar_backend_name(be));
        if (be == D2AR_BACKEND_REF) {
            /* reference vs float64 (inputs as rounded for the dtype), bias, no activation */
            double worst = 0.0;
            if (act == D2AR_ACT_NONE) {
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double s = 0.0, mag = 0.0;
                        for (int64_t k = 0; k < K; k++) {
                            double x, y;
                            if (bf16) {
                                uint32_t u = (uint32_t)a16[i * rsa + k * csa] << 16;
                                uint32_t v = (uint32_t)b16[k * rsb + j * csb] << 16;
                                float fx, fy;
                                memcpy(&fx, &u, 4);
                                memcpy(&fy, &v, 4);
                                x = fx, y = fy;
                            } else {
                                x = a[i * rsa + k * csa], y = b[k * rsb + j * csb];
                            }
                            s += x * y;
                            mag += fabs(x * y);
                        }
                        double err = fabs((double)ref[i * ldc + j] - (s + bias[j]));
                        double tol = 1e-6 * (mag + fabs(bias[j])) * (double)(K + 2);
                        if (err > tol && err > worst) worst = err;
                    }
            }
            check(worst == 0.0, "reference vs float64", "ref");
            digest(ref, cn * 4);
            continue;
        }
        if (d2ar_backend_bit_exact(be, bf16)) {
            check(memcmp(ref, out, cn * 4) == 0, what, d2ar_backend_name(be));
            continue;
        }
        /* documented tolerance-only path (AMX bf16): compare within fp32 accumulation error */
        int ok = 1;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double r = ref[i * ldc + j], o = out[i * ldc + j];
                if (fabs(o - r) > 4e-7 * (double)(K + 2) * (1.0 + fabs(r))) ok = 0;
            }
        check(ok, what, d2ar_backend_name(be));
    }
    free(a), free(b), free(bias), free(a16), free(b16), free(ref), free(out);
}

static void conv_attention_case(void) {
    const int64_t N = 2, Cin = 5, H = 9, W = 7, Cout = 11, ks = 3, pad = 1;
    float *x = fill(N * Cin * H * W), *w = fill(Cout * Cin * ks * ks), *bias = fill(Cout);
    size_t yn = (size_t)(N * Cout * H * W);
    const int64_t BH = 3, Lq = 17, Lk = 13, D = 8, Dv = 6;
    float *q = fill(BH * Lq * D), *k = fill(BH * Lk * D), *v = fill(BH * Lk * Dv);
    size_t on = (size_t)(BH * Lq * Dv);
    float *yref = malloc(yn * 4), *y = malloc(yn * 4), *oref = malloc(on * 4), *o = malloc(on * 4);
    for (int be = 0; be < D2AR_BACKEND_COUNT; be++) {
        if (!d2ar_backend_available(be)) continue;
        d2ar_set_backend(be);
        int ref = be == D2AR_BACKEND_REF;
        check(d2ar_conv2d_f32(N, Cin, H, W, x, Cout, ks, pad, w, bias, D2AR_ACT_SILU,
                              ref ? yref : y) == D2AR_OK, "conv2d rc", d2ar_backend_name(be));
        check(d2ar_attention_f32(BH, Lq, Lk, D, Dv, q, k, v, 0.35f, ref ? oref : o) == D2AR_OK,
              "attention rc", d2ar_backend_name(be));
        if (ref) {
            digest(yref, yn * 4);
            digest(oref, on * 4);
            continue;
        }
        check(memcmp(yref, y, yn * 4) == 0, "conv2d bits", d2ar_backend_name(be));
        check(memcmp(oref, o, on * 4) == 0, "attention bits", d2ar_backend_name(be));
    }
    free(x), free(w), free(bias), free(q), free(k), free(v);
    free(yref), free(y), free(oref), free(o);
}

/* Convolutions of the shapes the direct AVX2 path takes (rows of >= 8 output pixels, ragged
 * 16-pixel segments, Cout split in tiles of 4-6 channels or fewer, several k blocks of input
 * channels, no bias, 1x1 padded) and the im2col path, every backend bit-identical to the
 * reference. */
static void conv_shapes_case(void) {
    const int64_t shapes[][7] = {/* N, Cin, H, W, Cout, ks, pad */
                                 {2, 5, 9, 20, 11, 3, 1},  {1, 3, 16, 16, 8, 3, 1},
                                 {1, 7, 6, 37, 13, 3, 1},  {2, 2, 5, 12, 1, 3, 0},
                                 {1, 4, 8, 9, 7, 1, 1},    {1, 16, 8, 32, 32, 3, 1},
                                 {1, 2, 11, 10, 6, 5, 2},  {1, 40, 6, 19, 10, 3, 1},
                                 {2, 70, 5, 8, 7, 3, 1},   {1, 33, 4, 16, 32, 3, 1},
                                 {1, 3, 9, 17, 3, 3, 1}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const int64_t N = shapes[c][0], Cin = shapes[c][1], H = shapes[c][2], W = shapes[c][3];
        const int64_t Cout = shapes[c][4], ks = shapes[c][5], pad = shapes[c][6];
        const int64_t Ho = H + 2 * pad - ks + 1, Wo = W + 2 * pad - ks + 1;
        float *x = fill(N * Cin * H * W), *w = fill(Cout * Cin * ks * ks), *bias = fill(Cout);
        size_t yn = (size_t)(N * Cout * Ho * Wo);
        float *yref = malloc(yn * 4), *y = malloc(yn * 4);
        int act = (int)(c % 4);
        char what[96];
        snprintf(what, sizeof what, "conv2d bits shape %d", (int)c);
        for (int be = 0; be < D2AR_BACKEND_COUNT; be++) {
            if (!d2ar_backend_available(be)) continue;
            d2ar_set_backend(be);
            int ref = be == D2AR_BACKEND_REF;
            const float *b = c % 2 ? NULL : bias;
            check(d2ar_conv2d_f32(N, Cin, H, W, x, Cout, ks, pad, w, b, act, ref ? yref : y) ==
                      D2AR_OK, "conv2d rc", d2ar_backend_name(be));
            if (ref) {
                digest(yref, yn * 4);
                continue;
            }
            check(memcmp(yref, y, yn * 4) == 0, what, d2ar_backend_name(be));
        }
        free(x), free(w), free(bias), free(yref), free(y);
    }
}

/* Softmax rows with special values (NaN first or later, signed zeros as the maximum, infinities)
 * and of every length around the 8-lane paths: every backend bit-identical to the reference. */
static void softmax_special_case(void) {
    const float nan = __builtin_nanf(""), inf = __builtin_inff();
    for (int64_t cols = 1; cols <= 19; cols += 3) {
        const int64_t rows = 9;
        float *x = fill(rows * cols), *yref = malloc((size_t)(rows * cols) * 4);
        float *y = malloc((size_t)(rows * cols) * 4);
        for (int64_t c = 0; c < cols; c++) {
            x[1 * cols + c] = c % 2 ? -0.0f : 0.0f; /* zero maximum of both signs */
            x[2 * cols + c] = -(float)c;
        }
        x[3 * cols] = nan;
        x[4 * cols + cols / 2] = nan;
        x[5 * cols + cols - 1] = inf;
        x[6 * cols] = -inf;
        x[7 * cols + cols / 3] = -nan;
        char what[64];
        snprintf(what, sizeof what, "softmax special values cols=%d", (int)cols);
        for (int be = 0; be < D2AR_BACKEND_COUNT; be++) {
            if (!d2ar_backend_available(be)) continue;
            d2ar_set_backend(be);
            int ref = be == D2AR_BACKEND_REF;
            check(d2ar_softmax_f32(rows, cols, x, cols, ref ? yref : y) == D2AR_OK, "softmax rc",
                  d2ar_backend_name(be));
            if (ref) {
                /* the digest compares architectures, whose default NaNs differ (x86 sets the
                 * sign bit, Arm does not): NaNs enter it as one canonical value */
                for (int64_t i = 0; i < rows * cols; i++) {
                    float v = yref[i] == yref[i] ? yref[i] : 1e30f;
                    digest(&v, 4);
                }
                continue;
            }
            check(memcmp(yref, y, (size_t)(rows * cols) * 4) == 0, what, d2ar_backend_name(be));
        }
        free(x), free(yref), free(y);
    }
}

/* Measurement, not a pass/fail check: how many AMX bf16 outputs differ from the reference fma
 * chain, and by how much at most (relative to the exact float64 sum of |a b|). */
static void amx_probe(void) {
    if (!d2ar_backend_available(D2AR_BACKEND_AMX)) return;
    const int64_t M = 64, N = 64, K = 1024;
    float *a = fill(M * K), *b = fill(K * N), *ref = malloc(M * N * 4), *out = malloc(M * N * 4);
    uint16_t *a16 = malloc(M * K * 2), *b16 = malloc(K * N * 2);
    d2ar_f32_to_bf16(M * K, a, a16);
    d2ar_f32_to_bf16(K * N, b, b16);
    d2ar_set_backend(D2AR_BACKEND_REF);
    d2ar_gemm_bf16(M, N, K, a16, K, 1, b16, N, 1, NULL, 0, 0, ref, N);
    d2ar_set_backend(D2AR_BACKEND_AMX);
    d2ar_gemm_bf16(M, N, K, a16, K, 1, b16, N, 1, NULL, 0, 0, out, N);
    int64_t diff = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                uint32_t u = (uint32_t)a16[i * K + k] << 16, v = (uint32_t)b16[k * N + j] << 16;
                float x, y;
                memcpy(&x, &u, 4);
                memcpy(&y, &v, 4);
                mag += fabs((double)x * y);
            }
            if (memcmp(&ref[i * N + j], &out[i * N + j], 4) != 0) diff++;
            double r = fabs((double)out[i * N + j] - ref[i * N + j]) / mag;
            if (r > worst) worst = r;
        }
    printf("amx bf16 %lldx%lldx%lld: %lld of %lld outputs differ from the reference, "
           "max |diff| / sum|ab| = %.3g\n", (long long)M, (long long)N, (long long)K,
           (long long)diff, (long long)(M * N), worst);
    free(a), free(b), free(ref), free(out), free(a16), free(b16);
}

static void error_codes(void) {
    float a[4] = {0}, c[4];
    const char *api = "api";
    check(d2ar_gemm_f32(-1, 1, 1, a, 1, 1, a, 1, 1, NULL, 0, 0, c, 1) == D2AR_ESHAPE, "neg M", api);
    check(d2ar_gemm_f32(1, 2, 1, a, 1, 1, a, 1, 1, NULL, 0, 0, c, 1) == D2AR_ESTRIDE, "ldc", api);
    check(d2ar_gemm_f32(1, 1, 1, NULL, 1, 1, a, 1, 1, NULL, 0, 0, c, 1) == D2AR_ENULL, "A", api);
    check(d2ar_gemm_f32(1, 1, 1, a, 1, 1, a, 1, 1, NULL, 0, 9, c, 1) == D2AR_EARG, "act", api);
    check(d2ar_set_backend(99) == D2AR_EBACKEND, "bad backend", "api");
    check(d2ar_group_norm_f32(1, 6, 4, 4, a, NULL, NULL, 1e-5f, 0, c) == D2AR_EARG, "C%G", "api");
    /* a block too wide for its stack rows is refused before any pointer is read */
    check(d2ar_flow_block_f32(1, 1, 9000, 1, 4, 1, a, a, a, a, NULL, 1.0f, 1e-6f, c) == D2AR_ESHAPE,
          "flow D", "api");
}

int main(int argc, char **argv) {
    const char *expect = (argc == 3 && strcmp(argv[1], "--expect") == 0) ? argv[2] : NULL;
    int chosen = d2ar_get_backend();
    printf("backend at load: %s (cpu features 0x%llx)\n", d2ar_backend_name(chosen),
           (unsigned long long)d2ar_cpu_features());
    for (int be = 0; be < D2AR_BACKEND_COUNT; be++) {
        int64_t mr = 0, nr = 0;
        d2ar_backend_tile(be, 0, &mr, &nr);
        printf("  %-7s compiled=%d available=%d tile=%lldx%lld\n", d2ar_backend_name(be),
               d2ar_backend_compiled(be), d2ar_backend_available(be), (long long)mr, (long long)nr);
    }
    int acts[] = {D2AR_ACT_NONE, D2AR_ACT_SILU, D2AR_ACT_GELU_TANH, D2AR_ACT_RELU};
    /* the last three: K a multiple of 32 (AMX reads A in place), partial row panels, two k
     * blocks (1088 > AMX kc) */
    int64_t fixed[][3] = {{1, 1, 1},    {7, 5, 0},     {33, 65, 300}, {64, 64, 64},
                          {13, 37, 513}, {45, 40, 96}, {70, 33, 1088}, {32, 64, 64}};
    for (size_t s = 0; s < sizeof fixed / sizeof fixed[0]; s++)
        for (int bf = 0; bf < 2; bf++)
            gemm_case(fixed[s][0], fixed[s][1], fixed[s][2], (int)s & 1, (int)s % 3, bf,
                      acts[s % 4]);
    for (int t = 0; t < 24; t++) { /* sequenced: argument evaluation order is unspecified */
        int64_t M = irand(1, 70), N = irand(1, 90), K = irand(0, 140), pad = irand(0, 3);
        gemm_case(M, N, K, t & 1, (int)pad, (t >> 1) & 1, acts[t % 4]);
    }
    conv_attention_case();
    conv_shapes_case();
    softmax_special_case();
    error_codes();
    amx_probe();
    if (expect) {
        uint64_t calls = 0;
        for (int be = 0; be < D2AR_BACKEND_COUNT; be++)
            if (strcmp(d2ar_backend_name(be), expect) == 0) calls = d2ar_kernel_calls(be);
        printf("expected backend %s: chosen %s, its micro-kernel calls %llu\n", expect,
               d2ar_backend_name(chosen), (unsigned long long)calls);
        check(strcmp(d2ar_backend_name(chosen), expect) == 0, "backend chosen at load", expect);
        check(calls > 0, "micro-kernel executed", expect);
    }
    printf("reference digest %016llx\n", (unsigned long long)g_digest);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
