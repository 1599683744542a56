// exp and GELU over float32 arrays, compiled once per instruction set (native/build.mjs names it with
// -DLL_ISA=generic|avx2|avx512 and enables that set): the same branch-free C, vectorised by the
// compiler for each. -fno-trapping-math lets it turn the selects below into vector blends.
#include "lora_lab.h"

#include <string.h>

#ifndef LL_ISA
#error "compile with -DLL_ISA=<instruction set>: native/build.mjs builds this file once per set"
#endif
#define LL_PASTE(prefix, isa) prefix##_##isa
#define LL_NAME(prefix, isa) LL_PASTE(prefix, isa)

// e^x of one float. Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n
// applied in two halves so that results down to the subnormals are right. Error ≤ 1 ulp against a
// float64 exp over the normal range; exp(NaN) = NaN, exp(+∞) = +∞, exp(−∞) = 0, overflow → +∞,
// underflow → 0.
static inline float ll_expf(float x) {
  const int nan = x != x;
  float xc = nan ? 0.0f : x;
  xc = xc > 88.8f ? 88.8f : xc;
  xc = xc < -104.0f ? -104.0f : xc;
  const float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t n = (int32_t)fn;
  const int32_t n1 = n >> 1, n2 = n - n1;
  const int32_t e1 = (n1 + 127) << 23, e2 = (n2 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &e1, sizeof s1);
  memcpy(&s2, &e2, sizeof s2);
  const float y = p * s1 * s2;
  return nan ? x : y;
}

// GELU, tanh approximation (GPT-2's gelu_new), as the engine computes it (src/engine/kernels/gelu.ts):
//   z = 2c·(x + k·x³), s = σ(z) = 1 / (1 + e^(−z)), y = x·s          (c = √(2/π), k = 0.044715)
//   dx = dy·(s + x·s·(1 − s)·2c·(1 + 3k·x²))
static const float GELU_C2 = 1.5957691216057308f; // 2·√(2/π)
static const float GELU_K = 0.044715f;

void LL_NAME(ll_exp, LL_ISA)(const float *restrict src, float *restrict dst, int64_t count) {
  for (int64_t i = 0; i < count; i++) dst[i] = ll_expf(src[i]);
}

void LL_NAME(ll_gelu, LL_ISA)(const float *restrict x, float *restrict y, float *restrict s, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float xi = x[i];
    const float z = (xi * (xi * xi * GELU_K + 1.0f)) * GELU_C2;
    const float si = 1.0f / (1.0f + ll_expf(-z));
    s[i] = si;
    y[i] = xi * si;
  }
}

void LL_NAME(ll_gelu_grad, LL_ISA)(const float *restrict dy, const float *restrict x, const float *restrict s,
                                   float *restrict dx, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float xi = x[i], si = s[i];
    const float dz = (xi * xi * (3.0f * GELU_K) + 1.0f) * GELU_C2;
    dx[i] = dy[i] * (si + xi * (si * (1.0f - si)) * dz);
  }
}
