// Frozen weights in native memory. A frozen weight W (row-major [rows, cols], F32, BF16 or F16 as in
// the safetensors file) stays in the bytes it was read into, outside the wasm heap and never widened
// as a whole; the products read it there:
//   mode 0: y [n, rows] = x [n, cols] · Wᵀ   (a Linear's forward; the tied head's logits)
//   mode 1: y [n, cols] = x [n, rows] · W    (its backward dx = dy·W; the tied head's dh)
// BF16/F16 weights are widened a block of output columns at a time into a per-call buffer, and each
// block is one product of the packed kernel with C's leading dimension the whole row. Every element
// of C is summed over k in the same order as the in-heap product of the widened weight, so the
// results equal it exactly.
#include "lora_lab.h"

#include <stdlib.h>
#include <string.h>

// Columns of C per widened block: ~4 MB of float32 per block for BF16/F16 weights.
#define LL_FROZEN_BLOCK_FLOATS (1 << 20)

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) {
    // zero or subnormal: man · 2^-24, exact in float32
    const float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  const uint32_t u = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline float frozen_at(const ll_frozen_t *w, int64_t i) {
  switch (w->dtype) {
    case LL_BF16: {
      uint16_t b;
      memcpy(&b, w->data + 2 * i, 2);
      const uint32_t u = (uint32_t)b << 16;
      float f;
      memcpy(&f, &u, sizeof f);
      return f;
    }
    case LL_F16: {
      uint16_t b;
      memcpy(&b, w->data + 2 * i, 2);
      return half_to_float(b);
    }
    default: {
      float f;
      memcpy(&f, w->data + 4 * i, 4);
      return f;
    }
  }
}

int ll_frozen_matmul(const ll_isa_t *isa, const ll_frozen_t *w, const float *x, float *y, int64_t n, int mode, int threads) {
  // mode 0: k = cols, outputs = rows; mode 1: k = rows, outputs = cols
  const int64_t k = mode == 0 ? w->cols : w->rows, outs = mode == 0 ? w->rows : w->cols;
  if (n == 0 || outs == 0) return 0;
  ll_gemm_t g = {x, NULL, y, NULL, n, 0, k, k, 0, outs, 0, mode == 0};
  if (w->dtype == LL_F32 && ((uintptr_t)w->data & 3) == 0) {
    g.b = (const float *)w->data;
    g.n = outs;
    g.ldb = w->cols;
    return ll_gemm_batch(isa, &g, 1, 0, 0, threads);
  }
  int64_t block = LL_FROZEN_BLOCK_FLOATS / (k > 0 ? k : 1);
  if (block < 16) block = 16;
  if (block > outs) block = outs;
  float *buf = (float *)malloc((size_t)(block * (k > 0 ? k : 1)) * sizeof(float));
  if (!buf) return -3;
  int rc = 0;
  for (int64_t o0 = 0; o0 < outs && rc == 0; o0 += block) {
    const int64_t nb = outs - o0 < block ? outs - o0 : block;
    if (mode == 0) {
      // rows o0.. of W, contiguous: buf [nb, k], used transposed
      for (int64_t r = 0; r < nb; r++) {
        for (int64_t p = 0; p < k; p++) buf[r * k + p] = frozen_at(w, (o0 + r) * w->cols + p);
      }
      g.ldb = k;
    } else {
      // columns o0.. of W: buf [k, nb]
      for (int64_t p = 0; p < k; p++) {
        for (int64_t j = 0; j < nb; j++) buf[p * nb + j] = frozen_at(w, p * w->cols + o0 + j);
      }
      g.ldb = nb;
    }
    g.b = buf;
    g.n = nb;
    g.c = y + o0;
    rc = ll_gemm_batch(isa, &g, 1, 0, 0, threads);
  }
  free(buf);
  return rc;
}

void ll_frozen_gather(const ll_frozen_t *w, const int32_t *idx, int64_t count, float *out) {
  for (int64_t i = 0; i < count; i++) {
    const int64_t base = (int64_t)idx[i] * w->cols;
    if (w->dtype == LL_F32) {
      memcpy(out + i * w->cols, w->data + 4 * base, (size_t)w->cols * 4);
    } else {
      for (int64_t j = 0; j < w->cols; j++) out[i * w->cols + j] = frozen_at(w, base + j);
    }
  }
}
