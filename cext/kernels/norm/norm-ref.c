/* norm-ref.c - LayerNorm and GroupNorm: double accumulation in a fixed sequential order, two
 * passes (mean, then squared deviations); one implementation for every backend. */
#include "../../src/internal.h"

/* Mean and 1/sqrt(var + eps) of n contiguous values. */
static void moments(const float *x, int64_t n, float eps, float *mean, float *rstd) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    float m = (float)(s / (double)n);
    double q = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)(x[i] - m);
        q += d * d;
    }
    float var = (float)(q / (double)n);
    *mean = m;
    *rstd = 1.0f / __builtin_sqrtf(var + eps);
}

static float affine(float x, float mean, float rstd, const float *gamma, const float *beta,
                    int64_t c) {
    float v = (x - mean) * rstd;
    if (gamma) v = v * gamma[c];
    if (beta) v = v + beta[c];
    return v;
}

int d2ar_layer_norm_f32(int64_t rows, int64_t cols, const float *x, const float *gamma,
                        const float *beta, float eps, float *y) {
    if (rows < 0 || cols < 1) return D2AR_ESHAPE;
    if (!(eps >= 0.0f)) return D2AR_EARG;
    if (rows > 0 && (!x || !y)) return D2AR_ENULL;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mean, rstd;
        moments(xr, cols, eps, &mean, &rstd);
        for (int64_t c = 0; c < cols; c++) yr[c] = affine(xr[c], mean, rstd, gamma, beta, c);
    }
    return D2AR_OK;
}

int d2ar_group_norm_f32(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                        const float *gamma, const float *beta, float eps, int act, float *y) {
    if (N < 0 || C < 1 || HW < 1 || G < 1) return D2AR_ESHAPE;
    if (C % G != 0 || !(eps >= 0.0f) || !d2ar__act_valid(act)) return D2AR_EARG;
    if (N > 0 && (!x || !y)) return D2AR_ENULL;
    const int64_t cg = C / G;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            const int64_t off = (n * C + g * cg) * HW;
            float mean, rstd;
            moments(x + off, cg * HW, eps, &mean, &rstd);
            for (int64_t c = 0; c < cg; c++) {
                const float *xc = x + off + c * HW;
                float *yc = y + off + c * HW;
                for (int64_t i = 0; i < HW; i++)
                    yc[i] = affine(xc[i], mean, rstd, gamma, beta, g * cg + c);
                d2ar__act_row(yc, HW, act);
            }
        }
    return D2AR_OK;
}
