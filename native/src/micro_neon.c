// AArch64 NEON micro-kernel: 8 rows × 12 columns (three q registers per row: 24 accumulators, 2 for
// A, 3 for B, of the 32), each multiply-add by one lane of A. Advanced SIMD is part of every AArch64
// core, so arm64 always has it. Only freestanding headers here, so the file cross-compiles without
// an arm64 C library.
#include "micro.h"

#include <arm_neon.h>

#define MR LL_NEON_MR
#define NR LL_NEON_NR

// One row of the tile for one p: the three accumulators += a·(b0, b1, b2), a one lane of A.
static inline void fma_row(float32x4_t a, float32x4_t b0, float32x4_t b1, float32x4_t b2,
                           float32x4_t *c0, float32x4_t *c1, float32x4_t *c2) {
  *c0 = vfmaq_f32(*c0, b0, a);
  *c1 = vfmaq_f32(*c1, b1, a);
  *c2 = vfmaq_f32(*c2, b2, a);
}

void ll_micro_neon(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                   int64_t rows, int64_t cols, int first, const float *bias) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  float32x4_t c00 = zero, c01 = zero, c02 = zero, c10 = zero, c11 = zero, c12 = zero;
  float32x4_t c20 = zero, c21 = zero, c22 = zero, c30 = zero, c31 = zero, c32 = zero;
  float32x4_t c40 = zero, c41 = zero, c42 = zero, c50 = zero, c51 = zero, c52 = zero;
  float32x4_t c60 = zero, c61 = zero, c62 = zero, c70 = zero, c71 = zero, c72 = zero;
  for (int64_t p = 0; p < kc; p++) {
    const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
    const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
    fma_row(vdupq_laneq_f32(a0, 0), b0, b1, b2, &c00, &c01, &c02);
    fma_row(vdupq_laneq_f32(a0, 1), b0, b1, b2, &c10, &c11, &c12);
    fma_row(vdupq_laneq_f32(a0, 2), b0, b1, b2, &c20, &c21, &c22);
    fma_row(vdupq_laneq_f32(a0, 3), b0, b1, b2, &c30, &c31, &c32);
    fma_row(vdupq_laneq_f32(a1, 0), b0, b1, b2, &c40, &c41, &c42);
    fma_row(vdupq_laneq_f32(a1, 1), b0, b1, b2, &c50, &c51, &c52);
    fma_row(vdupq_laneq_f32(a1, 2), b0, b1, b2, &c60, &c61, &c62);
    fma_row(vdupq_laneq_f32(a1, 3), b0, b1, b2, &c70, &c71, &c72);
    ap += MR;
    bp += NR;
  }
  float32x4_t acc[MR][3] = {
    {c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32},
    {c40, c41, c42}, {c50, c51, c52}, {c60, c61, c62}, {c70, c71, c72},
  };
  if (rows == MR && cols == NR) {
    const float32x4_t z0 = bias ? vld1q_f32(bias) : zero;
    const float32x4_t z1 = bias ? vld1q_f32(bias + 4) : zero;
    const float32x4_t z2 = bias ? vld1q_f32(bias + 8) : zero;
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      if (first) {
        vst1q_f32(cr, vaddq_f32(acc[r][0], z0));
        vst1q_f32(cr + 4, vaddq_f32(acc[r][1], z1));
        vst1q_f32(cr + 8, vaddq_f32(acc[r][2], z2));
      } else {
        vst1q_f32(cr, vaddq_f32(vld1q_f32(cr), acc[r][0]));
        vst1q_f32(cr + 4, vaddq_f32(vld1q_f32(cr + 4), acc[r][1]));
        vst1q_f32(cr + 8, vaddq_f32(vld1q_f32(cr + 8), acc[r][2]));
      }
    }
    return;
  }
  float tile[MR * NR];
  for (int r = 0; r < MR; r++) {
    vst1q_f32(tile + r * NR, acc[r][0]);
    vst1q_f32(tile + r * NR + 4, acc[r][1]);
    vst1q_f32(tile + r * NR + 8, acc[r][2]);
  }
  ll_store_tile(tile, NR, c, ldc, rows, cols, first, bias);
}
