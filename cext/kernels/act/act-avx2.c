/* act-avx2.c - the activations of act-ref.c, 8 lanes at a time (x86-64 AVX2).
 *
 * Every lane runs the scalar formula's IEEE operations in the scalar order: multiply and add
 * stay separate (no fma, as -ffp-contract=off makes the scalar code), the same constants, the
 * same clamps, and NaN lanes return their input as the scalar code does. So the result is
 * act-ref.c's bit for bit; only the speed differs (the fused GEMM epilogue of the flow's MLPs,
 * and the exponentials of the attention softmax).
 * Compiled for every x86-64 build through a target attribute; used when the AVX2, AVX-512 or
 * AMX backend is selected. */
#include "../../src/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2")))

TGT static inline __m256 expf8(__m256 x) {
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 v = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    __m256 n = _mm256_sub_ps(
        _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)), shifter), shifter);
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(v, _mm256_mul_ps(n, _mm256_set1_ps(0.693145751953125f))),
                             _mm256_mul_ps(n, _mm256_set1_ps(1.428606765330187e-06f)));
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
    return _mm256_blendv_ps(_mm256_mul_ps(p, scale), x, nan);
}

TGT static inline __m256 act8(__m256 x, int act) {
    const __m256 one = _mm256_set1_ps(1.0f);
    switch (act) {
    case D2AR_ACT_RELU:
        return _mm256_and_ps(x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
    case D2AR_ACT_SILU: {
        __m256 neg = _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
        return _mm256_div_ps(x, _mm256_add_ps(one, expf8(neg)));
    }
    case D2AR_ACT_GELU_TANH: {
        __m256 cube = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 inner = _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(0.044715f), cube));
        __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), inner);
        __m256 e = expf8(_mm256_mul_ps(_mm256_set1_ps(2.0f), u));
        __m256 t = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, e)));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, t));
    }
    default: return x;
    }
}

/* Four vectors per iteration: independent lanes, so their long dependency chains (exp, then a
 * division) overlap; the operations per lane are unchanged. */
#define ROW_LOOP(EXPR)                                                                   \
    for (; i + 32 <= n; i += 32) {                                                       \
        __m256 x0 = _mm256_loadu_ps(y + i), x1 = _mm256_loadu_ps(y + i + 8);              \
        __m256 x2 = _mm256_loadu_ps(y + i + 16), x3 = _mm256_loadu_ps(y + i + 24);        \
        x0 = EXPR(x0), x1 = EXPR(x1), x2 = EXPR(x2), x3 = EXPR(x3);                       \
        _mm256_storeu_ps(y + i, x0), _mm256_storeu_ps(y + i + 8, x1);                    \
        _mm256_storeu_ps(y + i + 16, x2), _mm256_storeu_ps(y + i + 24, x3);              \
    }                                                                                    \
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, EXPR(_mm256_loadu_ps(y + i)));

#define RELU8(v) act8(v, D2AR_ACT_RELU)
#define SILU8(v) act8(v, D2AR_ACT_SILU)
#define GELU8(v) act8(v, D2AR_ACT_GELU_TANH)

TGT int64_t d2ar__act_row_avx2(float *y, int64_t n, int act) {
    int64_t i = 0;
    switch (act) {
    case D2AR_ACT_RELU: ROW_LOOP(RELU8) break;
    case D2AR_ACT_SILU: ROW_LOOP(SILU8) break;
    case D2AR_ACT_GELU_TANH: ROW_LOOP(GELU8) break;
    default: return n;
    }
    return i;
}

