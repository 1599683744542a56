// AVX-512 micro-kernel: 12 rows × 32 columns (two zmm per row: 24 accumulators, 2 for B, broadcasts
// folded into the multiply-adds). Built with -mavx512f; called only where the CPU has it (isa.c).
#include "micro.h"

#include <immintrin.h>

#define MR LL_AVX512_MR
#define NR LL_AVX512_NR

// One row of the tile for one p: both accumulators += a[r]·(b0, b1).
static inline void fma_row(const float *a, __m512 b0, __m512 b1, __m512 *c0, __m512 *c1) {
  const __m512 ar = _mm512_set1_ps(*a);
  *c0 = _mm512_fmadd_ps(ar, b0, *c0);
  *c1 = _mm512_fmadd_ps(ar, b1, *c1);
}

void ll_micro_avx512(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                     int64_t rows, int64_t cols, int first, const float *bias) {
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(), c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps(), c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(bp);
    const __m512 b1 = _mm512_loadu_ps(bp + 16);
    fma_row(ap + 0, b0, b1, &c00, &c01);
    fma_row(ap + 1, b0, b1, &c10, &c11);
    fma_row(ap + 2, b0, b1, &c20, &c21);
    fma_row(ap + 3, b0, b1, &c30, &c31);
    fma_row(ap + 4, b0, b1, &c40, &c41);
    fma_row(ap + 5, b0, b1, &c50, &c51);
    fma_row(ap + 6, b0, b1, &c60, &c61);
    fma_row(ap + 7, b0, b1, &c70, &c71);
    fma_row(ap + 8, b0, b1, &c80, &c81);
    fma_row(ap + 9, b0, b1, &c90, &c91);
    fma_row(ap + 10, b0, b1, &c100, &c101);
    fma_row(ap + 11, b0, b1, &c110, &c111);
    ap += MR;
    bp += NR;
  }
  __m512 acc[MR][2] = {
    {c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51},
    {c60, c61}, {c70, c71}, {c80, c81}, {c90, c91}, {c100, c101}, {c110, c111},
  };
  if (rows == MR && cols == NR) {
    const __m512 z0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 z1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      if (first) {
        _mm512_storeu_ps(cr, _mm512_add_ps(acc[r][0], z0));
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(acc[r][1], z1));
      } else {
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), acc[r][1]));
      }
    }
    return;
  }
  float tile[MR * NR];
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile + r * NR, acc[r][0]);
    _mm512_storeu_ps(tile + r * NR + 16, acc[r][1]);
  }
  ll_store_tile(tile, NR, c, ldc, rows, cols, first, bias);
}
