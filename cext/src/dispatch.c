/* dispatch.c - CPU feature detection and the backend chosen once at load time. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define D2AR_ARCH_PRCTL_REQ_XCOMP_PERM 0x1023
#define D2AR_XFEATURE_XTILEDATA 18
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define D2AR_HWCAP2_SME (1UL << 23)
#endif

static const char *const NAMES[D2AR_BACKEND_COUNT] = {"ref", "avx2", "avx512", "amx", "sme"};
/* Preference order when nothing is forced, best first: bit-exact backends only (not AMX). */
#define N_PREFERENCE 4
static const int PREFERENCE[N_PREFERENCE] = {D2AR_BACKEND_SME, D2AR_BACKEND_AVX512,
                                             D2AR_BACKEND_AVX2, D2AR_BACKEND_REF};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static uint64_t g_features;
static int g_backend = D2AR_BACKEND_REF;
static uint64_t g_calls[D2AR_BACKEND_COUNT];

#if defined(__x86_64__) || defined(__i386__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t detect(void) {
    unsigned a, b, c, d;
    uint64_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return 0;
    uint64_t xcr0 = xgetbv0();
    int avx_os = (xcr0 & 0x6) == 0x6;
    int zmm_os = (xcr0 & 0xe6) == 0xe6;
    int amx_os_bits = (xcr0 & (3u << 17)) == (3u << 17);
    if (avx_os && (c & (1u << 12))) f |= D2AR_CPU_FMA;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    if (avx_os && (b & (1u << 5))) f |= D2AR_CPU_AVX2;
    if (zmm_os && (b & (1u << 16))) f |= D2AR_CPU_AVX512F;
    if (zmm_os && (b & (1u << 30))) f |= D2AR_CPU_AVX512BW;
    if (zmm_os && (b & (1u << 31))) f |= D2AR_CPU_AVX512VL;
    if (d & (1u << 24)) f |= D2AR_CPU_AMX_TILE;
    if (d & (1u << 22)) f |= D2AR_CPU_AMX_BF16;
    unsigned a1, b1, c1, d1;
    if (zmm_os && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5)))
        f |= D2AR_CPU_AVX512BF16;
#if defined(__linux__) && defined(__x86_64__)
    if ((f & D2AR_CPU_AMX_TILE) && amx_os_bits &&
        syscall(SYS_arch_prctl, D2AR_ARCH_PRCTL_REQ_XCOMP_PERM, D2AR_XFEATURE_XTILEDATA) == 0)
        f |= D2AR_CPU_AMX_OS;
#else
    (void)amx_os_bits;
#endif
    return f;
}
#elif defined(__aarch64__) && defined(__linux__)
static uint64_t detect(void) {
    return (getauxval(AT_HWCAP2) & D2AR_HWCAP2_SME) ? D2AR_CPU_SME : 0;
}
#else
static uint64_t detect(void) { return 0; }
#endif

static const d2ar__gemm_impl *impl_of(int backend, int dtype) {
    switch (backend) {
    case D2AR_BACKEND_REF: return d2ar__gemm_ref(dtype);
    case D2AR_BACKEND_AVX2: return d2ar__gemm_avx2(dtype);
    case D2AR_BACKEND_AVX512: return d2ar__gemm_avx512(dtype);
    case D2AR_BACKEND_AMX: return d2ar__gemm_amx(dtype);
    case D2AR_BACKEND_SME: return d2ar__gemm_sme(dtype);
    default: return NULL;
    }
}

static uint64_t needs(int backend) {
    switch (backend) {
    case D2AR_BACKEND_AVX2: return D2AR_CPU_AVX2 | D2AR_CPU_FMA;
    case D2AR_BACKEND_AVX512: return D2AR_CPU_AVX512F | D2AR_CPU_AVX512BW | D2AR_CPU_AVX512VL;
    case D2AR_BACKEND_AMX:
        return D2AR_CPU_AVX512F | D2AR_CPU_AVX512BW | D2AR_CPU_AVX512VL | D2AR_CPU_AMX_TILE |
               D2AR_CPU_AMX_BF16 | D2AR_CPU_AMX_OS;
    case D2AR_BACKEND_SME: return D2AR_CPU_SME;
    default: return 0;
    }
}

static int name_to_id(const char *s) {
    for (int i = 0; i < D2AR_BACKEND_COUNT; i++)
        if (strcmp(s, NAMES[i]) == 0) return i;
    return -1;
}

