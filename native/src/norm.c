// LayerNorm (center = 1) and RMSNorm (center = 0) over the last axis, rows × dim, one pass each way
// (tfjs: ~6 kernels forward and ~15 backward per norm). Sums in double; results in float32.
//   forward: μ = mean(x) (0 for RMSNorm), r = 1/√(mean((x − μ)²) + eps), x̂ = (x − μ)·r,
//            y = w·x̂ (+ b); stats[row] = (μ, r) kept for the backward pass
//   backward: g = dy·w, dx = r·(g − mean(g) [LayerNorm only] − x̂·mean(g·x̂)),
//            dw = Σ_rows dy·x̂, db = Σ_rows dy
#include "lora_lab.h"

#include <math.h>
#include <string.h>

void ll_norm_forward(const float *x, const float *w, const float *b, float *y, float *stats,
                     int64_t rows, int64_t dim, float eps, int center) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = x + i * dim;
    float *yi = y + i * dim;
    double mu = 0;
    if (center) {
      for (int64_t j = 0; j < dim; j++) mu += xi[j];
      mu /= (double)dim;
    }
    double ss = 0;
    for (int64_t j = 0; j < dim; j++) {
      const double d = xi[j] - mu;
      ss += d * d;
    }
    const float fmu = (float)mu;
    const float r = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
    for (int64_t j = 0; j < dim; j++) {
      const float xh = (xi[j] - fmu) * r;
      yi[j] = b ? w[j] * xh + b[j] : w[j] * xh;
    }
    stats[2 * i] = fmu;
    stats[2 * i + 1] = r;
  }
}

void ll_norm_backward(const float *dy, const float *x, const float *w, const float *stats, float *dx,
                      float *dw, float *db, int64_t rows, int64_t dim, int center) {
  memset(dw, 0, (size_t)dim * sizeof(float));
  if (db) memset(db, 0, (size_t)dim * sizeof(float));
  for (int64_t i = 0; i < rows; i++) {
    const float *dyi = dy + i * dim, *xi = x + i * dim;
    float *dxi = dx + i * dim;
    const float mu = stats[2 * i], r = stats[2 * i + 1];
    double sg = 0, sgx = 0;
    for (int64_t j = 0; j < dim; j++) {
      const float xh = (xi[j] - mu) * r;
      const float g = dyi[j] * w[j];
      sg += g;
      sgx += (double)g * xh;
      dw[j] += dyi[j] * xh;
      if (db) db[j] += dyi[j];
    }
    const float mg = center ? (float)(sg / (double)dim) : 0.0f;
    const float mgx = (float)(sgx / (double)dim);
    for (int64_t j = 0; j < dim; j++) {
      const float xh = (xi[j] - mu) * r;
      dxi[j] = r * (dyi[j] * w[j] - mg - xh * mgx);
    }
  }
}
