// Frozen weights in native memory. A frozen weight W (row-major [rows, cols], F32, BF16 or F16 as in
// the safetensors file) stays in the bytes it was read into, outside the wasm heap and never widened
// as a whole; the products read it there:
//   mode 0: y [n, rows] = x [n, cols] · Wᵀ   (a Linear's forward; the tied head's logits)
//   mode 1: y [n, cols] = x [n, rows] · W    (its backward dx = dy·W; the tied head's dh)
// BF16/F16 weights are widened a block of whole rows at a time (contiguous in the file) into a
// per-call buffer, and each block is one product of the packed kernel on C in place. Every element
// of C is summed over k in the same order as the in-heap product of the widened weight, so the
// results equal it exactly.
#include "lora_lab.h"

#include <stdlib.h>
#include <string.h>

// Floats per widened block of a BF16/F16 weight (~4 MB), at least one row (mode 0: 16 rows; mode 1: kc rows).
#define LL_FROZEN_BLOCK_FLOATS (1 << 22)

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

// count elements of a stored weight, from element `first`, as float32 into dst. One loop per dtype,
// so that the compiler vectorises the BF16 one (a shift) and F32 is a copy.
static void widen(const ll_frozen_t *w, int64_t first, int64_t count, float *restrict dst) {
  switch (w->dtype) {
    case LL_BF16: {
      const uint8_t *restrict src = w->data + 2 * first;
      for (int64_t i = 0; i < count; i++) {
        uint16_t b;
        memcpy(&b, src + 2 * i, 2);
        const uint32_t u = (uint32_t)b << 16;
        memcpy(dst + i, &u, sizeof u);
      }
      break;
    }
    case LL_F16: {
      const uint8_t *restrict src = w->data + 2 * first;
      for (int64_t i = 0; i < count; i++) {
        uint16_t b;
        memcpy(&b, src + 2 * i, 2);
        dst[i] = half_to_float(b);
      }
      break;
    }
    default:
      memcpy(dst, w->data + 4 * first, (size_t)count * sizeof(float));
  }
}

// Widening a block on the pool's threads: each part takes an equal slice of the block.
typedef struct {
  const ll_frozen_t *w;
  int64_t first, count;
  float *dst;
} widen_job_t;

static void widen_work(void *ctx, int part, int parts) {
  const widen_job_t *job = (const widen_job_t *)ctx;
  const int64_t begin = job->count * part / parts, end = job->count * (part + 1) / parts;
  widen(job->w, job->first + begin, end - begin, job->dst + begin);
}

// Elements a thread widens at least.
#define LL_WIDEN_MIN_PER_THREAD (1 << 16)

static void widen_block(const ll_frozen_t *w, int64_t first, int64_t count, float *dst, int threads) {
  widen_job_t job = {w, first, count, dst};
  ll_pool_run(widen_work, &job, ll_parts_for(count, LL_WIDEN_MIN_PER_THREAD, threads));
}

int ll_frozen_matmul(const ll_isa_t *isa, const ll_frozen_t *w, const float *x, float *y, int64_t n, int mode, int threads) {
  // mode 0: k = cols, outputs = rows; mode 1: k = rows, outputs = cols
  const int64_t k = mode == 0 ? w->cols : w->rows, outs = mode == 0 ? w->rows : w->cols;
  if (n == 0 || outs == 0) return 0;
  ll_gemm_t g = {x, NULL, y, NULL, n, 0, k, k, 0, outs, 0, mode == 0, 0};
  if (w->dtype == LL_F32 && ((uintptr_t)w->data & 3) == 0) {
    g.b = (const float *)w->data;
    g.n = outs;
    g.ldb = w->cols;
    return ll_gemm_batch(isa, &g, 1, 0, 0, threads);
  }
  // Each block is a run of whole rows of W, contiguous in the file, widened in one pass.
  //   mode 0: rows o0.. of W are outputs o0..: a block of C's columns, op(B) = the block transposed.
  //   mode 1: rows p0.. of W are k = p0..: C += x[:, p0..]·block, the blocks a multiple of kc long, so
  //           the sums over k run in the same order as one product over the whole of W.
  const int64_t width = w->cols;
  int64_t block = LL_FROZEN_BLOCK_FLOATS / (width > 0 ? width : 1);
  if (mode == 0) {
    if (block < 16) block = 16;
  } else {
    block = block / isa->kc * isa->kc;
    if (block < isa->kc) block = isa->kc;
  }
  if (block > w->rows) block = w->rows;
  if (width == 0) return ll_gemm_batch(isa, &g, 1, 0, 0, threads); // k = 0 (mode 0): C = 0
  float *buf = (float *)malloc((size_t)(block * width) * sizeof(float));
  if (!buf) return -3;
  int rc = 0;
  for (int64_t r0 = 0; r0 < w->rows && rc == 0; r0 += block) {
    const int64_t nb = w->rows - r0 < block ? w->rows - r0 : block;
    widen_block(w, r0 * width, nb * width, buf, threads);
    g.b = buf;
    g.ldb = width;
    if (mode == 0) {
      g.n = nb;
      g.c = y + r0;
    } else {
      g.a = x + r0;
      g.k = nb;
      g.n = outs;
      g.accumulate = r0 > 0;
    }
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
      widen(w, base, w->cols, out + i * w->cols);
    }
  }
}
