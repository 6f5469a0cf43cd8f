/* conv-ref.c - 2-D convolution (NCHW, stride 1, zero padding) as im2col + GEMM (on AVX2
 * machines conv-avx2.c's direct convolution gives the same bits faster).
 * The GEMM runs on the current backend; k runs over (cin, ky, kx), the weight's memory order. */
#include <string.h>

#include "../../src/internal.h"

/* Size (floats) of the im2col band: 128 Ki floats = 512 KiB, about an L2 cache. */
#define COL_BAND_FLOATS (128 * 1024)

/* Output rows [oy0, oy1) of the im2col matrix: (Cin*ks*ks) x ((oy1 - oy0) * Wo), row-major. */
static void im2col(const float *x, int64_t Cin, int64_t H, int64_t W, int64_t ks, int64_t pad,
                   int64_t oy0, int64_t oy1, int64_t Wo, float *col) {
    const int64_t cols = (oy1 - oy0) * Wo;
    for (int64_t ci = 0; ci < Cin; ci++)
        for (int64_t ky = 0; ky < ks; ky++)
            for (int64_t kx = 0; kx < ks; kx++) {
                float *row = col + ((ci * ks + ky) * ks + kx) * cols;
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    int64_t iy = oy + ky - pad;
                    float *out = row + (oy - oy0) * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(out, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *in = x + (ci * H + iy) * W;
                    for (int64_t ox = 0; ox < Wo; ox++) {
                        int64_t ix = ox + kx - pad;
                        out[ox] = (ix >= 0 && ix < W) ? in[ix] : 0.0f;
                    }
                }
            }
}

int d2ar_conv2d_f32(int64_t N, int64_t Cin, int64_t H, int64_t W, const float *x, int64_t Cout,
                    int64_t ks, int64_t pad, const float *w, const float *bias, int act,
                    float *y) {
    if (N < 0 || Cin < 0 || H < 0 || W < 0 || Cout < 0 || ks < 1 || pad < 0) return D2AR_ESHAPE;
    if (!d2ar__act_valid(act)) return D2AR_EARG;
    const int64_t Ho = H + 2 * pad - ks + 1, Wo = W + 2 * pad - ks + 1;
    if (Ho < 1 || Wo < 1) return D2AR_ESHAPE;
    if (N == 0 || Cout == 0) return D2AR_OK;
    if (!y || (Cin > 0 && (!x || !w))) return D2AR_ENULL;
    const int64_t K = Cin * ks * ks, P = Ho * Wo;
    const int direct = ks == 1 && pad == 0;
    if (!direct && d2ar__use_avx2()) { /* same bits without the im2col matrix */
        int rc = d2ar__conv2d_avx2(N, Cin, H, W, x, Cout, ks, pad, w, bias, act, y);
        if (rc != 1) return rc;
    }
    /* im2col a band of output rows at a time, so the band (K x rows*Wo) stays in cache while the
     * GEMM packs it; every output is still one sequential k chain, so the bits do not change. */
    int64_t band = COL_BAND_FLOATS / (K > 0 ? K * Wo : 1);
    band = band < 1 ? 1 : band > Ho ? Ho : band;
    float *col = direct ? NULL : d2ar__alloc((size_t)(K * band * Wo) * sizeof(float));
    if (!direct && !col) return D2AR_ENOMEM;
    int rc = D2AR_OK;
    for (int64_t n = 0; n < N && rc == D2AR_OK; n++) {
        const float *xn = x ? x + n * Cin * H * W : NULL;
        float *yn = y + n * Cout * P;
        if (direct) {
            d2ar__mat a = {w, K, 1, 0}, b = {xn, P, 1, 0};
            rc = d2ar__gemm(0, Cout, P, K, &a, &b, bias, bias ? D2AR_BIAS_ROW : D2AR_BIAS_NONE,
                            act, yn, P);
            continue;
        }
        for (int64_t oy0 = 0; oy0 < Ho && rc == D2AR_OK; oy0 += band) {
            const int64_t oy1 = oy0 + band < Ho ? oy0 + band : Ho, cols = (oy1 - oy0) * Wo;
            if (K > 0) im2col(xn, Cin, H, W, ks, pad, oy0, oy1, Wo, col);
            d2ar__mat a = {w, K, 1, 0}, b = {col, cols, 1, 0};
            rc = d2ar__gemm(0, Cout, cols, K, &a, &b, bias,
                            bias ? D2AR_BIAS_ROW : D2AR_BIAS_NONE, act, yn + oy0 * Wo, P);
        }
    }
    d2ar__free(col);
    return rc;
}
