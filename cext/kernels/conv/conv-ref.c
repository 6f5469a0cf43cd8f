/* conv-ref.c - 2-D convolution (NCHW, stride 1, zero padding) as im2col + GEMM.
 * The GEMM runs on the current backend; k runs over (cin, ky, kx), the weight's memory order. */
#include <string.h>

#include "../../src/internal.h"

static void im2col(const float *x, int64_t Cin, int64_t H, int64_t W, int64_t ks, int64_t pad,
                   int64_t Ho, int64_t Wo, float *col) {
    for (int64_t ci = 0; ci < Cin; ci++)
        for (int64_t ky = 0; ky < ks; ky++)
            for (int64_t kx = 0; kx < ks; kx++) {
                float *row = col + ((ci * ks + ky) * ks + kx) * Ho * Wo;
                for (int64_t oy = 0; oy < Ho; oy++) {
                    int64_t iy = oy + ky - pad;
                    float *out = row + oy * Wo;
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
    float *col = direct ? NULL : d2ar__alloc((size_t)(K * P) * sizeof(float));
    if (!direct && !col) return D2AR_ENOMEM;
    int rc = D2AR_OK;
    for (int64_t n = 0; n < N && rc == D2AR_OK; n++) {
        const float *xn = x ? x + n * Cin * H * W : NULL;
        if (!direct && K > 0) im2col(xn, Cin, H, W, ks, pad, Ho, Wo, col);
        d2ar__mat a = {w, K, 1, 0}, b = {direct ? xn : col, P, 1, 0};
        rc = d2ar__gemm(0, Cout, P, K, &a, &b, bias, bias ? D2AR_BIAS_ROW : D2AR_BIAS_NONE, act,
                        y + n * Cout * P, P);
    }
    d2ar__free(col);
    return rc;
}
