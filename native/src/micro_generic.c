// Portable micro-kernel: 4 rows × 16 columns in the compiler's 128-bit vectors (SSE2 on any x86-64,
// NEON on arm64): 16 accumulators, 4 for B. Multiplies and adds separately (no fused multiply-add),
// like the C it is written in.
#include "micro.h"

#include <string.h>

#define MR LL_GENERIC_MR
#define NR LL_GENERIC_NR

typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}

void ll_micro_generic(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                      int64_t rows, int64_t cols, int first, const float *bias) {
  v4f acc[MR][4];
  for (int r = 0; r < MR; r++) {
    for (int q = 0; q < 4; q++) acc[r][q] = (v4f){0, 0, 0, 0};
  }
  for (int64_t p = 0; p < kc; p++) {
    const v4f b0 = v4_load(bp), b1 = v4_load(bp + 4), b2 = v4_load(bp + 8), b3 = v4_load(bp + 12);
    for (int r = 0; r < MR; r++) {
      const v4f a = (v4f){ap[r], ap[r], ap[r], ap[r]};
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
      acc[r][2] += a * b2;
      acc[r][3] += a * b3;
    }
    ap += MR;
    bp += NR;
  }
  float tile[MR * NR];
  for (int r = 0; r < MR; r++) memcpy(tile + r * NR, acc[r], sizeof acc[r]);
  ll_store_tile(tile, NR, c, ldc, rows, cols, first, bias);
}