static int supported(int backend) {
    return d2ar_backend_compiled(backend) && (g_features & needs(backend)) == needs(backend);
}

static void init_once(void) {
    g_features = detect();
    for (int i = 0; i < N_PREFERENCE; i++) {
        if (supported(PREFERENCE[i])) {
            g_backend = PREFERENCE[i];
            break;
        }
    }
    /* Test override; unknown or unavailable names keep the best backend (the Python layer
     * reports them as errors, and "numpy" is handled there). */
    const char *env = getenv("XR_D2AR_KERNELS");
    int forced = env ? name_to_id(env) : -1;
    if (forced >= 0 && supported(forced)) g_backend = forced;
}

int d2ar_init(void) {
    pthread_once(&g_once, init_once);
    return D2AR_OK;
}

int d2ar_backend_compiled(int backend) {
    return impl_of(backend, 0) != NULL;
}

int d2ar_backend_available(int backend) {
    d2ar_init();
    return supported(backend);
}

int d2ar_set_backend(int backend) {
    if (!d2ar_backend_available(backend)) return D2AR_EBACKEND;
    __atomic_store_n(&g_backend, backend, __ATOMIC_RELAXED);
    return D2AR_OK;
}

int d2ar_get_backend(void) {
    d2ar_init();
    return __atomic_load_n(&g_backend, __ATOMIC_RELAXED);
}

const char *d2ar_backend_name(int backend) {
    return (backend >= 0 && backend < D2AR_BACKEND_COUNT) ? NAMES[backend] : "unknown";
}

uint64_t d2ar_cpu_features(void) {
    d2ar_init();
    return g_features;
}

void d2ar__count(int backend) {
    __atomic_fetch_add(&g_calls[backend], 1, __ATOMIC_RELAXED);
}

uint64_t d2ar_kernel_calls(int backend) {
    if (backend < 0 || backend >= D2AR_BACKEND_COUNT) return 0;
    return __atomic_load_n(&g_calls[backend], __ATOMIC_RELAXED);
}

int d2ar_backend_bit_exact(int backend, int dtype) {
    return !(backend == D2AR_BACKEND_AMX && dtype == 1);
}

int d2ar_backend_tile(int backend, int dtype, int64_t *mr, int64_t *nr) {
    if (!mr || !nr) return D2AR_ENULL;
    if (dtype != 0 && dtype != 1) return D2AR_EARG;
    if (!d2ar_backend_available(backend)) return D2AR_EBACKEND;
    const d2ar__gemm_impl *im = impl_of(backend, dtype);
    *mr = im->mr;
    *nr = im->nr;
    return D2AR_OK;
}

int d2ar__gemm_tune(int backend, int dtype, int64_t kc, int64_t mc, int64_t nc,
                    int64_t direct_n) {
    if (backend != D2AR_BACKEND_AVX2 && backend != D2AR_BACKEND_AVX512 &&
        backend != D2AR_BACKEND_AMX)
        return D2AR_EBACKEND;
    if (dtype != 0 && dtype != 1) return D2AR_EARG;
    d2ar__gemm_impl *im = (d2ar__gemm_impl *)impl_of(backend, dtype); /* a mutable static */
    if (!im) return D2AR_EBACKEND;
    if (kc < 1 || mc < im->mr || nc < im->nr || kc % im->kalign || mc % im->mr || nc % im->nr ||
        direct_n < 0)
        return D2AR_EARG;
    im->kc = kc, im->mc = mc, im->nc = nc, im->direct_n = direct_n;
    return D2AR_OK;
}

const d2ar__gemm_impl *d2ar__impl_current(int dtype, int *backend) {
    *backend = d2ar_get_backend();
    return impl_of(*backend, dtype);
}

const char *d2ar_strerror(int code) {
    switch (code) {
    case D2AR_OK: return "ok";
    case D2AR_ENULL: return "a required pointer is NULL";
    case D2AR_ESHAPE: return "a size is negative or the sizes do not agree";
    case D2AR_ESTRIDE: return "a stride is < 1 or the output row stride is smaller than N";
    case D2AR_EBACKEND: return "backend unknown, not compiled in, or not supported by this CPU";
    case D2AR_ENOMEM: return "workspace allocation failed";
    case D2AR_EARG: return "an argument is out of range";
    default: return "unknown status code";
    }
}

void *d2ar__alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

void d2ar__free(void *p) { free(p); }
