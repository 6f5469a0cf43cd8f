/* gemm.c - argument checks, packing and the blocked driver shared by every GEMM backend.
 *
 * Blocking: jc over N (nc), pc over K (kc), ic over M (mc), then register tiles mr x nr.
 * Bit-exactness across blocks: the first k block starts each accumulator at 0 and every later
 * block reloads the partial sums from C, so each element is one fma chain over k = 0..K-1.
 * Bias and activation are applied once, after the last k block, by shared code, to each register
 * tile right after the micro-kernel wrote it (still in L1).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/internal.h"

/* Per-thread packing workspace, kept between calls (grown when needed, freed at thread exit):
 * allocating it per call cost page faults on every call once the allocator had handed the
 * memory back, up to 20% of a 256^3 product. */
typedef struct {
    char *p[3];
    size_t n[3];
} workspace;

static pthread_key_t g_ws_key;
static pthread_once_t g_ws_once = PTHREAD_ONCE_INIT;
static int g_ws_ok;

static void ws_destroy(void *v) {
    workspace *w = (workspace *)v;
    for (int i = 0; i < 3; i++) d2ar__free(w->p[i]);
    free(w);
}

static void ws_init(void) { g_ws_ok = pthread_key_create(&g_ws_key, ws_destroy) == 0; }

/* This thread's workspace, or NULL (the caller then allocates per call). */
static workspace *ws_get(void) {
    pthread_once(&g_ws_once, ws_init);
    if (!g_ws_ok) return NULL;
    workspace *w = (workspace *)pthread_getspecific(g_ws_key);
    if (!w) {
        w = (workspace *)calloc(1, sizeof *w);
        if (w && pthread_setspecific(g_ws_key, w) != 0) {
            free(w);
            w = NULL;
        }
    }
    return w;
}

/* Buffer i of at least n bytes (64-byte aligned), or NULL. */
static char *ws_buf(workspace *w, int i, size_t n) {
    if (w->n[i] < n) {
        d2ar__free(w->p[i]);
        w->p[i] = (char *)d2ar__alloc(n);
        w->n[i] = w->p[i] ? n : 0;
    }
    return w->p[i];
}

/* Copy n strided elements (stride st) of an fp32 or bf16 operand into fp32. */
static void load_run(const d2ar__mat *m, int64_t off, int64_t st, int64_t n, float *dst,
                     int64_t dst_step) {
    if (m->bf16) {
        const uint16_t *s = (const uint16_t *)m->p + off;
        for (int64_t t = 0; t < n; t++) dst[t * dst_step] = d2ar__bf16_to_f32(s[t * st]);
    } else {
        const float *s = (const float *)m->p + off;
        for (int64_t t = 0; t < n; t++) dst[t * dst_step] = s[t * st];
    }
}

void d2ar__pack_a_f32(const d2ar__mat *a, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                      int64_t kcp, int64_t mr, void *dst) {
    float *d = (float *)dst;
    for (int64_t p = 0; p < mc; p += mr) {
        int64_t rows = mc - p < mr ? mc - p : mr;
        if (rows < mr || kcp > kc) memset(d, 0, (size_t)(mr * kcp) * sizeof(float));
        /* panel element (k, i) at d[k * mr + i]: one run along k per row */
        for (int64_t i = 0; i < rows; i++)
            load_run(a, (i0 + p + i) * a->rs + k0 * a->cs, a->cs, kc, d + i, mr);
        d += mr * kcp;
    }
}

void d2ar__pack_b_f32(const d2ar__mat *b, int64_t k0, int64_t kc, int64_t kcp, int64_t j0,
                      int64_t nc, int64_t nr, void *dst) {
    float *d = (float *)dst;
    for (int64_t p = 0; p < nc; p += nr) {
        int64_t cols = nc - p < nr ? nc - p : nr;
        if (cols < nr || kcp > kc) memset(d, 0, (size_t)(nr * kcp) * sizeof(float));
        /* panel element (k, j) at d[k * nr + j]; row-major B is read row by row below */
        if (b->cs > b->rs)
            for (int64_t j = 0; j < cols; j++)
                load_run(b, k0 * b->rs + (j0 + p + j) * b->cs, b->rs, kc, d + j, nr);
        d += nr * kcp;
    }
    if (b->cs > b->rs) return;
    /* k outer, panels inner: each B row is read once, contiguously (no 4 KiB stride walk) */
    for (int64_t k = 0; k < kc; k++) {
        float *row = (float *)dst + k * nr;
        for (int64_t p = 0; p < nc; p += nr) {
            int64_t cols = nc - p < nr ? nc - p : nr;
            load_run(b, (k0 + k) * b->rs + (j0 + p) * b->cs, b->cs, cols, row, 1);
            row += nr * kcp;
        }
    }
}

