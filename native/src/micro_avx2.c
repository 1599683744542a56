// AVX2 + FMA micro-kernel: 6 rows × 16 columns (two ymm per row: 12 accumulators, 2 for B, 1
// broadcast). Built with -mavx2 -mfma; called only where the CPU has both (isa.c).
#include "micro.h"

#include <immintrin.h>

#define MR LL_AVX2_MR
#define NR LL_AVX2_NR

// One row of the tile for one p: both accumulators += a[r]·(b0, b1).
static inline void fma_row(const float *a, __m256 b0, __m256 b1, __m256 *c0, __m256 *c1) {
  const __m256 ar = _mm256_broadcast_ss(a);
  *c0 = _mm256_fmadd_ps(ar, b0, *c0);
  *c1 = _mm256_fmadd_ps(ar, b1, *c1);
}

void ll_micro_avx2(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                   int64_t rows, int64_t cols, int first, const float *bias) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(bp);
    const __m256 b1 = _mm256_loadu_ps(bp + 8);
    fma_row(ap + 0, b0, b1, &c00, &c01);
    fma_row(ap + 1, b0, b1, &c10, &c11);
    fma_row(ap + 2, b0, b1, &c20, &c21);
    fma_row(ap + 3, b0, b1, &c30, &c31);
    fma_row(ap + 4, b0, b1, &c40, &c41);
    fma_row(ap + 5, b0, b1, &c50, &c51);
    ap += MR;
    bp += NR;
  }
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == MR && cols == NR) {
    const __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      if (first) {
        _mm256_storeu_ps(cr, _mm256_add_ps(acc[r][0], z0));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(acc[r][1], z1));
      } else {
        _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
      }
    }
    return;
  }
  float tile[MR * NR];
  for (int r = 0; r < MR; r++) {
    _mm256_storeu_ps(tile + r * NR, acc[r][0]);
    _mm256_storeu_ps(tile + r * NR + 8, acc[r][1]);
  }
  ll_store_tile(tile, NR, c, ldc, rows, cols, first, bias);
}
