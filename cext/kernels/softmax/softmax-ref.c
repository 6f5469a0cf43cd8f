/* softmax-ref.c - row softmax (max-subtracted, our exp, sequential sum) and scaled
 * dot-product attention built from two GEMMs on the current backend and that softmax. */
#include "../../src/internal.h"

/* Row r of softmax_rows: yr[c] = exp(xr[c] * scale - m) / s, m the running max (v > m ? v : m
 * from c = 0), s the sequential sum from c = 0.  Four rows run interleaved (independent chains,
 * each in its own order: the same bits as one at a time). */
static void exp_row(const float *xr, int64_t cols, float scale, float m, float *yr) {
    int64_t c0 = d2ar__use_avx2() ? d2ar__exp_row_avx2(xr, cols, scale, m, yr) : 0;
    for (int64_t c = c0; c < cols; c++) yr[c] = d2ar__expf(xr[c] * scale - m);
}

D2AR_VECTORIZE static void div_row(float *yr, int64_t cols, float s, int avx2) {
    int64_t c = avx2 ? d2ar__div_row_avx2(yr, cols, s) : 0;
    for (; c < cols; c++) yr[c] = yr[c] / s;
}

/* The sequential maximum of xr[c] * scale (v > m ? v : m from c = 0). */
static float max_row(const float *xr, int64_t cols, float scale, int avx2) {
    float m;
    if (avx2 && d2ar__max_row_avx2(xr, cols, scale, &m)) return m;
    m = xr[0] * scale;
    for (int64_t c = 1; c < cols; c++) {
        float v = xr[c] * scale;
        m = v > m ? v : m;
    }
    return m;
}

static void softmax_rows(int64_t rows, int64_t cols, const float *x, int64_t ld, float scale,
                         float *y) {
    const int avx2 = d2ar__use_avx2();
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + r * ld, *x1 = x0 + ld, *x2 = x1 + ld, *x3 = x2 + ld;
        float *y0 = y + r * ld, *y1 = y0 + ld, *y2 = y1 + ld, *y3 = y2 + ld;
        float m0 = max_row(x0, cols, scale, avx2), m1 = max_row(x1, cols, scale, avx2);
        float m2 = max_row(x2, cols, scale, avx2), m3 = max_row(x3, cols, scale, avx2);
        exp_row(x0, cols, scale, m0, y0);
        exp_row(x1, cols, scale, m1, y1);
        exp_row(x2, cols, scale, m2, y2);
        exp_row(x3, cols, scale, m3, y3);
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            s0 = s0 + y0[c];
            s1 = s1 + y1[c];
            s2 = s2 + y2[c];
            s3 = s3 + y3[c];
        }
        div_row(y0, cols, s0, avx2);
        div_row(y1, cols, s1, avx2);
        div_row(y2, cols, s2, avx2);
        div_row(y3, cols, s3, avx2);
    }
    for (; r < rows; r++) {
        const float *xr = x + r * ld;
        float *yr = y + r * ld;
        float m = max_row(xr, cols, scale, avx2);
        exp_row(xr, cols, scale, m, yr);
        float s = 0.0f;
        for (int64_t c = 0; c < cols; c++) s = s + yr[c]; /* one sequential sum, as the reference */
        div_row(yr, cols, s, avx2);
    }
}

int d2ar_softmax_f32(int64_t rows, int64_t cols, const float *x, int64_t ld, float *y) {
    if (rows < 0 || cols < 1) return D2AR_ESHAPE;
    if (ld < cols) return D2AR_ESTRIDE;
    if (rows > 0 && (!x || !y)) return D2AR_ENULL;
    softmax_rows(rows, cols, x, ld, 1.0f, y);
    return D2AR_OK;
}

/* One head: o (Lq, Dv; row stride ldo) = softmax(scale q k^T) v with q (Lq, D), k (Lk, D),
 * v (Lk, Dv) of row strides rsq, rsk, rsv; s is Lq * Lk floats of scratch. */
int d2ar__attention_head(int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, const float *q,
                         int64_t rsq, const float *k, int64_t rsk, const float *v, int64_t rsv,
                         float scale, float *o, int64_t ldo, float *s) {
    d2ar__mat qm = {q, rsq, 1, 0};
    d2ar__mat km = {k, 1, rsk, 0}; /* k^T: element (d, j) = k[j, d] */
    int rc = d2ar__gemm(0, Lq, Lk, D, &qm, &km, NULL, D2AR_BIAS_NONE, D2AR_ACT_NONE, s, Lk);
    if (rc) return rc;
    softmax_rows(Lq, Lk, s, Lk, scale, s);
    d2ar__mat pm = {s, Lk, 1, 0}, vm = {v, rsv, 1, 0};
    return d2ar__gemm(0, Lq, Dv, Lk, &pm, &vm, NULL, D2AR_BIAS_NONE, D2AR_ACT_NONE, o, ldo);
}

int d2ar_attention_f32(int64_t BH, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv,
                       const float *q, const float *k, const float *v, float scale, float *o) {
    if (BH < 0 || Lq < 0 || Lk < 1 || D < 0 || Dv < 0) return D2AR_ESHAPE;
    if (!(scale == scale)) return D2AR_EARG;
    if (BH == 0 || Lq == 0 || Dv == 0) return D2AR_OK;
    if (!o || !v || (D > 0 && (!q || !k))) return D2AR_ENULL;
    float *s = d2ar__alloc((size_t)(Lq * Lk) * sizeof(float));
    if (!s) return D2AR_ENOMEM;
    int rc = D2AR_OK;
    for (int64_t b = 0; b < BH && rc == D2AR_OK; b++)
        rc = d2ar__attention_head(Lq, Lk, D, Dv, q ? q + b * Lq * D : NULL, D > 0 ? D : 1,
                                  k ? k + b * Lk * D : NULL, D > 0 ? D : 1, v + b * Lk * Dv,
                                  Dv, scale, o + b * Lq * Dv, Dv, s);
    d2ar__free(s);
    return rc;
}
