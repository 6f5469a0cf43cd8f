/* upsample-ref.c - nearest-neighbour upsampling by an integer factor. */
#include "../../src/internal.h"

int d2ar_upsample_nearest_f32(int64_t NC, int64_t H, int64_t W, int64_t f, const float *x,
                              float *y) {
    if (NC < 0 || H < 0 || W < 0 || f < 1) return D2AR_ESHAPE;
    if (NC * H * W > 0 && (!x || !y)) return D2AR_ENULL;
    const int64_t Wo = W * f;
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < H; i++) {
            const float *in = x + (p * H + i) * W;
            float *out = y + (p * H * f + i * f) * Wo;
            if (f == 2)
                for (int64_t j = 0; j < W; j++) out[2 * j] = out[2 * j + 1] = in[j];
            else
                for (int64_t j = 0; j < W; j++)
                    for (int64_t r = 0; r < f; r++) out[j * f + r] = in[j];
            for (int64_t r = 1; r < f; r++)
                for (int64_t j = 0; j < Wo; j++) out[r * Wo + j] = out[j];
        }
    return D2AR_OK;
}
