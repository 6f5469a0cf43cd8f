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

/* moments() of 4 rows at once: the same sequential double sums per row, interleaved so the
 * four add chains overlap (the bits are moments()'s). */
static void moments4(const float *x, int64_t ld, int64_t n, float eps, float mean[4],
                     float rstd[4]) {
    const float *x0 = x, *x1 = x + ld, *x2 = x + 2 * ld, *x3 = x + 3 * ld;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s0 += x0[i];
        s1 += x1[i];
        s2 += x2[i];
        s3 += x3[i];
    }
    float m0 = (float)(s0 / (double)n), m1 = (float)(s1 / (double)n);
    float m2 = (float)(s2 / (double)n), m3 = (float)(s3 / (double)n);
    double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d0 = (double)(x0[i] - m0), d1 = (double)(x1[i] - m1);
        double d2 = (double)(x2[i] - m2), d3 = (double)(x3[i] - m3);
        q0 += d0 * d0;
        q1 += d1 * d1;
        q2 += d2 * d2;
        q3 += d3 * d3;
    }
    mean[0] = m0, mean[1] = m1, mean[2] = m2, mean[3] = m3;
    rstd[0] = 1.0f / __builtin_sqrtf((float)(q0 / (double)n) + eps);
    rstd[1] = 1.0f / __builtin_sqrtf((float)(q1 / (double)n) + eps);
    rstd[2] = 1.0f / __builtin_sqrtf((float)(q2 / (double)n) + eps);
    rstd[3] = 1.0f / __builtin_sqrtf((float)(q3 / (double)n) + eps);
}

/* y = affine((x - mean) * rstd) of one row; the branches hoisted so the loops vectorise. */
D2AR_VECTORIZE static void affine_row(const float *x, int64_t n, float mean, float rstd, const float *gamma,
                       const float *beta, float *y) {
    if (gamma && beta)
        for (int64_t c = 0; c < n; c++) y[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
    else if (gamma)
        for (int64_t c = 0; c < n; c++) y[c] = (x[c] - mean) * rstd * gamma[c];
    else if (beta)
        for (int64_t c = 0; c < n; c++) y[c] = (x[c] - mean) * rstd + beta[c];
    else
        for (int64_t c = 0; c < n; c++) y[c] = (x[c] - mean) * rstd;
}

void d2ar__layer_norm_rows(int64_t rows, int64_t cols, const float *x, const float *gamma,
                           const float *beta, float eps, float *y) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        float mean[4], rstd[4];
        moments4(x + r * cols, cols, cols, eps, mean, rstd);
        for (int t = 0; t < 4; t++)
            affine_row(x + (r + t) * cols, cols, mean[t], rstd[t], gamma, beta, y + (r + t) * cols);
    }
    for (; r < rows; r++) {
        float mean, rstd;
        moments(x + r * cols, cols, eps, &mean, &rstd);
        affine_row(x + r * cols, cols, mean, rstd, gamma, beta, y + r * cols);
    }
}

int d2ar_layer_norm_f32(int64_t rows, int64_t cols, const float *x, const float *gamma,
                        const float *beta, float eps, float *y) {
    if (rows < 0 || cols < 1) return D2AR_ESHAPE;
    if (!(eps >= 0.0f)) return D2AR_EARG;
    if (rows > 0 && (!x || !y)) return D2AR_ENULL;
    d2ar__layer_norm_rows(rows, cols, x, gamma, beta, eps, y);
    return D2AR_OK;
}

D2AR_VECTORIZE int d2ar_group_norm_f32(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                        const float *gamma, const float *beta, float eps, int act, float *y) {
    if (N < 0 || C < 1 || HW < 1 || G < 1) return D2AR_ESHAPE;
    if (C % G != 0 || !(eps >= 0.0f) || !d2ar__act_valid(act)) return D2AR_EARG;
    if (N > 0 && (!x || !y)) return D2AR_ENULL;
    const int64_t cg = C / G, gs = cg * HW;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G;) {
            /* moments of 4 groups at once where possible (same per-group sums as one by one) */
            float mean[4], rstd[4];
            int64_t ng = G - g >= 4 ? 4 : 1;
            if (ng == 4)
                moments4(x + (n * C + g * cg) * HW, gs, gs, eps, mean, rstd);
            else
                moments(x + (n * C + g * cg) * HW, gs, eps, &mean[0], &rstd[0]);
            for (int64_t t = 0; t < ng; t++, g++) {
                const int64_t off = (n * C + g * cg) * HW;
                for (int64_t c = 0; c < cg; c++) {
                    const float *xc = x + off + c * HW;
                    float *yc = y + off + c * HW;
                    const int64_t ch = g * cg + c;
                    const float m = mean[t], r = rstd[t];
                    if (gamma && beta) {
                        const float ga = gamma[ch], be = beta[ch];
                        for (int64_t i = 0; i < HW; i++) yc[i] = (xc[i] - m) * r * ga + be;
                    } else {
                        for (int64_t i = 0; i < HW; i++)
                            yc[i] = affine(xc[i], m, r, gamma, beta, ch);
                    }
                    d2ar__act_row(yc, HW, act);
                }
            }
        }
    return D2AR_OK;
}
