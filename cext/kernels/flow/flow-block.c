/* flow-block.c - one transformer block of the prior's flow network in one call.
 *
 * The same operations, in the same order and with the same roundings, as the op-by-op numpy
 * runtime (xr_d2ar/runtime/nn.py): every product is a GEMM on the current backend, LayerNorm
 * and softmax are the library's, and the element-wise steps are single IEEE float operations
 * (the library is built with -ffp-contract=off, so a * b + c stays a multiply then an add).
 * One call instead of about thirty saves the Python dispatch, the temporaries and the head
 * transposes (heads are read and written in place through row strides), and keeps the GIL
 * released for the whole block when the caller threads over tiles. */
#include "../../src/internal.h"

/* Widest block: the per-tile modulation rows live on the stack (2 x D floats, 64 KiB at most). */
#define FLOW_MAX_DIM 8192

int64_t d2ar_flow_block_scratch(int64_t N, int64_t L, int64_t D, int64_t hidden, int64_t S) {
    if (N < 0 || L < 0 || D < 0 || hidden < 0 || S < 0) return 0;
    const int64_t R = N * L, ls = L > S ? L : S;
    return R * (6 * D + hidden) + L * ls;
}

/* y (R, D) = ln(x) * (1 + g) + s per tile, g/s = (mod + table) chunks (N, D); eps as given. */
D2AR_VECTORIZE static void norm_modulate(int64_t N, int64_t L, int64_t D, const float *x, const float *mod,
                          const float *table, int64_t gi, int64_t si, float eps, float *y) {
    d2ar__layer_norm_rows(N * L, D, x, NULL, NULL, eps, y);
    for (int64_t n = 0; n < N; n++) {
        const float *m = mod + n * 6 * D;
        float t[D > 0 ? D : 1], sh[D > 0 ? D : 1];
        for (int64_t c = 0; c < D; c++) {
            t[c] = 1.0f + (m[gi * D + c] + table[gi * D + c]);
            sh[c] = m[si * D + c] + table[si * D + c];
        }
        for (int64_t l = 0; l < L; l++) {
            float *yr = y + (n * L + l) * D;
            for (int64_t c = 0; c < D; c++) yr[c] = yr[c] * t[c] + sh[c];
        }
    }
}

/* x (R, D) += a * p per tile (a = (mod + table) chunk ai), or x += p when ai < 0. */
D2AR_VECTORIZE static void residual(int64_t N, int64_t L, int64_t D, float *x, const float *p, const float *mod,
                     const float *table, int64_t ai) {
    for (int64_t n = 0; n < N; n++) {
        float a[D > 0 ? D : 1];
        if (ai >= 0)
            for (int64_t c = 0; c < D; c++) a[c] = mod[n * 6 * D + ai * D + c] + table[ai * D + c];
        for (int64_t l = 0; l < L; l++) {
            float *xr = x + (n * L + l) * D;
            const float *pr = p + (n * L + l) * D;
            if (ai >= 0)
                for (int64_t c = 0; c < D; c++) xr[c] = xr[c] + a[c] * pr[c];
            else
                for (int64_t c = 0; c < D; c++) xr[c] = xr[c] + pr[c];
        }
    }
}

/* out (rows, n_out) = x (rows, n_in) @ w (n_in, n_out) + b, then act. */
static int linear(int64_t rows, int64_t n_in, int64_t n_out, const float *x, const float *w,
                  const float *b, int act, float *out) {
    d2ar__mat a = {x, n_in, 1, 0}, bm = {w, n_out, 1, 0};
    return d2ar__gemm(0, rows, n_out, n_in, &a, &bm, b, b ? D2AR_BIAS_COL : D2AR_BIAS_NONE, act,
                      out, n_out);
}

