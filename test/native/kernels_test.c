// The native kernels (native/src) tested in C, without Node, so that they can be built with
// AddressSanitizer + UndefinedBehaviorSanitizer (out-of-bounds reads of packed panels, tails of
// vector loops, signed overflow in sizes, bad float → int conversions) and with ThreadSanitizer (the
// thread pool: two callers racing for it, workers taking tasks, threads sharing packed blocks), and
// cross-compiled for arm64 to run under qemu. It links with the kernels' objects
// (`node native/build.mjs --objects DIR`); test/unit/perf/nativeSanitizers.test.ts and
// nativeToolchains.test.ts build and run it.
//
// Every buffer is its own malloc of exactly the elements the call may touch, so a read or write one
// element past an operand is a sanitizer report, not a silent neighbour. Results are checked against
// float64 references with the same tolerances as the JavaScript tests. Prints "ok: …" and exits 0,
// or prints each mismatch and exits 1.
#include "../../native/src/lora_lab.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures = 0;
static _Thread_local uint64_t g_rng = 0x9e3779b97f4a7c15ull; // per thread: the callers of test_pool draw their own

static float rnd(void) {
  // xorshift64*: deterministic, so a failure reproduces.
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return (float)((double)((g_rng * 2685821657736338717ull) >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static float *arr(int64_t n) {
  // malloc(0) may return NULL; the kernels never dereference a zero-length operand.
  float *p = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  for (int64_t i = 0; i < n; i++) p[i] = rnd();
  return p;
}

#define FAIL(...)                                  \
  do {                                             \
    if (g_failures++ < 20) fprintf(stderr, __VA_ARGS__); \
  } while (0)

// ---- gemm ----

static void check_gemm(const ll_isa_t *isa, int64_t m, int64_t n, int64_t k, int flags, int64_t batch, int bias, int threads) {
  const int transA = flags & 1, transB = (flags & 2) != 0, aB = (flags & 4) != 0, bB = (flags & 8) != 0;
  const int64_t sizeA = m * k, sizeB = k * n, sizeC = m * n;
  float *a = arr((aB ? batch : 1) * sizeA), *b = arr((bB ? batch : 1) * sizeB);
  float *bv = bias ? arr(n) : NULL;
  float *c = arr(batch * sizeC);
  const ll_gemm_t whole = {a, b, c, bv, m, n, k, transA ? m : k, transB ? k : n, n, transA, transB, 0};
  if (ll_gemm_batch(isa, &whole, batch, aB, bB, threads) != 0) FAIL("%s: gemm_batch failed (out of memory)\n", isa->name);
  for (int64_t e = 0; e < batch; e++) {
    const float *ae = a + (aB ? e * sizeA : 0), *be = b + (bB ? e * sizeB : 0);
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) {
        double s = bv ? bv[j] : 0, mag = bv ? fabs(bv[j]) : 0;
        for (int64_t p = 0; p < k; p++) {
          const double x = transA ? ae[p * m + i] : ae[i * k + p];
          const double y = transB ? be[j * k + p] : be[p * n + j];
          s += x * y;
          mag += fabs(x * y);
        }
        const double got = c[e * sizeC + i * n + j];
        const double tol = (double)(k + 2) * ldexp(1.0, -24) * mag + 1e-30;
        if (!(fabs(got - s) <= tol)) {
          FAIL("%s gemm m=%lld n=%lld k=%lld flags=%d batch=%lld bias=%d threads=%d: c[%lld][%lld][%lld] = %.9g, expected %.9g\n", isa->name,
               (long long)m, (long long)n, (long long)k, flags, (long long)batch, bias, threads, (long long)e, (long long)i, (long long)j, got, s);
          goto done;
        }
      }
    }
  }
done:
  free(a);
  free(b);
  free(bv);
  free(c);
}

// The ISA's kernels with small blocks: a modest product then spans many kc × nc blocks of B, which
// the threads of a row split pack together, a few blocks per turn in their shared buffer.
static ll_isa_t small_blocks(const ll_isa_t *isa) {
  ll_isa_t small = *isa;
  small.kc = 16;
  small.mc = 2 * isa->mr;
  small.nc = 3 * isa->nr;
  small.shared_b = 4 * small.kc * small.nc;
  return small;
}

static void test_gemm(const ll_isa_t *isa) {
  static const int64_t sizes[] = {0, 1, 3, 7, 17, 33, 70};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  int i = 0;
  for (int x = 0; x < ns; x++) {
    for (int y = 0; y < ns; y++) {
      for (int z = 0; z < ns; z++, i++) {
        const int flags = (i * 5) % 16;
        check_gemm(isa, sizes[x], sizes[y], sizes[z], flags, flags & 12 ? 3 : 1 + i % 2, i % 3 == 0, 1 + i % 3);
      }
    }
  }
  // Across the KC, MC and NC blocks, and large enough that 2-3 threads split one product (by rows
  // and by columns) or share the batch entries.
  check_gemm(isa, 150, 2100, 260, 2, 1, 1, 3);
  check_gemm(isa, 300, 120, 300, 1, 1, 0, 3);
  check_gemm(isa, 100, 100, 100, 12, 8, 1, 2);
  const ll_isa_t small = small_blocks(isa);
  check_gemm(&small, 333, 125, 300, 0, 1, 1, 3);
  check_gemm(&small, 331, 127, 301, 3, 1, 0, 3);
  check_gemm(&small, 120, 333, 300, 2, 1, 1, 3);
}

// ---- exp, GELU ----

static void test_exp(const ll_isa_t *isa) {
  const int64_t count = 4099; // not a multiple of any vector width: the loops' tails run
  float *x = arr(count), *y = arr(count);
  for (int64_t i = 0; i < count; i++) x[i] = -110.0f + 210.0f * (float)i / (float)(count - 1);
  x[0] = NAN;
  x[1] = INFINITY;
  x[2] = -INFINITY;
  x[3] = 1e30f;
  x[4] = -1e30f;
  for (int off = 0; off < 3; off++) {
    isa->exp(x + off, y + off, count - off);
    for (int64_t i = off; i < count; i++) {
      const double want = exp((double)x[i]);
      const double got = y[i];
      if (isnan(x[i])) {
        if (!isnan(got)) FAIL("%s exp(NaN) = %g\n", isa->name, got);
        continue;
      }
      const double ulp = fmax(fabs((double)(float)want) * ldexp(1.0, -23), ldexp(1.0, -149));
      if (isinf(want) ? got != want : !(fabs(got - want) <= ulp)) {
        FAIL("%s exp(%.9g) = %.9g, expected %.9g\n", isa->name, x[i], got, want);
        break;
      }
    }
  }
  free(x);
  free(y);
}

static void test_gelu(const ll_isa_t *isa) {
  const int64_t count = 1027;
  float *x = arr(count), *y = arr(count), *s = arr(count), *dy = arr(count), *dx = arr(count);
  for (int64_t i = 0; i < count; i++) x[i] = -12.0f + 24.0f * (float)i / (float)(count - 1);
  isa->gelu(x, y, s, count);
  isa->gelu_grad(dy, x, s, dx, count);
  const double c = sqrt(2.0 / 3.14159265358979323846), kk = 0.044715;
  for (int64_t i = 0; i < count; i++) {
    const double xi = x[i];
    const double sig = 1.0 / (1.0 + exp(-2.0 * c * (xi + kk * xi * xi * xi)));
    const double yy = xi * sig;
    const double g = dy[i] * (sig + xi * sig * (1.0 - sig) * 2.0 * c * (1.0 + 3.0 * kk * xi * xi));
    if (!(fabs(y[i] - yy) <= 1e-6 * fmax(1.0, fabs(yy)))) FAIL("%s gelu(%.9g) = %.9g, expected %.9g\n", isa->name, xi, y[i], yy);
    if (!(fabs(dx[i] - g) <= 1e-5 * fmax(1.0, fabs(g)))) FAIL("%s gelu'(%.9g) = %.9g, expected %.9g\n", isa->name, xi, dx[i], g);
  }
  free(x);
  free(y);
  free(s);
  free(dy);
  free(dx);
}

// ---- LayerNorm / RMSNorm ----

static void test_norm(int center, int bias) {
  const int64_t rows = 13, dim = 37;
  const int64_t n = rows * dim;
  float *x = arr(n), *w = arr(dim), *b = bias ? arr(dim) : NULL, *y = arr(n), *st = arr(2 * rows);
  float *dy = arr(n), *dx = arr(n), *dw = arr(dim), *db = bias ? arr(dim) : NULL;
  const float eps = 1e-5f;
  ll_norm_forward(x, w, b, y, st, rows, dim, eps, center);
  ll_norm_backward(dy, x, w, st, dx, dw, db, rows, dim, center);
  double *rdw = (double *)calloc((size_t)dim, sizeof(double)), *rdb = (double *)calloc((size_t)dim, sizeof(double));
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = x + i * dim, *dyi = dy + i * dim;
    double mu = 0, ss = 0;
    if (center) {
      for (int64_t j = 0; j < dim; j++) mu += xi[j];
      mu /= (double)dim;
    }
    for (int64_t j = 0; j < dim; j++) ss += (xi[j] - mu) * (xi[j] - mu);
    const double r = 1.0 / sqrt(ss / (double)dim + eps);
    double sg = 0, sgx = 0;
    for (int64_t j = 0; j < dim; j++) {
      const double xh = (xi[j] - mu) * r;
      const double want = w[j] * xh + (b ? b[j] : 0);
      if (!(fabs(y[i * dim + j] - want) <= 1e-5 * fmax(1.0, fabs(want)))) FAIL("norm center=%d bias=%d: y[%lld][%lld] = %.9g, expected %.9g\n", center, bias, (long long)i, (long long)j, y[i * dim + j], want);
      sg += dyi[j] * w[j];
      sgx += dyi[j] * w[j] * xh;
      rdw[j] += dyi[j] * xh;
      rdb[j] += dyi[j];
    }
    for (int64_t j = 0; j < dim; j++) {
      const double xh = (xi[j] - mu) * r;
      const double want = r * (dyi[j] * w[j] - (center ? sg / (double)dim : 0) - xh * sgx / (double)dim);
      if (!(fabs(dx[i * dim + j] - want) <= 1e-5 * fmax(1.0, fabs(want)))) FAIL("norm center=%d bias=%d: dx[%lld][%lld] = %.9g, expected %.9g\n", center, bias, (long long)i, (long long)j, dx[i * dim + j], want);
    }
  }
  for (int64_t j = 0; j < dim; j++) {
    if (!(fabs(dw[j] - rdw[j]) <= 1e-5 * fmax(1.0, fabs(rdw[j])))) FAIL("norm center=%d: dw[%lld] = %.9g, expected %.9g\n", center, (long long)j, dw[j], rdw[j]);
    if (db && !(fabs(db[j] - rdb[j]) <= 1e-5 * fmax(1.0, fabs(rdb[j])))) FAIL("norm center=%d: db[%lld] = %.9g, expected %.9g\n", center, (long long)j, db[j], rdb[j]);
  }
  free(rdw);
  free(rdb);
  free(x);
  free(w);
  free(b);
  free(y);
  free(st);
  free(dy);
  free(dx);
  free(dw);
  free(db);
}

