// The product's framework (the BLIS/Goto scheme): op(B) cut into kc × nc blocks and op(A) into
// mc × kc blocks, each packed into micro-panels that the ISA's micro-kernel multiplies; then the
// work spread over the thread pool: the batch entries, or blocks of one product's rows or columns.
//
// Summation order: k is walked in blocks of kc, each block's partial sums (in the micro-kernel, in
// order of p) added to C. It does not depend on how the work is split, so results do not depend on
// the thread count. Results differ from a naive loop by float rounding only.
#include "lora_lab.h"

#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#define LL_ALIGN 64
// Below this many floating-point operations per thread, waking the pool costs more than it saves
// (test/bench/README.md has the measurement).
#define LL_MIN_FLOPS_PER_THREAD 8.0e6

_Atomic int ll_threads = 1;

// ---------------------------------------------------------------------------------------------
// Packing. A block of op(A) (rows i0.., mc × kc) becomes MR-row micro-panels, each kc columns of MR
// consecutive floats; a block of op(B) (kc × nc) becomes NR-column micro-panels, kc rows of NR. Rows
// and columns past the edge are zero, so the micro-kernels never branch on the edge.

static void pack_a(const ll_gemm_t *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float *dst) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int64_t rows = mc - ir < mr ? mc - ir : mr;
    float *panel = dst + ir * kc;
    if (!g->transA) {
      // A stored m×k: row i is contiguous along p.
      for (int64_t r = 0; r < rows; r++) {
        const float *src = g->a + (i0 + ir + r) * g->lda + p0;
        for (int64_t p = 0; p < kc; p++) panel[p * mr + r] = src[p];
      }
    } else {
      // A stored k×m: column i of op(A) is contiguous along i for a fixed p.
      for (int64_t p = 0; p < kc; p++) {
        const float *src = g->a + (p0 + p) * g->lda + i0 + ir;
        for (int64_t r = 0; r < rows; r++) panel[p * mr + r] = src[r];
      }
    }
    if (rows < mr) {
      for (int64_t p = 0; p < kc; p++) {
        for (int64_t r = rows; r < mr; r++) panel[p * mr + r] = 0.0f;
      }
    }
  }
}