/* Multi-head attention per tile: q (N, L, D), keys/values in kv (N, S, 2D) -> o (N, L, D). */
static int heads_attention(int64_t N, int64_t L, int64_t S, int64_t D, int64_t heads,
                           const float *q, const float *kv, float scale, float *o, float *s) {
    const int64_t dh = D / heads;
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < heads; h++) {
            const float *kb = kv + n * S * 2 * D + h * dh;
            int rc = d2ar__attention_head(L, S, dh, dh, q + n * L * D + h * dh, D, kb, 2 * D,
                                          kb + D, 2 * D, scale, o + n * L * D + h * dh, D, s);
            if (rc) return rc;
        }
    return D2AR_OK;
}

int d2ar_flow_block_f32(int64_t N, int64_t L, int64_t D, int64_t heads, int64_t hidden,
                        int64_t S, float *x, const float *mod, const float *table,
                        const float *ctx_kv, const d2ar_flow_block_weights *w, float scale,
                        float eps, float *scratch) {
    if (N < 0 || L < 0 || D < 1 || heads < 1 || hidden < 1 || S < 1) return D2AR_ESHAPE;
    if (D % heads || D > FLOW_MAX_DIM) return D2AR_ESHAPE;
    if (!(eps >= 0.0f) || !(scale == scale)) return D2AR_EARG;
    if (N == 0 || L == 0) return D2AR_OK;
    if (!x || !mod || !table || !ctx_kv || !w || !scratch) return D2AR_ENULL;
    const float *const need[] = {w->attn_q_w, w->attn_q_b, w->attn_kv_w, w->attn_kv_b,
                                 w->attn_out_w, w->attn_out_b, w->norm_x_w, w->norm_x_b,
                                 w->cross_q_w, w->cross_q_b, w->cross_out_w, w->cross_out_b,
                                 w->fc1_w, w->fc1_b, w->fc2_w, w->fc2_b};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!need[i]) return D2AR_ENULL;
    const int64_t R = N * L;
    float *y = scratch, *q = y + R * D, *kv = q + R * D, *o = kv + 2 * R * D, *p = o + R * D;
    float *hid = p + R * D, *s = hid + R * hidden;
    int rc;
    /* x = x + a1 * attn(modulate(ln(x), s1, g1)) */
    norm_modulate(N, L, D, x, mod, table, 1, 0, eps, y);
    if ((rc = linear(R, D, D, y, w->attn_q_w, w->attn_q_b, D2AR_ACT_NONE, q))) return rc;
    if ((rc = linear(R, D, 2 * D, y, w->attn_kv_w, w->attn_kv_b, D2AR_ACT_NONE, kv))) return rc;
    if ((rc = heads_attention(N, L, L, D, heads, q, kv, scale, o, s))) return rc;
    if ((rc = linear(R, D, D, o, w->attn_out_w, w->attn_out_b, D2AR_ACT_NONE, p))) return rc;
    residual(N, L, D, x, p, mod, table, 2);
    /* x = x + cross(norm_x(x), context) */
    d2ar__layer_norm_rows(R, D, x, w->norm_x_w, w->norm_x_b, eps, y);
    if ((rc = linear(R, D, D, y, w->cross_q_w, w->cross_q_b, D2AR_ACT_NONE, q))) return rc;
    if ((rc = heads_attention(N, L, S, D, heads, q, ctx_kv, scale, o, s))) return rc;
    if ((rc = linear(R, D, D, o, w->cross_out_w, w->cross_out_b, D2AR_ACT_NONE, p))) return rc;
    residual(N, L, D, x, p, mod, table, -1);
    /* x = x + a2 * mlp(modulate(ln(x), s2, g2)) */
    norm_modulate(N, L, D, x, mod, table, 4, 3, eps, y);
    if ((rc = linear(R, D, hidden, y, w->fc1_w, w->fc1_b, D2AR_ACT_GELU_TANH, hid))) return rc;
    if ((rc = linear(R, hidden, D, hid, w->fc2_w, w->fc2_b, D2AR_ACT_NONE, p))) return rc;
    residual(N, L, D, x, p, mod, table, 5);
    return D2AR_OK;
}