// ---- the thread pool, from two callers at once ----

typedef struct {
  const ll_isa_t *isa;
  int id;
} caller_arg;

static void *caller(void *p) {
  const caller_arg *arg = (const caller_arg *)p;
  // Each call needs ≥ 3 threads' worth of work, so both callers try to take the pool; the one that
  // does not runs alone. Both must get exact products either way: split by columns, by rows (the
  // threads sharing packed blocks of B; many of them with small blocks), or by batch entries.
  const ll_isa_t small = small_blocks(arg->isa);
  const int threads = atomic_load(&ll_threads), id = arg->id;
  check_gemm(arg->isa, 160 + 8 * id, 200, 260, 0, 1, 1, threads);
  check_gemm(arg->isa, 260, 120 + 8 * id, 400, 1, 1, 0, threads);
  check_gemm(arg->isa, 160 + 8 * id, 200, 260, 2, 2, 1, threads);
  check_gemm(&small, 260, 120 + 8 * id, 400, 3, 1, 1, threads);
  check_gemm(&small, 261, 121 + 8 * id, 399, 2, 1, 0, threads);
  check_gemm(&small, 160 + 8 * id, 200, 260, 1, 1, 1, threads);
  // This thread's packing buffers (worker threads keep theirs for the process's lifetime).
  ll_free_thread_buffers();
  return NULL;
}