D2AR_VECTORIZE static void epilogue(float *c, int64_t ldc, int64_t rows, int64_t cols, int64_t i0, int64_t j0,
                     const float *bias, int bias_kind, int act) {
    for (int64_t i = 0; i < rows; i++) {
        float *row = c + i * ldc;
        if (bias_kind == D2AR_BIAS_COL)
            for (int64_t j = 0; j < cols; j++) row[j] = row[j] + bias[j0 + j];
        else if (bias_kind == D2AR_BIAS_ROW)
            for (int64_t j = 0; j < cols; j++) row[j] = row[j] + bias[i0 + i];
        d2ar__act_row(row, cols, act);
    }
}

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Bias and activation of the last k block, applied to each register tile while it is in L1. */
typedef struct {
    int avx2; /* use d2ar__epilogue_avx2 (same bits) */
    const float *bias;
    int bias_kind, act;
    int64_t i0, j0; /* position of the block in C */
} tile_epilogue;

/* Run one mc x nc block of register tiles; A packed at ap, or when ar is not NULL read in
 * place by im->ukr_rows (row i at ar + i * rsa elements of im->elem bytes); ep NULL: no
 * epilogue.  Whether to run the epilogue is that one pointer, not a test of the struct's
 * fields after each micro-kernel: GCC 12 read two int fields with one 8-byte load right after
 * storing them apart, a store-forwarding failure that waits until every older store has left
 * the store buffer, including the micro-kernel's C tile stores still waiting for their cache
 * lines; it cost the AMX bf16 GEMM a fifth of its time at 512^3 (BENCHMARKS.md section 6). */
static void macro_block(const d2ar__gemm_impl *im, int64_t mc, int64_t nc, int64_t kcp,
                        const char *ap, const char *ar, int64_t rsa, const char *bp, float *c,
                        int64_t ldc, int load_c, float *tmp, const tile_epilogue *ep) {
    const int64_t mr = im->mr, nr = im->nr;
    const size_t a_panel = (size_t)(mr * kcp) * im->elem, b_panel = (size_t)(nr * kcp) * im->elem;
    for (int64_t jr = 0; jr < nc; jr += nr) {
        int64_t nn = nc - jr < nr ? nc - jr : nr;
        const char *b = bp + (size_t)(jr / nr) * b_panel;
        for (int64_t ir = 0; ir < mc; ir += mr) {
            int64_t mm = mc - ir < mr ? mc - ir : mr;
            const char *a = ap + (size_t)(ir / mr) * a_panel;
            float *ct = c + ir * ldc + jr;
            /* no software prefetch of the next C tile: it bought nothing on AVX2 / AVX-512 and
             * cost AMX about 9% (benchmarks/kernels/amx_phases.c, BENCHMARKS.md section 6) */
            const char *arow = ar ? ar + (size_t)(ir * rsa) * im->elem : NULL;
            if (mm == mr && nn == nr) {
                if (ar)
                    im->ukr_rows(kcp, arow, rsa, mm, b, ct, ldc, load_c);
                else
                    im->ukr(kcp, a, b, ct, ldc, load_c);
            } else {
                if (load_c)
                    for (int64_t i = 0; i < mm; i++)
                        memcpy(tmp + i * nr, ct + i * ldc, (size_t)nn * 4);
                if (ar)
                    im->ukr_rows(kcp, arow, rsa, mm, b, tmp, nr, load_c);
                else
                    im->ukr(kcp, a, b, tmp, nr, load_c);
                for (int64_t i = 0; i < mm; i++)
                    memcpy(ct + i * ldc, tmp + i * nr, (size_t)nn * 4);
            }
            if (ep) {
                if (ep->avx2)
                    d2ar__epilogue_avx2(ct, ldc, mm, nn, ep->bias, ep->bias_kind, ep->i0 + ir,
                                        ep->j0 + jr, ep->act);
                else
                    epilogue(ct, ldc, mm, nn, ep->i0 + ir, ep->j0 + jr, ep->bias, ep->bias_kind,
                             ep->act);
            }
        }
    }
    d2ar__count(im->backend);
}