TGT void d2ar__epilogue_avx2(float *c, int64_t ldc, int64_t rows, int64_t cols,
                             const float *bias, int bias_kind, int64_t i0, int64_t j0, int act) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        int64_t j = 0;
        if (bias_kind == D2AR_BIAS_COL) {
            const float *b = bias + j0;
            for (; j + 8 <= cols; j += 8)
                _mm256_storeu_ps(row + j, _mm256_add_ps(_mm256_loadu_ps(row + j),
                                                        _mm256_loadu_ps(b + j)));
            for (; j < cols; j++) row[j] = row[j] + b[j];
        } else if (bias_kind == D2AR_BIAS_ROW) {
            const float bv = bias[i0 + r];
            const __m256 b = _mm256_set1_ps(bv);
            for (; j + 8 <= cols; j += 8)
                _mm256_storeu_ps(row + j, _mm256_add_ps(_mm256_loadu_ps(row + j), b));
            for (; j < cols; j++) row[j] = row[j] + bv;
        }
        for (j = cols / 8 * 8; j < cols; j++) row[j] = d2ar__act1(row[j], act);
    }
    if (act == D2AR_ACT_NONE || cols < 8) return;
    /* the whole vectors of the block, four at a time across rows (a register tile's rows are
     * only two vectors long): independent lanes, so the long exp/division chains overlap */
    float *v[4];
    int nv = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j + 8 <= cols; j += 8) {
            v[nv++] = c + r * ldc + j;
            if (nv < 4) continue;
            __m256 x0 = _mm256_loadu_ps(v[0]), x1 = _mm256_loadu_ps(v[1]);
            __m256 x2 = _mm256_loadu_ps(v[2]), x3 = _mm256_loadu_ps(v[3]);
            x0 = act8(x0, act), x1 = act8(x1, act), x2 = act8(x2, act), x3 = act8(x3, act);
            _mm256_storeu_ps(v[0], x0), _mm256_storeu_ps(v[1], x1);
            _mm256_storeu_ps(v[2], x2), _mm256_storeu_ps(v[3], x3);
            nv = 0;
        }
    for (int t = 0; t < nv; t++) _mm256_storeu_ps(v[t], act8(_mm256_loadu_ps(v[t]), act));
}

TGT int64_t d2ar__exp_row_avx2(const float *x, int64_t n, float scale, float m, float *y) {
    const __m256 s = _mm256_set1_ps(scale), mm = _mm256_set1_ps(m);
    int64_t i = 0;
#define EXPS(v) expf8(_mm256_sub_ps(_mm256_mul_ps(v, s), mm))
    for (; i + 32 <= n; i += 32) {
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
        x0 = EXPS(x0), x1 = EXPS(x1), x2 = EXPS(x2), x3 = EXPS(x3);
        _mm256_storeu_ps(y + i, x0), _mm256_storeu_ps(y + i + 8, x1);
        _mm256_storeu_ps(y + i + 16, x2), _mm256_storeu_ps(y + i + 24, x3);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, EXPS(_mm256_loadu_ps(x + i)));
#undef EXPS
    return i;
}
TGT int64_t d2ar__div_row_avx2(float *y, int64_t n, float d) {
    const __m256 dv = _mm256_set1_ps(d);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_loadu_ps(y + i), dv));
    return i;
}

TGT int d2ar__max_row_avx2(const float *x, int64_t n, float scale, float *m) {
    if (n < 8) return 0;
    const __m256 s = _mm256_set1_ps(scale);
    __m256 mx = _mm256_mul_ps(_mm256_loadu_ps(x), s), nan = _mm256_cmp_ps(mx, mx, _CMP_UNORD_Q);
    int64_t i = 8;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), s);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mx = _mm256_max_ps(mx, v);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    float r = lanes[0];
    for (int t = 1; t < 8; t++) r = lanes[t] > r ? lanes[t] : r;
    for (; i < n; i++) {
        float v = x[i] * scale;
        if (v != v) return 0;
        r = v > r ? v : r;
    }
    if (_mm256_movemask_ps(nan)) return 0;
    *m = r;
    return 1;
}
#else
int64_t d2ar__div_row_avx2(float *y, int64_t n, float d) {
    (void)y, (void)n, (void)d;
    return 0;
}

int d2ar__max_row_avx2(const float *x, int64_t n, float scale, float *m) {
    (void)x, (void)n, (void)scale, (void)m;
    return 0;
}

int64_t d2ar__act_row_avx2(float *y, int64_t n, int act) {
    (void)y, (void)n, (void)act;
    return 0;
}

int64_t d2ar__exp_row_avx2(const float *x, int64_t n, float scale, float m, float *y) {
    (void)x, (void)n, (void)scale, (void)m, (void)y;
    return 0;
}

void d2ar__epilogue_avx2(float *c, int64_t ldc, int64_t rows, int64_t cols, const float *bias,
                         int bias_kind, int64_t i0, int64_t j0, int act) {
    (void)c, (void)ldc, (void)rows, (void)cols, (void)bias, (void)bias_kind, (void)i0, (void)j0;
    (void)act;
}
#endif
