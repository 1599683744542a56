// The product's framework (the BLIS/Goto scheme): op(B) cut into kc × nc blocks and op(A) into
// mc × kc blocks, each packed into micro-panels that the ISA's micro-kernel multiplies; then the
// work spread over the thread pool: the batch entries, or one product's columns, or its rows (the
// threads then sharing one packed op(B)).
//
// Summation order: k is walked in blocks of kc, each block's partial sums (in the micro-kernel, in
// order of p) added to C. It does not depend on how the work is split, so results do not depend on
// the thread count. Results differ from a naive loop by float rounding only.
#include "lora_lab.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
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
      // In tiles of 8 k by every column: each column's 8 floats are one contiguous read, and the
      // tile's writes stay within 8 panel rows.
      int64_t p = 0;
      for (; p + 8 <= kc; p += 8) {
        for (int64_t c = 0; c < cols; c++) {
          const float *src = g->b + (j0 + jr + c) * g->ldb + p0 + p;
          for (int q = 0; q < 8; q++) panel[(p + q) * nr + c] = src[q];
        }
      }
      for (int64_t c = 0; c < cols; c++) {
        const float *src = g->b + (j0 + jr + c) * g->ldb + p0;
        for (int64_t pp = p; pp < kc; pp++) panel[pp * nr + c] = src[pp];
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
// allocating megabytes per call would cost page faults on every product. t_shared holds the packed
// op(B) that the threads of a row-split product read (the calling thread's).
static _Thread_local float *t_bufA = NULL, *t_bufB = NULL, *t_shared = NULL;
static _Thread_local size_t t_capA = 0, t_capB = 0, t_capShared = 0;

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
  free(t_shared);
  t_bufA = t_bufB = t_shared = NULL;
  t_capA = t_capB = t_capShared = 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// Rows [i_begin, i_end) of C, columns j0.. (nc): C (+)= op(A) block · the packed op(B) block (p0, kc),
// packing op(A) mc rows at a time into bufA.
static void rows_times_block(const ll_isa_t *isa, const ll_gemm_t *g, int64_t i_begin, int64_t i_end, int64_t p0, int64_t kc,
                             int64_t j0, int64_t nc, const float *bufB, float *bufA) {
  const int mr = isa->mr, nr = isa->nr;
  const int first = p0 == 0 && !g->accumulate;
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
    if (g->accumulate) return 0;
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
// Independent products (the batch entries, or blocks of one product's columns): each part takes
// the next one until none is left.
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

// Splits one product into `parts` blocks of columns, aligned to the micro-kernel's tile so no tile
// is shared. Each block packs all of op(A) again: that is the shorter operand here. Returns the
// number of blocks written to out.
static int64_t split_columns(const ll_isa_t *isa, const ll_gemm_t *g, int parts, ll_gemm_t *out) {
  const int64_t units = (g->n + isa->nr - 1) / isa->nr;
  if (parts > units) parts = (int)units;
  int64_t count = 0, start = 0;
  for (int p = 0; p < parts; p++) {
    const int64_t end = p == parts - 1 ? g->n : (units * (p + 1) / parts) * isa->nr;
    if (end <= start) continue;
    ll_gemm_t t = *g;
    t.n = end - start;
    t.b = g->transB ? g->b + start * g->ldb : g->b + start;
    t.c = g->c + start;
    t.bias = g->bias ? g->bias + start : NULL;
    out[count++] = t;
    start = end;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// One product split by rows: op(B) is packed once, into a buffer that every part reads, then every
// part multiplies rows by it. The work is claimed, not assigned: by atomic counters each part takes
// op(B)'s micro-panels to pack, then (once all are packed) strips of rows to multiply, as many
// strips as parts, so a part whose thread starts late finds its share done by the others instead of
// making them wait. An op(B) larger than the buffer goes in turns (one nc-column block, as many kc
// blocks as fit); a turn's packing starts when every strip of the previous turn is done.
typedef struct {
  const ll_isa_t *isa;
  const ll_gemm_t *g;
  float *shared;
  int64_t turn_k; // rows of op(B) per turn: a whole number of kc blocks
  int64_t strips; // strips of rows per turn
  _Atomic int64_t panels_claimed, panels_packed, strips_claimed, strips_done; // over all turns so far
  _Atomic int failed;
} rows_job_t;

static inline void cpu_relax(void) {
#if defined(LL_X86)
  __builtin_ia32_pause();
#elif defined(LL_ARM64)
  __asm__ __volatile__("yield");
#endif
}

// Waits for work that another part has claimed and is doing (never for a part that has not started):
// spins a while, as the wait is usually for a panel's packing, then yields the core.
#define LL_SPINS 4096

static void wait_for(_Atomic int64_t *counter, int64_t target) {
  for (int i = 0; atomic_load(counter) < target; i++) {
    if (i < LL_SPINS) cpu_relax();
    else sched_yield();
  }
}

// The next ticket of counter below end, or -1 when none is left.
static int64_t claim(_Atomic int64_t *counter, int64_t end) {
  int64_t c = atomic_load(counter);
  while (c < end) {
    if (atomic_compare_exchange_weak(counter, &c, c + 1)) return c;
  }
  return -1;
}

static void rows_work(void *ctx, int part, int parts) {
  (void)part;
  (void)parts;
  rows_job_t *job = (rows_job_t *)ctx;
  const ll_isa_t *isa = job->isa;
  const ll_gemm_t *g = job->g;
  const int mr = isa->mr, nr = isa->nr;
  const int64_t units = (g->m + mr - 1) / mr; // row tiles; a strip is a whole number of them
  const int64_t mcMax = g->m < isa->mc ? round_up(g->m, mr) : isa->mc;
  float *bufA = grow(&t_bufA, &t_capA, (size_t)(mcMax * min64(g->k, isa->kc)));
  // Without its buffer a part still takes strips (and reports the failure), so nobody waits forever.
  if (!bufA) atomic_store(&job->failed, 1);
  int64_t panel_base = 0, turn = 0;
  for (int64_t j0 = 0; j0 < g->n; j0 += isa->nc) {
    const int64_t nc = min64(g->n - j0, isa->nc);
    const int64_t panels = (nc + nr - 1) / nr;
    for (int64_t t0 = 0; t0 < g->k; t0 += job->turn_k, turn++) {
      const int64_t t1 = min64(g->k, t0 + job->turn_k);
      // The kc block at p0 lies at (p0 - t0)·panels·nr in the buffer: the blocks before it are whole.
      const int64_t turn_panels = (t1 - t0 + isa->kc - 1) / isa->kc * panels;
      wait_for(&job->strips_done, turn * job->strips); // the buffer's last readers are done
      for (int64_t q; (q = claim(&job->panels_claimed, panel_base + turn_panels)) >= 0;) {
        const int64_t p0 = t0 + (q - panel_base) / panels * isa->kc, jr = (q - panel_base) % panels * nr;
        const int64_t kc = min64(t1 - p0, isa->kc);
        pack_b(g, p0, kc, j0 + jr, min64(nc - jr, nr), nr, job->shared + (p0 - t0) * panels * nr + jr * kc);
        atomic_fetch_add(&job->panels_packed, 1);
      }
      panel_base += turn_panels;
      wait_for(&job->panels_packed, panel_base);
      for (int64_t s; (s = claim(&job->strips_claimed, (turn + 1) * job->strips)) >= 0;) {
        const int64_t strip = s - turn * job->strips;
        const int64_t i_begin = units * strip / job->strips * mr;
        const int64_t i_end = strip == job->strips - 1 ? g->m : units * (strip + 1) / job->strips * mr;
        for (int64_t p0 = t0; p0 < t1 && bufA; p0 += isa->kc) {
          const int64_t kc = min64(t1 - p0, isa->kc);
          rows_times_block(isa, g, i_begin, i_end, p0, kc, j0, nc, job->shared + (p0 - t0) * panels * nr, bufA);
        }
        atomic_fetch_add(&job->strips_done, 1);
      }
    }
  }
}

static int gemm_rows(const ll_isa_t *isa, const ll_gemm_t *g, int threads) {
  const int64_t ncMax = g->n < isa->nc ? round_up(g->n, isa->nr) : isa->nc;
  int64_t kblocks = isa->shared_b / (isa->kc * ncMax);
  if (kblocks < 1) kblocks = 1;
  const int64_t turn_k = min64(g->k, kblocks * isa->kc);
  float *shared = grow(&t_shared, &t_capShared, (size_t)(turn_k * ncMax));
  if (!shared) return -1;
  const int parts = (int)min64(threads, (g->m + isa->mr - 1) / isa->mr);
  rows_job_t job;
  job.isa = isa;
  job.g = g;
  job.shared = shared;
  job.turn_k = turn_k;
  job.strips = parts;
  atomic_init(&job.panels_claimed, 0);
  atomic_init(&job.panels_packed, 0);
  atomic_init(&job.strips_claimed, 0);
  atomic_init(&job.strips_done, 0);
  atomic_init(&job.failed, 0);
  ll_pool_run(rows_work, &job, parts);
  return atomic_load(&job.failed) ? -1 : 0;
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
  // One product, taller than wide: its rows, sharing op(B).
  if (batch == 1 && n < m) return gemm_rows(isa, whole, threads);
  // Tasks: the batch entries, or one product's column blocks, one per thread.
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
    ntasks = split_columns(isa, whole, threads, tasks);
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