int d2ar__gemm(int dtype, int64_t M, int64_t N, int64_t K, const d2ar__mat *a, const d2ar__mat *b,
               const float *bias, int bias_kind, int act, float *c, int64_t ldc) {
    if (M == 0 || N == 0) return D2AR_OK;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * 4);
        epilogue(c, ldc, M, N, 0, 0, bias, bias_kind, act);
        return D2AR_OK;
    }
    int backend;
    const d2ar__gemm_impl *im = d2ar__impl_current(dtype, &backend);
    (void)backend;
    const int avx2 = d2ar__use_avx2();
    const int has_epilogue = bias_kind != D2AR_BIAS_NONE || act != D2AR_ACT_NONE;
    /* A is read in place (no packing pass) when the backend can: A row-major in the element
     * type the micro-kernel reads, every k block a whole number of kalign steps (no padding to
     * read past), and N small enough that few B panels would have reused a packed copy */
    const size_t a_elem = a->bf16 ? 2 : sizeof(float);
    const int a_direct = im->ukr_rows && a->cs == 1 && a_elem == im->elem &&
                         K % im->kalign == 0 && N <= im->direct_n;
    /* k blocks of equal size (a multiple of kalign, at most im->kc): no short last block */
    const int64_t nkb = (K + im->kc - 1) / im->kc;
    const int64_t kcb = round_up((K + nkb - 1) / nkb, im->kalign), mcb = im->mc, ncb = im->nc;
    const int64_t kc_max = round_up(K < kcb ? K : kcb, im->kalign);
    const int64_t mc_max = round_up(M < mcb ? M : mcb, im->mr);
    const int64_t nc_max = round_up(N < ncb ? N : ncb, im->nr);
    const size_t na = (size_t)(mc_max * kc_max) * im->elem;
    const size_t nb = (size_t)(nc_max * kc_max) * im->elem;
    const size_t nt = (size_t)(im->mr * im->nr) * sizeof(float);
    workspace *ws = ws_get();
    char *ap, *bp;
    float *tmp;
    if (ws) {
        ap = ws_buf(ws, 0, na);
        bp = ws_buf(ws, 1, nb);
        tmp = (float *)ws_buf(ws, 2, nt);
        if (!ap || !bp || !tmp) return D2AR_ENOMEM;
    } else {
        ap = d2ar__alloc(na);
        bp = d2ar__alloc(nb);
        tmp = d2ar__alloc(nt);
        if (!ap || !bp || !tmp) {
            d2ar__free(ap);
            d2ar__free(bp);
            d2ar__free(tmp);
            return D2AR_ENOMEM;
        }
    }
    for (int64_t jc = 0; jc < N; jc += ncb) {
        int64_t nc = N - jc < ncb ? N - jc : ncb;
        for (int64_t pc = 0; pc < K; pc += kcb) {
            int64_t kc = K - pc < kcb ? K - pc : kcb;
            int64_t kcp = round_up(kc, im->kalign);
            int last = pc + kc == K;
            im->pack_b(b, pc, kc, kcp, jc, nc, im->nr, bp);
            for (int64_t ic = 0; ic < M; ic += mcb) {
                int64_t mc = M - ic < mcb ? M - ic : mcb;
                float *cb = c + ic * ldc + jc;
                const char *ar =
                    a_direct ? (const char *)a->p + (size_t)(ic * a->rs + pc) * a_elem : NULL;
                if (!a_direct) im->pack_a(a, ic, mc, pc, kc, kcp, im->mr, ap);
                const tile_epilogue ep = {avx2, bias, bias_kind, act, ic, jc};
                macro_block(im, mc, nc, kcp, ap, ar, a->rs, bp, cb, ldc, pc > 0, tmp,
                            last && has_epilogue ? &ep : NULL);
            }
        }
    }
    if (im->done) im->done();
    if (!ws) {
        d2ar__free(ap);
        d2ar__free(bp);
        d2ar__free(tmp);
    }
    return D2AR_OK;
}

static int check(int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa, int64_t csa,
                 const void *B, int64_t rsb, int64_t csb, const float *bias, int bias_kind,
                 int act, const float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0) return D2AR_ESHAPE;
    if (K > 0 && (rsa < 1 || csa < 1 || rsb < 1 || csb < 1)) return D2AR_ESTRIDE;
    if (ldc < N || ldc < 1) return D2AR_ESTRIDE;
    if (bias_kind < D2AR_BIAS_NONE || bias_kind > D2AR_BIAS_ROW || !d2ar__act_valid(act))
        return D2AR_EARG;
    if (M > 0 && N > 0) {
        if (!C) return D2AR_ENULL;
        if (K > 0 && (!A || !B)) return D2AR_ENULL;
        if (bias_kind != D2AR_BIAS_NONE && !bias) return D2AR_ENULL;
    }
    return D2AR_OK;
}

int d2ar_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t rsa, int64_t csa,
                  const float *B, int64_t rsb, int64_t csb, const float *bias, int bias_kind,
                  int act, float *C, int64_t ldc) {
    int rc = check(M, N, K, A, rsa, csa, B, rsb, csb, bias, bias_kind, act, C, ldc);
    if (rc) return rc;
    d2ar__mat a = {A, rsa, csa, 0}, b = {B, rsb, csb, 0};
    return d2ar__gemm(0, M, N, K, &a, &b, bias, bias_kind, act, C, ldc);
}

int d2ar_gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t rsa,
                   int64_t csa, const uint16_t *B, int64_t rsb, int64_t csb, const float *bias,
                   int bias_kind, int act, float *C, int64_t ldc) {
    int rc = check(M, N, K, A, rsa, csa, B, rsb, csb, bias, bias_kind, act, C, ldc);
    if (rc) return rc;
    d2ar__mat a = {A, rsa, csa, 1}, b = {B, rsb, csb, 1};
    return d2ar__gemm(1, M, N, K, &a, &b, bias, bias_kind, act, C, ldc);
}
