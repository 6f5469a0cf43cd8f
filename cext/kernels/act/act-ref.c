/* act-ref.c - activations from our own polynomials (no libm), one scalar formula for all.
 *
 * Only IEEE-754 basic operations in a fixed order (the library is built with
 * -ffp-contract=off), so x86-64 and AArch64 give the same bits.
 */
#include <string.h>

#include "../../src/internal.h"

/* exp(x) = 2^n * p(r), n = round(x / ln2), r = x - n ln2 (Cody-Waite, two constants),
 * p = degree-6 Taylor polynomial on |r| <= ln2/2 (relative error < 2e-7). */
float d2ar__expf(float x) {
    const float hi = 88.0f, lo = -87.0f;
    if (x != x) return x;
    if (x > hi) x = hi;
    if (x < lo) x = lo;
    const float log2e = 1.44269504088896341f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * log2e + shifter) - shifter;
    const float ln2_hi = 0.693145751953125f; /* 12 significant bits: n * ln2_hi is exact */
    const float ln2_lo = 1.428606765330187e-06f;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = (int32_t)n + 127;
    uint32_t bits = (uint32_t)e << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

float d2ar__act1(float x, int act) {
    switch (act) {
    case D2AR_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case D2AR_ACT_SILU: return x / (1.0f + d2ar__expf(-x));
    case D2AR_ACT_GELU_TANH: {
        const float k0 = 0.7978845608028654f; /* sqrt(2/pi) */
        float u = k0 * (x + 0.044715f * (x * x * x));
        float t = 1.0f - 2.0f / (1.0f + d2ar__expf(2.0f * u)); /* tanh(u) */
        return 0.5f * x * (1.0f + t);
    }
    default: return x;
    }
}

void d2ar__act_row(float *y, int64_t n, int act) {
    if (act == D2AR_ACT_NONE) return;
    int64_t i = d2ar__use_avx2() ? d2ar__act_row_avx2(y, n, act) : 0; /* same bits, 8 lanes */
    for (; i < n; i++) y[i] = d2ar__act1(y[i], act);
}

int d2ar__use_avx2(void) {
    int backend = d2ar_get_backend();
    return backend == D2AR_BACKEND_AVX2 || backend == D2AR_BACKEND_AVX512 ||
           backend == D2AR_BACKEND_AMX;
}

int d2ar__act_valid(int act) {
    return act >= D2AR_ACT_NONE && act <= D2AR_ACT_GELU_TANH;
}

float d2ar__bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int d2ar_activation_f32(int64_t n, const float *x, int act, float *y) {
    if (n < 0) return D2AR_ESHAPE;
    if (!d2ar__act_valid(act)) return D2AR_EARG;
    if (n > 0 && (!x || !y)) return D2AR_ENULL;
    if (y != x) memmove(y, x, (size_t)n * sizeof(float));
    d2ar__act_row(y, n, act);
    return D2AR_OK;
}

int d2ar_f32_to_bf16(int64_t n, const float *x, uint16_t *y) {
    if (n < 0) return D2AR_ESHAPE;
    if (n > 0 && (!x || !y)) return D2AR_ENULL;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        if ((b & 0x7fffffffu) > 0x7f800000u) {
            y[i] = (uint16_t)((b >> 16) | 0x40u); /* quiet NaN */
        } else {
            b += 0x7fffu + ((b >> 16) & 1u);
            y[i] = (uint16_t)(b >> 16);
        }
    }
    return D2AR_OK;
}
