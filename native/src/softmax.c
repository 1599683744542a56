// Attention's softmax over rows of scores, each row one pass per step instead of tfjs's divide, add,
// max, subtract, exp, sum and divide kernels (and their gradients) over the whole [batch, heads, T, S]
// tensor:
//   forward  p[r, j] = softmax_j(s[r, j] / divisor + mask[r mod maskRows, j])
//   backward ds[r, j] = p[r, j] · (dp[r, j] − Σ_k dp[r, k] p[r, k]) / divisor
// The mask (additive: 0 or a large negative number) is one [maskRows, cols] matrix repeated over the
// leading dimensions. The rows are shared among the pool's threads; each row is done by one thread, so
// the results do not depend on the thread count.
#include "lora_lab.h"

#include <math.h>
#include <stdatomic.h>

#define LL_SOFTMAX_CHUNK 1024

static void softmax_row(const ll_isa_t *isa, const float *s, const float *mask, float *p, int64_t cols, float divisor) {
  float t[LL_SOFTMAX_CHUNK];
  // p = s / divisor + mask, and its maximum
  float lanes[LL_LANES];
  for (int l = 0; l < LL_LANES; l++) lanes[l] = -INFINITY;
  int64_t j = 0;
  for (; j + LL_LANES <= cols; j += LL_LANES) {
    for (int l = 0; l < LL_LANES; l++) {
      const float x = s[j + l] / divisor + (mask ? mask[j + l] : 0.0f);
      p[j + l] = x;
      lanes[l] = x > lanes[l] ? x : lanes[l];
    }
  }
  float m = -INFINITY;
  for (int l = 0; l < LL_LANES; l++) m = lanes[l] > m ? lanes[l] : m;
  for (; j < cols; j++) {
    const float x = s[j] / divisor + (mask ? mask[j] : 0.0f);
    p[j] = x;
    m = x > m ? x : m;
  }
  // p = e^(p − max), summed
  double sum = 0;
  for (int64_t j0 = 0; j0 < cols; j0 += LL_SOFTMAX_CHUNK) {
    const int64_t n = cols - j0 < LL_SOFTMAX_CHUNK ? cols - j0 : LL_SOFTMAX_CHUNK;
    for (int64_t q = 0; q < n; q++) t[q] = p[j0 + q] - m;
    isa->exp(t, p + j0, n);
    sum += ll_sum_lanes(p + j0, n);
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t q = 0; q < cols; q++) p[q] *= inv;
}

static void softmax_row_grad(const float *p, const float *dp, float *ds, int64_t cols, float divisor) {
  float acc[LL_LANES] = {0};
  int64_t j = 0;
  for (; j + LL_LANES <= cols; j += LL_LANES) {
    for (int l = 0; l < LL_LANES; l++) acc[l] += p[j + l] * dp[j + l];
  }
  double dot = 0;
  for (int l = 0; l < LL_LANES; l++) dot += acc[l];
  for (; j < cols; j++) dot += (double)p[j] * dp[j];
  const float d = (float)dot;
  for (int64_t q = 0; q < cols; q++) ds[q] = p[q] * (dp[q] - d) / divisor;
}

typedef struct {
  const ll_isa_t *isa;
  const float *a, *mask, *b;
  float *out;
  int64_t rows, cols, mask_rows;
  float divisor;
  int grad;
  _Atomic int64_t next;
} softmax_job_t;

static void softmax_work(void *ctx, int part, int parts) {
  (void)part;
  (void)parts;
  softmax_job_t *job = (softmax_job_t *)ctx;
  const int64_t c = job->cols;
  for (int64_t r; (r = atomic_fetch_add(&job->next, 1)) < job->rows;) {
    if (job->grad) {
      softmax_row_grad(job->a + r * c, job->b + r * c, job->out + r * c, c, job->divisor);
    } else {
      softmax_row(job->isa, job->a + r * c, job->mask ? job->mask + (r % job->mask_rows) * c : NULL, job->out + r * c, c, job->divisor);
    }
  }
}

static void softmax_run(softmax_job_t *job, int threads) {
  atomic_init(&job->next, 0);
  ll_pool_run(softmax_work, job, ll_parts_for(job->rows * job->cols, 1 << 15, threads));
}

void ll_softmax_rows(const ll_isa_t *isa, const float *s, const float *mask, int64_t mask_rows, float *p, int64_t rows, int64_t cols,
                     float divisor, int threads) {
  if (rows == 0 || cols == 0) return;
  softmax_job_t job = {isa, s, mask, NULL, p, rows, cols, mask_rows > 0 ? mask_rows : 1, divisor, 0, 0};
  softmax_run(&job, threads);
}

void ll_softmax_rows_grad(const float *p, const float *dp, float *ds, int64_t rows, int64_t cols, float divisor, int threads) {
  if (rows == 0 || cols == 0) return;
  softmax_job_t job = {NULL, p, NULL, dp, ds, rows, cols, 1, divisor, 1, 0};
  softmax_run(&job, threads);
}
