/* d2ar.h - public API of cext, the xr_d2ar kernel library.
 *
 * This header is the single source of the cffi cdef: cext/_build.py reads it and drops the
 * preprocessor lines, so everything between the guards must be plain C declarations.
 *
 * Conventions
 * - Matrices are described by a pointer plus a row stride and a column stride counted in
 *   elements (not bytes); both strides must be >= 1.  Outputs are row-major with row stride ldc.
 * - bf16 values are passed as their 16 raw bits (uint16_t), fp32 accumulate.
 * - Every function returns D2AR_OK (0) or a negative error code; none of them aborts.
 * - Bit-exactness: every GEMM backend computes, per output element,
 *       acc = 0; for k = 0..K-1: acc = fma(a[i,k], b[k,j], acc);  c = act(acc + bias)
 *   so every backend (and every machine) gives the same bits.  Activations and the other ops
 *   use only IEEE-754 + - * / sqrt in a fixed order (our own polynomials, no libm).
 * - Kernels are single-threaded and re-entrant; callers thread over independent work.
 */
#ifndef D2AR_H
#define D2AR_H
#include <stddef.h>
#include <stdint.h>

/* Status codes. */
enum {
    D2AR_OK = 0,
    D2AR_ENULL = -1,        /* a required pointer is NULL */
    D2AR_ESHAPE = -2,       /* a size is negative or the sizes do not agree */
    D2AR_ESTRIDE = -3,      /* a stride is < 1, or ldc < N */
    D2AR_EBACKEND = -4,     /* backend unknown, not compiled in, or not supported by this CPU */
    D2AR_ENOMEM = -5,       /* workspace allocation failed */
    D2AR_EARG = -6          /* another argument is out of range (activation, groups, eps, ...) */
};

/* Backends (ids are stable). */
enum {
    D2AR_BACKEND_REF = 0,     /* portable C, always built */
    D2AR_BACKEND_AVX2 = 1,    /* x86-64 AVX2 + FMA */
    D2AR_BACKEND_AVX512 = 2,  /* x86-64 AVX-512F (+BW/VL) */
    D2AR_BACKEND_AMX = 3,     /* x86-64 AMX-BF16 tiles for bf16 GEMM, NOT bit-exact, never chosen
                                 automatically (fp32 GEMM runs the AVX-512 kernel) */
    D2AR_BACKEND_SME = 4,     /* Armv9 SME: ZA tiles, FMOPA */
    D2AR_BACKEND_COUNT = 5
};

/* CPU feature bits reported by d2ar_cpu_features(). */
enum {
    D2AR_CPU_FMA = 1,
    D2AR_CPU_AVX2 = 2,
    D2AR_CPU_AVX512F = 4,
    D2AR_CPU_AVX512BW = 8,
    D2AR_CPU_AVX512VL = 16,
    D2AR_CPU_AVX512BF16 = 32,
    D2AR_CPU_AMX_TILE = 64,
    D2AR_CPU_AMX_BF16 = 128,
    D2AR_CPU_AMX_OS = 256,     /* the OS granted AMX tile data (arch_prctl) */
    D2AR_CPU_SME = 512
};

/* Activations fused into GEMM / convolution / group norm. */
enum {
    D2AR_ACT_NONE = 0,
    D2AR_ACT_RELU = 1,
    D2AR_ACT_SILU = 2,        /* x / (1 + exp(-x)) */
    D2AR_ACT_GELU_TANH = 3    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
};

/* Where a GEMM bias applies. */
enum {
    D2AR_BIAS_NONE = 0,
    D2AR_BIAS_COL = 1,        /* bias[j], length N (Linear layers) */
    D2AR_BIAS_ROW = 2         /* bias[i], length M (convolution as Cout x pixels) */
};

/* ---- backends and dispatch ---------------------------------------------------------------- */

/* Chooses the backend once (the best bit-exact one available: SME, AVX-512, AVX2, ref; or
 * $XR_D2AR_KERNELS); every entry point calls it. */
int d2ar_init(void);
/* 1 if the backend was compiled into this library, else 0. */
int d2ar_backend_compiled(int backend);
/* 1 if compiled in and supported by this CPU and OS, else 0. */
int d2ar_backend_available(int backend);
/* Force a backend (D2AR_EBACKEND if not available).  Affects calls that start afterwards. */
int d2ar_set_backend(int backend);
/* The backend in use. */
int d2ar_get_backend(void);
/* Short lower-case name of a backend id ("ref", "avx2", ...), or "unknown". */
const char *d2ar_backend_name(int backend);
/* D2AR_CPU_* bits of this CPU. */
uint64_t d2ar_cpu_features(void);
/* Number of GEMM calls executed by a backend's micro-kernels since load (tests use it). */
uint64_t d2ar_kernel_calls(int backend);
/* Micro-kernel register tile (rows, cols) of a backend for fp32 (dtype 0) or bf16 (dtype 1). */
int d2ar_backend_tile(int backend, int dtype, int64_t *mr, int64_t *nr);
/* 1 if the backend's bf16 (dtype 1) or fp32 (dtype 0) GEMM is bit-identical to the reference
 * (all but AMX bf16, whose tile dot products round differently), else 0. */
int d2ar_backend_bit_exact(int backend, int dtype);
/* Text of a status code. */
const char *d2ar_strerror(int code);

