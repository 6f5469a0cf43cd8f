/* gemm-sme.c - Armv9 SME micro-kernel: FMOPA fp32 outer products into the four 32-bit ZA tiles,
 * a (2 SVL) x (2 SVL) register tile whose size follows the streaming vector length.
 *
 * FMOPA (non-widening fp32) is one fused multiply-add per element and k, so the result is the
 * reference fma chain bit for bit.  bf16 operands are widened exactly while packing and run the
 * same kernel: BFMOPA sums two products per step, which is not the reference order.
 * Built with clang >= 18 on Linux (ACLE SME intrinsics, getauxval); other toolchains leave the
 * backend out.
 */
#include "../../src/internal.h"

#if defined(__aarch64__) && defined(__linux__) && defined(__clang__) && __clang_major__ >= 18
#include <arm_sme.h>
#include <pthread.h>
#include <sys/auxv.h>

#define SME_TGT __attribute__((target("sme")))

/* Set at init; read by __arm_get_current_vg below. */
D2AR_HIDDEN unsigned char d2ar__has_sve;

/* Non-streaming, private-ZA interface; no calls inside (they would need the lazy-save
 * machinery). */
SME_TGT __arm_new("za") __arm_locally_streaming static void
ukr_sme(int64_t kcp, const void *a_, const void *b_, float *c, int64_t ldc, int load_c) {
    const float *a = (const float *)a_, *b = (const float *)b_;
    const uint64_t vl = svcntw();
    const svbool_t pg = svptrue_b32();
    if (load_c) {
        for (uint32_t r = 0; r < vl; r++) {
            svld1_hor_za32(0, r, pg, c + r * ldc);
            svld1_hor_za32(1, r, pg, c + r * ldc + vl);
            svld1_hor_za32(2, r, pg, c + (r + vl) * ldc);
            svld1_hor_za32(3, r, pg, c + (r + vl) * ldc + vl);
        }
    } else {
        svzero_za();
    }
    for (int64_t k = 0; k < kcp; k++) {
        svfloat32_t a0 = svld1_f32(pg, a), a1 = svld1_f32(pg, a + vl);
        svfloat32_t b0 = svld1_f32(pg, b), b1 = svld1_f32(pg, b + vl);
        svmopa_za32_f32_m(0, pg, pg, a0, b0);
        svmopa_za32_f32_m(1, pg, pg, a0, b1);
        svmopa_za32_f32_m(2, pg, pg, a1, b0);
        svmopa_za32_f32_m(3, pg, pg, a1, b1);
        a += 2 * vl;
        b += 2 * vl;
    }
    for (uint32_t r = 0; r < vl; r++) {
        svst1_hor_za32(0, r, pg, c + r * ldc);
        svst1_hor_za32(1, r, pg, c + r * ldc + vl);
        svst1_hor_za32(2, r, pg, c + (r + vl) * ldc);
        svst1_hor_za32(3, r, pg, c + (r + vl) * ldc + vl);
    }
}

static d2ar__gemm_impl g_sme;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

SME_TGT static void init_sme(void) {
    d2ar__has_sve = (getauxval(AT_HWCAP) & (1UL << 22)) != 0;
    int64_t t = 2 * (int64_t)svcntsw(); /* streaming vector length in fp32 lanes, twice */
    int64_t mc = t * (128 / t > 1 ? 128 / t : 1), nc = t * (1024 / t > 1 ? 1024 / t : 1);
    d2ar__gemm_impl im = {D2AR_BACKEND_SME, t, t, 1, 256, mc, nc, sizeof(float),
                          d2ar__pack_a_f32, d2ar__pack_b_f32, ukr_sme};
    g_sme = im;
}

const d2ar__gemm_impl *d2ar__gemm_sme(int dtype) {
    (void)dtype;
    if (!(getauxval(AT_HWCAP2) & (1UL << 23))) {
        /* Compiled in but this CPU has no SME: report the tile of the smallest SVL so that the
         * descriptor is still well formed; the dispatcher never selects it. */
        static const d2ar__gemm_impl none = {D2AR_BACKEND_SME, 8, 8, 1, 256, 64, 1024,
                                             sizeof(float),
                                             d2ar__pack_a_f32, d2ar__pack_b_f32, ukr_sme};
        return &none;
    }
    pthread_once(&g_once, init_sme);
    return &g_sme;
}

/* Support routines of the SME ABI that clang's code calls and libgcc 12 lacks.  They have a
 * special calling convention (the caller keeps its argument registers live across them), so
 * they are written in assembly and touch only x0 (get_current_vg) or x16/x17 (tpidr2_save).
 * __arm_tpidr2_save commits a pending lazy ZA save described by the TPIDR2 block (buffer at
 * +0, slice count at +8); __arm_get_current_vg returns the vector granule (64-bit units) of the
 * current mode, 0 without SVE outside streaming mode. */
__asm__(".arch_extension sme\n"
        ".arch_extension sve\n"
        ".text\n"
        ".p2align 2\n"
        ".globl __arm_tpidr2_save\n"
        ".hidden __arm_tpidr2_save\n"
        ".type __arm_tpidr2_save, %function\n"
        "__arm_tpidr2_save:\n"
        "  mrs x16, tpidr2_el0\n"
        "  cbz x16, 2f\n"
        "  ldr x17, [x16]\n"
        "  cbz x17, 2f\n"
        "  ldrh w16, [x16, #8]\n"
        "  stp x12, x13, [sp, #-16]!\n"
        "  mov w12, #0\n"
        "1:\n"
        "  cmp w12, w16\n"
        "  b.hs 3f\n"
        "  str za[w12, 0], [x17]\n"
        "  addsvl x17, x17, #1\n"
        "  add w12, w12, #1\n"
        "  b 1b\n"
        "3:\n"
        "  ldp x12, x13, [sp], #16\n"
        "2:\n"
        "  ret\n"
        ".size __arm_tpidr2_save, .-__arm_tpidr2_save\n"
        ".globl __arm_get_current_vg\n"
        ".hidden __arm_get_current_vg\n"
        ".type __arm_get_current_vg, %function\n"
        "__arm_get_current_vg:\n"
        "  mrs x0, svcr\n"
        "  tbz x0, #0, 1f\n"
        "  rdsvl x0, #1\n"
        "  lsr x0, x0, #3\n"
        "  ret\n"
        "1:\n"
        "  adrp x0, d2ar__has_sve\n"
        "  ldrb w0, [x0, :lo12:d2ar__has_sve]\n"
        "  cbz w0, 2f\n"
        "  cntd x0\n"
        "2:\n"
        "  ret\n"
        ".size __arm_get_current_vg, .-__arm_get_current_vg\n");
#else
const d2ar__gemm_impl *d2ar__gemm_sme(int dtype) {
    (void)dtype;
    return 0;
}
#endif
