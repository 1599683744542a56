// Softmax cross-entropy over rows of logits (a language model's loss, a chunk of rows at a time): per
// row the loss log Σ e^z − z[label], and, where asked, the row overwritten in place by its gradient
// scale · (softmax(z) − onehot(label)). One pass for the maximum, one for the exponentials and their
// sum, one for the scaling: what tfjs does as max, subtract, exp, sum, log, gather, divide, one-hot and
// subtract, each over the whole chunk. The rows are shared among the pool's threads.
#include "lora_lab.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

// Floats of exponentials computed at a time (the exp kernels take non-aliasing arrays).
#define LL_XENT_CHUNK 1024

static float row_max(const float *z, int64_t v) {
  float lanes[LL_LANES];
  for (int l = 0; l < LL_LANES; l++) lanes[l] = -INFINITY;
  int64_t j = 0;
  for (; j + LL_LANES <= v; j += LL_LANES) {
    for (int l = 0; l < LL_LANES; l++) lanes[l] = z[j + l] > lanes[l] ? z[j + l] : lanes[l];
  }
  float m = -INFINITY;
  for (int l = 0; l < LL_LANES; l++) m = lanes[l] > m ? lanes[l] : m;
  for (; j < v; j++) m = z[j] > m ? z[j] : m;
  return m;
}

static void xent_row(const ll_isa_t *isa, float *z, int64_t v, int32_t label, const float *scale, float *loss) {
  float t[LL_XENT_CHUNK];
  const float m = row_max(z, v);
  const float picked = z[label];
  double s = 0;
  for (int64_t j0 = 0; j0 < v; j0 += LL_XENT_CHUNK) {
    const int64_t n = v - j0 < LL_XENT_CHUNK ? v - j0 : LL_XENT_CHUNK;
    for (int64_t j = 0; j < n; j++) t[j] = z[j0 + j] - m;
    float e[LL_XENT_CHUNK];
    isa->exp(t, e, n);
    s += ll_sum_lanes(e, n);
    if (scale) memcpy(z + j0, e, (size_t)n * sizeof(float));
  }
  *loss = (float)((double)m + log(s) - (double)picked);
  if (scale) {
    const float f = (float)((double)*scale / s);
    for (int64_t j = 0; j < v; j++) z[j] *= f;
    z[label] -= *scale;
  }
}

typedef struct {
  const ll_isa_t *isa;
  float *z;
  const int32_t *labels;
  const float *scale;
  float *loss;
  int64_t rows, v;
  _Atomic int64_t next;
} xent_job_t;

static void xent_work(void *ctx, int part, int parts) {
  (void)part;
  (void)parts;
  xent_job_t *job = (xent_job_t *)ctx;
  for (int64_t i; (i = atomic_fetch_add(&job->next, 1)) < job->rows;) {
    xent_row(job->isa, job->z + i * job->v, job->v, job->labels[i], job->scale ? job->scale + i : NULL, job->loss + i);
  }
}

void ll_softmax_xent(const ll_isa_t *isa, float *z, int64_t rows, int64_t v, const int32_t *labels, const float *scale,
                     float *loss, int threads) {
  if (rows == 0) return;
  xent_job_t job = {isa, z, labels, scale, loss, rows, v, 0};
  atomic_init(&job.next, 0);
  ll_pool_run(xent_work, &job, ll_parts_for(rows * v, 1 << 16, threads));
}