static void pack_b(const ll_gemm_t *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float *dst) {
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t cols = nc - jr < nr ? nc - jr : nr;
    float *panel = dst + jr * kc;
    if (!g->transB) {
      // B stored k×n: row p holds the panel's cols consecutively.
      for (int64_t p = 0; p < kc; p++) {
        const float *src = g->b + (p0 + p) * g->ldb + j0 + jr;
        float *d = panel + p * nr;
        memcpy(d, src, (size_t)cols * sizeof(float));
        for (int64_t c = cols; c < nr; c++) d[c] = 0.0f;
      }
    } else {
      // B stored n×k: column j of op(B) is row j of storage.
      for (int64_t c = 0; c < cols; c++) {
        const float *src = g->b + (j0 + jr + c) * g->ldb + p0;
        for (int64_t p = 0; p < kc; p++) panel[p * nr + c] = src[p];
      }
      if (cols < nr) {
        for (int64_t p = 0; p < kc; p++) {
          for (int64_t c = cols; c < nr; c++) panel[p * nr + c] = 0.0f;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Packing buffers, one set per thread (a worker thread has its own), grown on demand and kept:
// allocating megabytes per call would cost page faults on every product.
static _Thread_local float *t_bufA = NULL, *t_bufB = NULL;
static _Thread_local size_t t_capA = 0, t_capB = 0;

static float *grow(float **buf, size_t *cap, size_t floats) {
  if (*cap >= floats) return *buf;
  free(*buf);
  size_t bytes = (floats * sizeof(float) + LL_ALIGN - 1) / LL_ALIGN * LL_ALIGN;
  *buf = (float *)aligned_alloc(LL_ALIGN, bytes);
  *cap = *buf ? floats : 0;
  return *buf;
}

void ll_free_thread_buffers(void) {
  free(t_bufA);
  free(t_bufB);
  t_bufA = t_bufB = NULL;
  t_capA = t_capB = 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// Rows [i_begin, i_end) of C, columns j0.. (nc): C (+)= op(A) block · the packed op(B) block (p0, kc),
// packing op(A) mc rows at a time into bufA.
static void rows_times_block(const ll_isa_t *isa, const ll_gemm_t *g, int64_t i_begin, int64_t i_end, int64_t p0, int64_t kc,
                             int64_t j0, int64_t nc, const float *bufB, float *bufA) {
  const int mr = isa->mr, nr = isa->nr;
  const int first = p0 == 0;
  for (int64_t i0 = i_begin; i0 < i_end; i0 += isa->mc) {
    const int64_t mc = min64(i_end - i0, isa->mc);
    pack_a(g, i0, mc, p0, kc, mr, bufA);
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t cols = min64(nc - jr, nr);
      const float *bias = first && g->bias ? g->bias + j0 + jr : NULL;
      for (int64_t ir = 0; ir < mc; ir += mr) {
        const int64_t rows = min64(mc - ir, mr);
        isa->micro(kc, bufA + ir * kc, bufB + jr * kc, g->c + (i0 + ir) * g->ldc + j0 + jr, g->ldc, rows, cols, first, bias);
      }
    }
  }
}

// One product on this thread. Returns 0, or -1 when the packing buffers could not be allocated.
static int gemm_one(const ll_isa_t *isa, const ll_gemm_t *g) {
  const int64_t m = g->m, n = g->n, k = g->k;
  if (m == 0 || n == 0) return 0;
  if (k == 0) {
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) g->c[i * g->ldc + j] = g->bias ? g->bias[j] : 0.0f;
    }
    return 0;
  }
  const int64_t kcMax = min64(k, isa->kc);
  const int64_t mcMax = m < isa->mc ? round_up(m, isa->mr) : isa->mc;
  const int64_t ncMax = n < isa->nc ? round_up(n, isa->nr) : isa->nc;
  float *bufA = grow(&t_bufA, &t_capA, (size_t)(mcMax * kcMax));
  float *bufB = grow(&t_bufB, &t_capB, (size_t)(ncMax * kcMax));
  if (!bufA || !bufB) return -1;
  for (int64_t j0 = 0; j0 < n; j0 += isa->nc) {
    const int64_t nc = min64(n - j0, isa->nc);
    for (int64_t p0 = 0; p0 < k; p0 += isa->kc) {
      const int64_t kc = min64(k - p0, isa->kc);
      pack_b(g, p0, kc, j0, nc, isa->nr, bufB);
      rows_times_block(isa, g, 0, m, p0, kc, j0, nc, bufB, bufA);
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Independent products (the batch entries, or blocks of one product's rows or columns): each part
// takes the next one until none is left.
typedef struct {
  const ll_isa_t *isa;
  const ll_gemm_t *tasks;
  int64_t count;
  _Atomic int64_t next;
  _Atomic int failed;
} tasks_job_t;

static void tasks_work(void *ctx, int part, int parts) {
  (void)part;
  (void)parts;
  tasks_job_t *job = (tasks_job_t *)ctx;
  for (;;) {
    const int64_t t = atomic_fetch_add(&job->next, 1);
    if (t >= job->count) return;
    if (gemm_one(job->isa, &job->tasks[t]) != 0) atomic_store(&job->failed, 1);
  }
}

// Splits one product into `parts` blocks of rows (or columns, whichever is longer), aligned to the
// micro-kernel's tile so no tile is shared. Each block packs its own panels, so the shorter operand
// is packed once per block. Returns the number of blocks written to out.
static int64_t split_product(const ll_isa_t *isa, const ll_gemm_t *g, int parts, ll_gemm_t *out) {
  const int byCols = g->n >= g->m;
  const int64_t len = byCols ? g->n : g->m;
  const int64_t unit = byCols ? isa->nr : isa->mr;
  const int64_t units = (len + unit - 1) / unit;
  if (parts > units) parts = (int)units;
  int64_t count = 0, start = 0;
  for (int p = 0; p < parts; p++) {
    const int64_t end = p == parts - 1 ? len : (units * (p + 1) / parts) * unit;
    if (end <= start) continue;
    ll_gemm_t t = *g;
    if (byCols) {
      t.n = end - start;
      t.b = g->transB ? g->b + start * g->ldb : g->b + start;
      t.c = g->c + start;
      t.bias = g->bias ? g->bias + start : NULL;
    } else {
      t.m = end - start;
      t.a = g->transA ? g->a + start : g->a + start * g->lda;
      t.c = g->c + start * g->ldc;
    }
    out[count++] = t;
    start = end;
  }
  return count;
}

int ll_gemm_batch(const ll_isa_t *isa, const ll_gemm_t *whole, int64_t batch, int aBatched, int bBatched, int threads) {
  const int64_t m = whole->m, n = whole->n, k = whole->k;
  const int64_t sizeA = m * k, sizeB = k * n, sizeC = m * n;
  if (batch == 0 || sizeC == 0) return 0;
  const double flops = 2.0 * (double)batch * (double)m * (double)n * (double)k;
  if (flops < LL_MIN_FLOPS_PER_THREAD * threads) {
    threads = (int)(flops / LL_MIN_FLOPS_PER_THREAD);
    if (threads < 1) threads = 1;
  }
  if (batch == 1 && threads == 1) return gemm_one(isa, whole);
  // Tasks: the batch entries, or one product in blocks, one per thread.
  const int64_t count = batch > 1 ? batch : threads;
  ll_gemm_t *tasks = (ll_gemm_t *)malloc((size_t)count * sizeof(ll_gemm_t));
  if (!tasks) return -2;
  int64_t ntasks;
  if (batch > 1) {
    for (int64_t e = 0; e < batch; e++) {
      tasks[e] = *whole;
      tasks[e].a = whole->a && aBatched ? whole->a + e * sizeA : whole->a;
      tasks[e].b = whole->b && bBatched ? whole->b + e * sizeB : whole->b;
      tasks[e].c = whole->c + e * sizeC;
    }
    ntasks = batch;
  } else {
    ntasks = split_product(isa, whole, threads, tasks);
  }
  tasks_job_t job;
  job.isa = isa;
  job.tasks = tasks;
  job.count = ntasks;
  atomic_init(&job.next, 0);
  atomic_init(&job.failed, 0);
  ll_pool_run(tasks_work, &job, (int)min64(threads, ntasks));
  free(tasks);
  return atomic_load(&job.failed) ? -1 : 0;
}