/* ---- GEMM: C[M,N] = act(A[M,K] @ B[K,N] + bias) --------------------------------------------- */

int d2ar_gemm_f32(int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t rsa, int64_t csa,
                  const float *B, int64_t rsb, int64_t csb,
                  const float *bias, int bias_kind, int act,
                  float *C, int64_t ldc);

int d2ar_gemm_bf16(int64_t M, int64_t N, int64_t K,
                   const uint16_t *A, int64_t rsa, int64_t csa,
                   const uint16_t *B, int64_t rsb, int64_t csb,
                   const float *bias, int bias_kind, int act,
                   float *C, int64_t ldc);

/* ---- other ops (portable C, one implementation for every backend) ------------------------- */

/* y[i] = act(x[i]) for n elements; x and y may be the same buffer. */
int d2ar_activation_f32(int64_t n, const float *x, int act, float *y);

/* Row-wise softmax of x (rows, cols), row stride ld (>= cols); y may equal x. */
int d2ar_softmax_f32(int64_t rows, int64_t cols, const float *x, int64_t ld, float *y);

/* LayerNorm over the last axis of x (rows, cols) contiguous; gamma/beta (cols) may be NULL. */
int d2ar_layer_norm_f32(int64_t rows, int64_t cols, const float *x,
                        const float *gamma, const float *beta, float eps, float *y);

/* GroupNorm of x (N, C, HW) contiguous with G groups (C % G == 0), per-channel gamma/beta
 * (may be NULL), then act.  y may equal x. */
int d2ar_group_norm_f32(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                        const float *gamma, const float *beta, float eps, int act, float *y);

/* 2-D convolution, NCHW, stride 1, zero padding pad, square kernel ks (1 or 3 typically):
 * x (N, Cin, H, W), w (Cout, Cin, ks, ks), bias (Cout) or NULL, y (N, Cout, Ho, Wo) with
 * Ho = H + 2 pad - ks + 1.  Computed as im2col + GEMM on the current backend (on AVX2 machines
 * as a direct convolution with the same fma chains), so it is bit-identical across backends;
 * k runs over (cin, ky, kx) in that order. */
int d2ar_conv2d_f32(int64_t N, int64_t Cin, int64_t H, int64_t W, const float *x,
                    int64_t Cout, int64_t ks, int64_t pad, const float *w, const float *bias,
                    int act, float *y);

/* Scaled dot-product attention per batch b < BH: q (BH, Lq, D), k (BH, Lk, D), v (BH, Lk, Dv)
 * contiguous; o (BH, Lq, Dv) = softmax(scale q k^T) v. */
int d2ar_attention_f32(int64_t BH, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv,
                       const float *q, const float *k, const float *v, float scale, float *o);

/* Nearest-neighbour upsampling of x (NC, H, W) by integer factor f: y (NC, H f, W f). */
int d2ar_upsample_nearest_f32(int64_t NC, int64_t H, int64_t W, int64_t f,
                              const float *x, float *y);

/* ---- fused blocks of the shipped prior's decoder ------------------------------------------ */

/* Weights of one flow transformer block (xr_d2ar.model VelocityNet block).  Every Linear weight
 * is its transpose, (in, out) row-major; biases (out). */
typedef struct {
    const float *attn_q_w; const float *attn_q_b;
    const float *attn_kv_w; const float *attn_kv_b;
    const float *attn_out_w; const float *attn_out_b;
    const float *norm_x_w; const float *norm_x_b;
    const float *cross_q_w; const float *cross_q_b;
    const float *cross_out_w; const float *cross_out_b;
    const float *fc1_w; const float *fc1_b;
    const float *fc2_w; const float *fc2_b;
} d2ar_flow_block_weights;

/* Floats of scratch that d2ar_flow_block_f32 needs. */
int64_t d2ar_flow_block_scratch(int64_t N, int64_t L, int64_t D, int64_t hidden, int64_t S);

/* One flow block on x (N, L, D) in place, op for op as the numpy runtime (each product a GEMM
 * on the current backend, so bit-identical across backends):
 *   m = mod + table, split in s1 g1 a1 s2 g2 a2 (N, D each);  ln = LayerNorm without affine
 *   x = x + a1 * SelfAttn(ln(x) * (1 + g1) + s1)
 *   x = x + CrossAttn(LayerNorm_w(x), ctx_kv)
 *   x = x + a2 * Mlp(ln(x) * (1 + g2) + s2)     (Mlp: Linear, GELU-tanh, Linear)
 * mod (N, 6D), table (6D), ctx_kv (N, S, 2D): the cross-attention's kv Linear of the context
 * (keys then values, heads of D / heads each); scale the attention scale; eps the LayerNorm
 * eps; scratch of d2ar_flow_block_scratch floats. D <= 8192 (D2AR_ESHAPE otherwise). */
int d2ar_flow_block_f32(int64_t N, int64_t L, int64_t D, int64_t heads, int64_t hidden,
                        int64_t S, float *x, const float *mod, const float *table,
                        const float *ctx_kv, const d2ar_flow_block_weights *w, float scale,
                        float eps, float *scratch);

/* Round fp32 to bf16 bits (round to nearest even; NaN stays NaN). */
int d2ar_f32_to_bf16(int64_t n, const float *x, uint16_t *y);

#endif /* D2AR_H */