static void test_pool(const ll_isa_t *isa) {
  pthread_t th[2];
  caller_arg args[2] = {{isa, 0}, {isa, 1}};
  for (int i = 0; i < 2; i++) {
    if (pthread_create(&th[i], NULL, caller, &args[i]) != 0) {
      FAIL("pthread_create failed\n");
      return;
    }
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
}

int main(int argc, char **argv) {
  // "pool" runs only the thread-pool test (ThreadSanitizer makes the rest slow and adds nothing).
  const int poolOnly = argc > 1 && strcmp(argv[1], "pool") == 0;
  char list[64] = "";
  atomic_store(&ll_threads, 3); // what setThreads(3) sets; the pool test's callers use it
  if (!ll_best_isa() || !ll_cpu_has(ll_best_isa()->name)) FAIL("ll_best_isa() is not one this CPU has\n");
  for (size_t i = 0; i < ll_isa_count; i++) {
    const char *name = ll_isa_names[i];
    const ll_isa_t *isa = ll_isa_by_name(name);
    if (!isa || !ll_cpu_has(name)) continue;
    ll_isa = isa;
    if (!poolOnly) {
      test_gemm(isa);
      test_exp(isa);
      test_gelu(isa);
    }
    test_pool(isa);
    strcat(list, list[0] ? ", " : "");
    strcat(list, name);
  }
  if (!poolOnly) {
    for (int center = 0; center < 2; center++) {
      for (int bias = 0; bias < 2; bias++) test_norm(center, bias);
    }
  }
  ll_free_thread_buffers();
  if (g_failures) {
    fprintf(stderr, "%d failure(s)\n", g_failures);
    return 1;
  }
  printf("ok: %s (%s)\n", poolOnly ? "thread pool" : "gemm, exp, gelu, norms, thread pool", list);
  return 0;
}
