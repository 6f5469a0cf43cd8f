/* harness.h - what the C benchmark harnesses in this folder share: a monotonic clock and the AMX
 * tile configuration layout (64 bytes, palette 1). */
#ifndef D2AR_BENCH_HARNESS_H
#define D2AR_BENCH_HARNESS_H

#include <stdint.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* LDTILECFG's memory operand.  Fill it in a constant, or put a compiler barrier between filling
 * a local and _tile_loadconfig: GCC 12's intrinsic tells the compiler it reads only 8 bytes, so
 * the row and column sizes of a local are dropped at -O2 (every tile instruction then faults). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* Eight tiles of 16 rows x 64 bytes: what the library's AMX kernel uses. */
static const tilecfg TILES_16x64 __attribute__((aligned(64))) = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

#endif
