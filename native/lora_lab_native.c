// lora-lab-native: single-precision matrix products for the tfjs wasm backend.
//
// Why: WebAssembly SIMD is 128 bits wide. On a core with 256- or 512-bit FMA units (AVX2, AVX-512)
// the best wasm matmul (XNNPACK) reaches about a third to a half of what the core can do, and the
// LoRA workloads spend most of their time in products with the frozen weights and in attention.
// This addon computes C = op(A)·op(B) (+ bias) with a cache-blocked, packed kernel (the BLIS/Goto
// scheme) for AVX-512, AVX2+FMA, or portable C, chosen at load time from what the CPU supports.
// It also computes exp over float32 arrays (softmax, cross-entropy). It is an optional accelerator:
// src/runs/nativeLoader.ts loads it where it was built, and the engine falls back to the pure wasm
// kernels, and says so, where it was not.
//
// The product, row-major, per batch entry e:
//   C[e] (m×n) = op(A[e]) (m×k) · op(B[e]) (k×n)  [+ bias (n), added to every row]
//   op(A) = A (stored m×k) or Aᵀ (stored k×m, transA); op(B) = B (k×n) or Bᵀ (n×k, transB);
//   A[e] = A[0] for every e when A is not batched (likewise B): a weight shared by the batch.
// Summation order: k is walked in blocks of KC, each block's partial sums (fused multiply-adds in
// order of p) added to C. Results differ from a naive loop by float rounding only.
//
// JS API (N-API, context-aware: loads in worker threads):
//   gemm(a, aOff, b, bOff, c, cOff, bias|null, biasOff, batch, m, n, k, flags) → undefined
//     a, b, c, bias: Float32Array; *Off: element offsets into them (a wasm heap holds all four);
//     flags: 1 transA, 2 transB, 4 A batched, 8 B batched. Throws RangeError/TypeError naming the
//     argument when a size, an offset or a type is wrong, or when C overlaps an input.
//   exp(x, xOff, out, outOff, count): out = e^x elementwise (≤ 1 ulp; see LL_EXP_LOOP).
//   geluTanh(x, xOff, y, yOff, s, sOff, count), geluTanhGrad(dy, dyOff, x, xOff, s, sOff, dx, dxOff,
//   count): GPT-2's GELU in one pass each way (see LL_GELU_LOOP).
//   norm(…), normGrad(…): LayerNorm / RMSNorm over the last axis, one pass each way (see norm_forward).
//   isa() → "avx512" | "avx2" | "generic"; selectIsa(name) → the ISA now used (throws if the CPU
//   lacks it; for tests); isas() → the ISAs this CPU can run; version → 1.
//   setThreads(n) → n: threads per product from now on (1 to 64; default 1); threads() → n.
//   A product gets a thread per LL_MIN_FLOPS_PER_THREAD of work at most. The library stays loaded
//   for the process's lifetime (see pin_library) because its thread pool outlives any worker thread.
#define NAPI_VERSION 8
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE // dladdr beside _POSIX_C_SOURCE (macOS)
#endif
#if !defined(__linux__) && !defined(LL_KERNELS_ONLY)
#include <dlfcn.h>
#endif
#ifndef LL_KERNELS_ONLY
#include <node_api.h>
#else
#include <stdbool.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LL_X86 1
#endif

#define LL_VERSION 1
#define LL_ALIGN 64

// One product with leading dimensions (elements between rows as stored), so that a block of rows or
// columns of a larger product is itself a gemm_t (how the work is split between threads).
typedef struct {
  const float *a;
  const float *b;
  float *c;
  const float *bias;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  int transA, transB;
} gemm_t;

// ---------------------------------------------------------------------------------------------
// Packing. A block of op(A) (rows i0.., mc × kc) becomes MR-row micro-panels, each kc columns of MR
// consecutive floats; a block of op(B) (kc × nc) becomes NR-column micro-panels, kc rows of NR. Rows
// and columns past the edge are zero, so the micro-kernels never branch on the edge.

static void pack_a(const gemm_t *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float *dst) {
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

static void pack_b(const gemm_t *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, float *dst) {
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

// Writes an MR×NR tile of sums (row-major, NR per row) into C: C = acc (+ bias) on the first k
// block, C += acc on later ones; only the rows × cols inside C.
static void store_tile(const float *acc, int nr, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias) {
  for (int64_t r = 0; r < rows; r++) {
    float *cr = c + r * ldc;
    const float *ar = acc + r * nr;
    if (first) {
      if (bias) {
        for (int64_t j = 0; j < cols; j++) cr[j] = ar[j] + bias[j];
      } else {
        for (int64_t j = 0; j < cols; j++) cr[j] = ar[j];
      }
    } else {
      for (int64_t j = 0; j < cols; j++) cr[j] += ar[j];
    }
  }
}

// A micro-kernel: the MR×NR product of one packed A micro-panel and one packed B micro-panel over kc,
// written to C (full tiles directly, edge tiles through store_tile).
typedef void (*micro_fn)(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                         int64_t rows, int64_t cols, int first, const float *bias);

typedef struct {
  const char *name;
  int mr, nr;
  int64_t kc, mc, nc;
  micro_fn micro;
  void (*exp)(const float *restrict src, float *restrict dst, int64_t count);
  void (*gelu)(const float *restrict x, float *restrict y, float *restrict s, int64_t count);
  void (*gelu_grad)(const float *restrict dy, const float *restrict x, const float *restrict s, float *restrict dx, int64_t count);
} isa_t;

// ---------------------------------------------------------------------------------------------
// Portable micro-kernel: 4 rows × 16 columns in the compiler's 128-bit vectors (SSE2 on any
// x86-64, NEON on arm64): 16 accumulators, 4 for B.
#define G_MR 4
#define G_NR 16
typedef float v4f __attribute__((vector_size(16)));
static inline v4f v4_load(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static void micro_generic(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                          int64_t rows, int64_t cols, int first, const float *bias) {
  v4f acc[G_MR][4];
  for (int r = 0; r < G_MR; r++) {
    for (int q = 0; q < 4; q++) acc[r][q] = (v4f){0, 0, 0, 0};
  }
  for (int64_t p = 0; p < kc; p++) {
    const v4f b0 = v4_load(bp), b1 = v4_load(bp + 4), b2 = v4_load(bp + 8), b3 = v4_load(bp + 12);
    for (int r = 0; r < G_MR; r++) {
      const v4f a = (v4f){ap[r], ap[r], ap[r], ap[r]};
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
      acc[r][2] += a * b2;
      acc[r][3] += a * b3;
    }
    ap += G_MR;
    bp += G_NR;
  }
  float tile[G_MR * G_NR];
  for (int r = 0; r < G_MR; r++) memcpy(tile + r * G_NR, acc[r], sizeof acc[r]);
  store_tile(tile, G_NR, c, ldc, rows, cols, first, bias);
}

#ifdef LL_X86
// ---------------------------------------------------------------------------------------------
// AVX2 + FMA: 6 rows × 16 columns (two ymm per row: 12 accumulators, 2 for B, 1 broadcast).
#define A2_MR 6
#define A2_NR 16
__attribute__((target("avx2,fma")))
static void micro_avx2(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                       int64_t rows, int64_t cols, int first, const float *bias) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(bp);
    const __m256 b1 = _mm256_loadu_ps(bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(ap + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += A2_MR;
    bp += A2_NR;
  }
  __m256 acc[A2_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == A2_MR && cols == A2_NR) {
    const __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < A2_MR; r++) {
      float *cr = c + r * ldc;
      if (first) {
        _mm256_storeu_ps(cr, _mm256_add_ps(acc[r][0], z0));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(acc[r][1], z1));
      } else {
        _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
      }
    }
    return;
  }
  float tile[A2_MR * A2_NR];
  for (int r = 0; r < A2_MR; r++) {
    _mm256_storeu_ps(tile + r * A2_NR, acc[r][0]);
    _mm256_storeu_ps(tile + r * A2_NR + 8, acc[r][1]);
  }
  store_tile(tile, A2_NR, c, ldc, rows, cols, first, bias);
}

// ---------------------------------------------------------------------------------------------
// AVX-512: 12 rows × 32 columns (two zmm per row: 24 accumulators, 2 for B, broadcasts folded in).
#define A5_MR 12
#define A5_NR 32
#define A5_ROW(r) \
  a = _mm512_set1_ps(ap[r]); c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0); c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);
__attribute__((target("avx512f")))
static void micro_avx512(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                         int64_t rows, int64_t cols, int first, const float *bias) {
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(), c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps(), c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(bp);
    const __m512 b1 = _mm512_loadu_ps(bp + 16);
    __m512 a;
    A5_ROW(0) A5_ROW(1) A5_ROW(2) A5_ROW(3) A5_ROW(4) A5_ROW(5)
    A5_ROW(6) A5_ROW(7) A5_ROW(8) A5_ROW(9) A5_ROW(10) A5_ROW(11)
    ap += A5_MR;
    bp += A5_NR;
  }
  __m512 acc[A5_MR][2] = {
    {c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51},
    {c60, c61}, {c70, c71}, {c80, c81}, {c90, c91}, {c100, c101}, {c110, c111},
  };
  if (rows == A5_MR && cols == A5_NR) {
    const __m512 z0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 z1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < A5_MR; r++) {
      float *cr = c + r * ldc;
      if (first) {
        _mm512_storeu_ps(cr, _mm512_add_ps(acc[r][0], z0));
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(acc[r][1], z1));
      } else {
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), acc[r][1]));
      }
    }
    return;
  }
  float tile[A5_MR * A5_NR];
  for (int r = 0; r < A5_MR; r++) {
    _mm512_storeu_ps(tile + r * A5_NR, acc[r][0]);
    _mm512_storeu_ps(tile + r * A5_NR + 16, acc[r][1]);
  }
  store_tile(tile, A5_NR, c, ldc, rows, cols, first, bias);
}
#endif

// Block sizes: a B micro-panel (kc × NR) stays in L1 while the A block (mc × kc) streams from L2;
// the B block (kc × nc) lives in L2/L3.
#define LL_ELEMENTWISE_DECLS(suffix)                                                                        \
  static void exp_##suffix(const float *restrict src, float *restrict dst, int64_t count);                  \
  static void gelu_##suffix(const float *restrict x, float *restrict y, float *restrict s, int64_t count);  \
  static void gelu_grad_##suffix(const float *restrict dy, const float *restrict x, const float *restrict s, \
                                 float *restrict dx, int64_t count);
LL_ELEMENTWISE_DECLS(generic)
static const isa_t ISA_GENERIC = {"generic", G_MR, G_NR, 256, 128, 2048, micro_generic, exp_generic, gelu_generic, gelu_grad_generic};
#ifdef LL_X86
LL_ELEMENTWISE_DECLS(avx2)
LL_ELEMENTWISE_DECLS(avx512)
static const isa_t ISA_AVX2 = {"avx2", A2_MR, A2_NR, 256, 144, 2048, micro_avx2, exp_avx2, gelu_avx2, gelu_grad_avx2};
static const isa_t ISA_AVX512 = {"avx512", A5_MR, A5_NR, 256, 144, 2048, micro_avx512, exp_avx512, gelu_avx512, gelu_grad_avx512};
#endif

static int cpu_has(const char *name) {
#ifdef LL_X86
  __builtin_cpu_init();
  if (strcmp(name, "avx512") == 0) return __builtin_cpu_supports("avx512f");
  if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return strcmp(name, "generic") == 0;
}

static const isa_t *isa_by_name(const char *name) {
#ifdef LL_X86
  if (strcmp(name, "avx512") == 0) return &ISA_AVX512;
  if (strcmp(name, "avx2") == 0) return &ISA_AVX2;
#endif
  if (strcmp(name, "generic") == 0) return &ISA_GENERIC;
  return NULL;
}

static const isa_t *best_isa(void) {
#ifdef LL_X86
  if (cpu_has("avx512")) return &ISA_AVX512;
  if (cpu_has("avx2")) return &ISA_AVX2;
#endif
  return &ISA_GENERIC;
}

// The ISA in use. Process-wide (every thread uses the same); selectIsa changes it for tests.
static const isa_t *volatile g_isa = NULL;

// Packing buffers, one pair per thread (a worker thread has its own), grown on demand and kept:
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

// One product (one batch entry). Returns 0, or -1 when the packing buffers could not be allocated.
static int gemm_one(const isa_t *isa, const gemm_t *g) {
  const int mr = isa->mr, nr = isa->nr;
  const int64_t m = g->m, n = g->n, k = g->k;
  if (m == 0 || n == 0) return 0;
  if (k == 0) {
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) g->c[i * g->ldc + j] = g->bias ? g->bias[j] : 0.0f;
    }
    return 0;
  }
  const int64_t kcMax = k < isa->kc ? k : isa->kc;
  const int64_t mcMax = m < isa->mc ? (m + mr - 1) / mr * mr : isa->mc;
  const int64_t ncMax = n < isa->nc ? (n + nr - 1) / nr * nr : isa->nc;
  float *bufA = grow(&t_bufA, &t_capA, (size_t)(mcMax * kcMax));
  float *bufB = grow(&t_bufB, &t_capB, (size_t)(ncMax * kcMax));
  if (!bufA || !bufB) return -1;
  for (int64_t j0 = 0; j0 < n; j0 += isa->nc) {
    const int64_t nc = n - j0 < isa->nc ? n - j0 : isa->nc;
    for (int64_t p0 = 0; p0 < k; p0 += isa->kc) {
      const int64_t kc = k - p0 < isa->kc ? k - p0 : isa->kc;
      const int first = p0 == 0;
      pack_b(g, p0, kc, j0, nc, nr, bufB);
      for (int64_t i0 = 0; i0 < m; i0 += isa->mc) {
        const int64_t mc = m - i0 < isa->mc ? m - i0 : isa->mc;
        pack_a(g, i0, mc, p0, kc, mr, bufA);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t cols = nc - jr < nr ? nc - jr : nr;
          const float *bias = first && g->bias ? g->bias + j0 + jr : NULL;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int64_t rows = mc - ir < mr ? mc - ir : mr;
            isa->micro(kc, bufA + ir * kc, bufB + jr * kc, g->c + (i0 + ir) * g->ldc + j0 + jr, g->ldc, rows, cols, first, bias);
          }
        }
      }
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// exp over a float32 array (tfjs's Exp: softmax and cross-entropy of every language-model step).
// Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n applied in two halves
// so that results down to the subnormals are right. Error ≤ 1 ulp against a float64 exp over the
// normal range (tested: ≤ 1 ulp); exp(NaN) = NaN, exp(+∞) = +∞, exp(−∞) = 0, overflow → +∞, underflow → 0.
// Branch-free, so the compiler vectorises the loop for each instruction set below.
// e^x of one float into `out` (a statement; x is read once). Used by the exp and GELU loops.
#define LL_EXPF(out, xin)                                                           \
  do {                                                                              \
    const float x_ = (xin);                                                         \
    const int nan_ = x_ != x_;                                                      \
    float xc_ = nan_ ? 0.0f : x_;                                                   \
    xc_ = xc_ > 88.8f ? 88.8f : xc_;                                                \
    xc_ = xc_ < -104.0f ? -104.0f : xc_;                                            \
    const float fn_ = (xc_ * 1.44269504088896341f + 12582912.0f) - 12582912.0f;     \
    const float r_ = (xc_ - fn_ * 0.693359375f) + fn_ * 2.12194440e-4f;             \
    float p_ = 1.9875691500e-4f;                                                    \
    p_ = p_ * r_ + 1.3981999507e-3f;                                                \
    p_ = p_ * r_ + 8.3334519073e-3f;                                                \
    p_ = p_ * r_ + 4.1665795894e-2f;                                                \
    p_ = p_ * r_ + 1.6666665459e-1f;                                                \
    p_ = p_ * r_ + 5.0000001201e-1f;                                                \
    p_ = p_ * r_ * r_ + r_ + 1.0f;                                                  \
    const int32_t n_ = (int32_t)fn_;                                                \
    const int32_t n1_ = n_ >> 1, n2_ = n_ - n1_;                                    \
    union { int32_t i; float f; } s1_, s2_;                                         \
    s1_.i = (n1_ + 127) << 23;                                                      \
    s2_.i = (n2_ + 127) << 23;                                                      \
    const float y_ = p_ * s1_.f * s2_.f;                                            \
    (out) = nan_ ? x_ : y_;                                                         \
  } while (0)

#define LL_EXP_LOOP                                                                 \
  for (int64_t i = 0; i < count; i++) LL_EXPF(dst[i], src[i]);

// GELU, tanh approximation (GPT-2's gelu_new), as the engine computes it (src/engine/kernels/gelu.ts):
//   z = 2c·(x + k·x³), s = σ(z) = 1 / (1 + e^(−z)), y = x·s          (c = √(2/π), k = 0.044715)
//   dx = dy·(s + x·s·(1 − s)·2c·(1 + 3k·x²))
#define LL_GELU_C2 1.5957691216057308f  /* 2·√(2/π) */
#define LL_GELU_K 0.044715f
#define LL_GELU_LOOP                                                                \
  for (int64_t i = 0; i < count; i++) {                                             \
    const float xi = x[i];                                                          \
    const float z = (xi * (xi * xi * LL_GELU_K + 1.0f)) * LL_GELU_C2;               \
    float e;                                                                        \
    LL_EXPF(e, -z);                                                                 \
    const float si = 1.0f / (1.0f + e);                                             \
    s[i] = si;                                                                      \
    y[i] = xi * si;                                                                 \
  }
#define LL_GELU_GRAD_LOOP                                                           \
  for (int64_t i = 0; i < count; i++) {                                             \
    const float xi = x[i], si = s[i];                                               \
    const float dz = (xi * xi * (3.0f * LL_GELU_K) + 1.0f) * LL_GELU_C2;            \
    dx[i] = dy[i] * (si + xi * (si * (1.0f - si)) * dz);                            \
  }

#define LL_GELU_FNS(suffix, attrs)                                                                          \
  attrs static void gelu_##suffix(const float *restrict x, float *restrict y, float *restrict s, int64_t count) { \
    LL_GELU_LOOP                                                                                            \
  }                                                                                                         \
  attrs static void gelu_grad_##suffix(const float *restrict dy, const float *restrict x,                   \
                                       const float *restrict s, float *restrict dx, int64_t count) {        \
    LL_GELU_GRAD_LOOP                                                                                       \
  }
LL_GELU_FNS(generic, __attribute__((optimize("no-trapping-math"))))
#ifdef LL_X86
LL_GELU_FNS(avx2, __attribute__((target("avx2,fma"), optimize("no-trapping-math"))))
LL_GELU_FNS(avx512, __attribute__((target("avx512f"), optimize("no-trapping-math"))))
#endif

static void exp_generic(const float *restrict src, float *restrict dst, int64_t count) { LL_EXP_LOOP }
#ifdef LL_X86
__attribute__((target("avx2,fma"), optimize("no-trapping-math"))) static void exp_avx2(const float *restrict src, float *restrict dst, int64_t count) { LL_EXP_LOOP }
__attribute__((target("avx512f"), optimize("no-trapping-math"))) static void exp_avx512(const float *restrict src, float *restrict dst, int64_t count) { LL_EXP_LOOP }
#endif

// ---------------------------------------------------------------------------------------------
// LayerNorm (center = 1) and RMSNorm (center = 0) over the last axis, rows × dim, one pass each way
// (tfjs: ~6 kernels forward and ~15 backward per norm). Sums in double; results in float32.
//   forward: μ = mean(x) (0 for RMSNorm), r = 1/√(mean((x − μ)²) + eps), x̂ = (x − μ)·r,
//            y = w·x̂ (+ b); stats[row] = (μ, r) kept for the backward pass
//   backward: g = dy·w, dx = r·(g − mean(g) [LayerNorm only] − x̂·mean(g·x̂)),
//            dw = Σ_rows dy·x̂, db = Σ_rows dy
static void norm_forward(const float *x, const float *w, const float *b, float *y, float *stats,
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

static void norm_backward(const float *dy, const float *x, const float *w, const float *stats, float *dx,
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

// ---------------------------------------------------------------------------------------------
// Threads. A call's work is a list of independent products (tasks): the batch entries, or, for one
// large product, blocks of its rows or columns (whichever dimension is longer; each block packs its
// own panels, so the shorter operand is packed once per block). A persistent pool of threads - 1
// workers and the calling thread take tasks by an atomic counter. One call uses the pool at a time
// (two trainings in two worker threads: the second runs on its own thread) - never a deadlock.

#define LL_MAX_THREADS 64
// Below this many floating-point operations per thread, waking the pool costs more than it saves
// (test/bench/README.md has the measurement).
#define LL_MIN_FLOPS_PER_THREAD 8.0e6

typedef struct {
  const isa_t *isa;
  const gemm_t *tasks;
  int64_t count;
  _Atomic int64_t next;
  _Atomic int failed;
} job_t;

static void run_tasks(job_t *job) {
  for (;;) {
    const int64_t t = atomic_fetch_add(&job->next, 1);
    if (t >= job->count) return;
    if (gemm_one(job->isa, &job->tasks[t]) != 0) atomic_store(&job->failed, 1);
  }
}

static pthread_mutex_t g_pool_use = PTHREAD_MUTEX_INITIALIZER; // held by the call using the pool
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;        // guards the fields below
static pthread_cond_t g_cv_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_cv_done = PTHREAD_COND_INITIALIZER;
static int g_workers = 0;            // pool threads started (they never exit)
static uint64_t g_generation = 0;    // bumped per job
static job_t *g_job = NULL;
static int g_job_workers = 0;        // pool threads that take part in the current job
static int g_pending = 0;            // of those, still running
static _Atomic int g_threads = 1;    // threads per product (setThreads)

typedef struct { int id; } worker_arg;

static void *worker_main(void *arg) {
  const int id = ((worker_arg *)arg)->id;
  free(arg);
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    while (g_generation == seen) pthread_cond_wait(&g_cv_work, &g_mu);
    seen = g_generation;
    job_t *job = id < g_job_workers ? g_job : NULL;
    pthread_mutex_unlock(&g_mu);
    if (!job) continue;
    run_tasks(job);
    pthread_mutex_lock(&g_mu);
    if (--g_pending == 0) pthread_cond_signal(&g_cv_done);
    pthread_mutex_unlock(&g_mu);
  }
  return NULL;
}

// Starts pool threads up to `want` (called with g_pool_use held). Returns how many exist.
static int ensure_workers(int want) {
  while (g_workers < want) {
    worker_arg *arg = (worker_arg *)malloc(sizeof *arg);
    if (!arg) break;
    arg->id = g_workers;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    const int rc = pthread_create(&th, &attr, worker_main, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      free(arg);
      break;
    }
    g_workers++;
  }
  return g_workers;
}

// Runs every task; with more than one thread when allowed and the pool is free. Returns 0 or -1 (out of memory).
static int run_job(const isa_t *isa, const gemm_t *tasks, int64_t count, int threads) {
  job_t job = {isa, tasks, count, 0, 0};
  int helpers = threads - 1;
  if (helpers > count - 1) helpers = (int)(count - 1);
  if (helpers > 0 && pthread_mutex_trylock(&g_pool_use) == 0) {
    helpers = ensure_workers(helpers) < helpers ? g_workers : helpers;
    pthread_mutex_lock(&g_mu);
    g_job = &job;
    g_job_workers = helpers;
    g_pending = helpers;
    g_generation++;
    pthread_cond_broadcast(&g_cv_work);
    pthread_mutex_unlock(&g_mu);
    run_tasks(&job);
    pthread_mutex_lock(&g_mu);
    while (g_pending > 0) pthread_cond_wait(&g_cv_done, &g_mu);
    g_job = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_unlock(&g_pool_use);
  } else {
    run_tasks(&job);
  }
  return atomic_load(&job.failed) ? -1 : 0;
}

// Splits one product into `parts` blocks of rows (or columns, whichever is longer), aligned to the
// micro-kernel's tile so no tile is shared. Returns the number of blocks written to out.
static int64_t split_product(const isa_t *isa, const gemm_t *g, int parts, gemm_t *out) {
  const int byCols = g->n >= g->m;
  const int64_t len = byCols ? g->n : g->m;
  const int64_t unit = byCols ? isa->nr : isa->mr;
  const int64_t units = (len + unit - 1) / unit;
  if (parts > units) parts = (int)units;
  int64_t count = 0, start = 0;
  for (int p = 0; p < parts; p++) {
    const int64_t end = p == parts - 1 ? len : (units * (p + 1) / parts) * unit;
    if (end <= start) continue;
    gemm_t t = *g;
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

// `batch` products shaped like `whole` (A, B advancing by a whole operand per entry where batched, C
// always), on up to `threads` threads. Returns 0, -1 (no memory for the packing buffers) or -2 (none
// for the task list). The binding below checked every size and offset; the C tests call this directly.
static int gemm_batch(const isa_t *isa, const gemm_t *whole, int64_t batch, int aBatched, int bBatched, int threads) {
  const int64_t m = whole->m, n = whole->n, k = whole->k;
  const int64_t sizeA = m * k, sizeB = k * n, sizeC = m * n;
  if (batch == 0 || sizeC == 0) return 0;
  const double flops = 2.0 * (double)batch * (double)m * (double)n * (double)k;
  if (flops < LL_MIN_FLOPS_PER_THREAD * threads) {
    threads = (int)(flops / LL_MIN_FLOPS_PER_THREAD);
    if (threads < 1) threads = 1;
  }
  // Tasks: the batch entries (each whole), or one product in blocks, one per thread.
  const int64_t count = batch > 1 || threads == 1 ? batch : threads;
  gemm_t *tasks = (gemm_t *)malloc((size_t)count * sizeof(gemm_t));
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
  } else if (threads > 1) {
    ntasks = split_product(isa, whole, threads, tasks);
  } else {
    tasks[0] = *whole;
    ntasks = 1;
  }
  const int rc = run_job(isa, tasks, ntasks, threads);
  free(tasks);
  return rc;
}

// Tests build the kernels alone, with no Node headers (test/native/kernels_test.c under sanitizers).
#ifndef LL_KERNELS_ONLY
// ---------------------------------------------------------------------------------------------
// N-API binding.

#define CHECK(env, call)                                              \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error((env), NULL, "lora-lab-native: N-API call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

typedef struct {
  float *data;
  size_t length;
} f32view;

// The JS function being called, named in argument errors ("lora-lab-native norm: w must be …").
static _Thread_local const char *t_fn = "gemm";

// Reads argument i as a Float32Array; throws a TypeError naming it otherwise.
static int get_f32(napi_env env, napi_value v, const char *name, f32view *out) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
    char msg[128];
    snprintf(msg, sizeof msg, "lora-lab-native %s: %s must be a Float32Array", t_fn, name);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float32_array) {
    char msg[128];
    snprintf(msg, sizeof msg, "lora-lab-native %s: %s must be a Float32Array", t_fn, name);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  out->data = (float *)data;
  out->length = length;
  return 1;
}

// Reads argument v as a non-negative integer below 2^32. Offsets and sizes are element counts into a
// typed array that may span the whole of a 4 GiB wasm memory, so nothing here may assume 2^31; the
// bound keeps every product of two counts inside int64_t (three are checked in doubles first).
static int get_count(napi_env env, napi_value v, const char *name, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d < 4294967296.0) || d != (double)(int64_t)d) {
    char msg[160];
    snprintf(msg, sizeof msg, "lora-lab-native %s: %s must be an integer in [0, 2^32)", t_fn, name);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

static int range_ok(napi_env env, const char *name, int64_t off, int64_t need, size_t length) {
  if ((uint64_t)off + (uint64_t)need > (uint64_t)length) {
    char msg[200];
    snprintf(msg, sizeof msg, "lora-lab-native %s: %s needs %lld floats from offset %lld but has %llu",
             t_fn, name, (long long)need, (long long)off, (unsigned long long)length);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

// A RangeError "lora-lab-native <function>: <what>".
static void throw_range(napi_env env, const char *what) {
  char msg[200];
  snprintf(msg, sizeof msg, "lora-lab-native %s: %s", t_fn, what);
  napi_throw_range_error(env, NULL, msg);
}

static int napi_is_exception_pending_bool(napi_env env) {
  bool pending = false;
  return napi_is_exception_pending(env, &pending) == napi_ok && pending;
}

static int overlaps(const float *a, int64_t na, const float *b, int64_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

static napi_value js_gemm(napi_env env, napi_callback_info info) {
  t_fn = "gemm";
  size_t argc = 13;
  napi_value argv[13];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 13) {
    napi_throw_type_error(env, NULL, "lora-lab-native gemm: expected 13 arguments (a, aOff, b, bOff, c, cOff, bias, biasOff, batch, m, n, k, flags)");
    return NULL;
  }
  f32view a, b, c, bias = {NULL, 0};
  int64_t aOff, bOff, cOff, biasOff, batch, m, n, k, flags;
  napi_valuetype bt;
  CHECK(env, napi_typeof(env, argv[6], &bt));
  // Whether a bias was passed, apart from its data pointer: an empty or detached Float32Array has no
  // data pointer, and taking that as "no bias" would silently drop the caller's bias.
  const int hasBias = bt != napi_null && bt != napi_undefined;
  if (!get_f32(env, argv[0], "a", &a) || !get_count(env, argv[1], "aOff", &aOff) ||
      !get_f32(env, argv[2], "b", &b) || !get_count(env, argv[3], "bOff", &bOff) ||
      !get_f32(env, argv[4], "c", &c) || !get_count(env, argv[5], "cOff", &cOff) ||
      (hasBias && !get_f32(env, argv[6], "bias", &bias)) ||
      !get_count(env, argv[7], "biasOff", &biasOff) || !get_count(env, argv[8], "batch", &batch) ||
      !get_count(env, argv[9], "m", &m) || !get_count(env, argv[10], "n", &n) ||
      !get_count(env, argv[11], "k", &k) || !get_count(env, argv[12], "flags", &flags)) {
    return NULL;
  }
  if (flags > 15) {
    napi_throw_range_error(env, NULL, "lora-lab-native gemm: flags must combine 1 (transA), 2 (transB), 4 (A batched), 8 (B batched)");
    return NULL;
  }
  const int transA = (flags & 1) != 0, transB = (flags & 2) != 0;
  const int aBatched = (flags & 4) != 0, bBatched = (flags & 8) != 0;
  if ((double)batch * (double)m * (double)k > 9.0e15 || (double)batch * (double)k * (double)n > 9.0e15 ||
      (double)batch * (double)m * (double)n > 9.0e15) {
    napi_throw_range_error(env, NULL, "lora-lab-native gemm: batch·m·k, batch·k·n or batch·m·n exceeds 2^53");
    return NULL;
  }
  const int64_t sizeA = m * k, sizeB = k * n, sizeC = m * n;
  const int64_t needA = (aBatched ? batch : 1) * sizeA, needB = (bBatched ? batch : 1) * sizeB, needC = batch * sizeC;
  if (!range_ok(env, "a", aOff, needA, a.length) || !range_ok(env, "b", bOff, needB, b.length) ||
      !range_ok(env, "c", cOff, needC, c.length) || (hasBias && !range_ok(env, "bias", biasOff, n, bias.length))) {
    return NULL;
  }
  // Nothing to write (a zero-sized array may have no data pointer, and NULL + offset is undefined).
  if (batch == 0 || sizeC == 0) return NULL;
  float *const pc = c.data + cOff;
  const float *const pa = needA ? a.data + aOff : NULL, *const pb = needB ? b.data + bOff : NULL;
  const float *const pbias = hasBias ? bias.data + biasOff : NULL;
  if (overlaps(pc, needC, pa, needA) || overlaps(pc, needC, pb, needB) ||
      (pbias && overlaps(pc, needC, pbias, n))) {
    napi_throw_range_error(env, NULL, "lora-lab-native gemm: c overlaps an input");
    return NULL;
  }
  const gemm_t whole = {
    pa, pb, pc, pbias, m, n, k,
    transA ? m : k, transB ? k : n, n, transA, transB,
  };
  const int rc = gemm_batch(g_isa, &whole, batch, aBatched, bBatched, atomic_load(&g_threads));
  if (rc != 0) {
    napi_throw_error(env, NULL, rc == -2 ? "lora-lab-native gemm: out of memory" : "lora-lab-native gemm: out of memory for the packing buffers");
    return NULL;
  }
  return NULL;
}

// exp(x, xOff, out, outOff, count): out[outOff + i] = e^x[xOff + i]. out may be x itself at the
// same offset (in place) but not partly overlap it.
static napi_value js_exp(napi_env env, napi_callback_info info) {
  t_fn = "exp";
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) {
    napi_throw_type_error(env, NULL, "lora-lab-native exp: expected 5 arguments (x, xOff, out, outOff, count)");
    return NULL;
  }
  f32view x, out;
  int64_t xOff, outOff, count;
  if (!get_f32(env, argv[0], "x", &x) || !get_count(env, argv[1], "xOff", &xOff) ||
      !get_f32(env, argv[2], "out", &out) || !get_count(env, argv[3], "outOff", &outOff) ||
      !get_count(env, argv[4], "count", &count) || !range_ok(env, "x", xOff, count, x.length) ||
      !range_ok(env, "out", outOff, count, out.length)) {
    return NULL;
  }
  const float *px = x.data + xOff;
  float *po = out.data + outOff;
  if (px != po && overlaps(po, count, px, count)) {
    napi_throw_range_error(env, NULL, "lora-lab-native exp: out partly overlaps x");
    return NULL;
  }
  if (px == po) {
    // In place: through a small buffer, since the loops are compiled for non-aliasing arrays.
    float tmp[1024];
    for (int64_t i = 0; i < count; i += 1024) {
      const int64_t len = count - i < 1024 ? count - i : 1024;
      g_isa->exp(po + i, tmp, len);
      memcpy(po + i, tmp, (size_t)len * sizeof(float));
    }
  } else {
    g_isa->exp(px, po, count);
  }
  return NULL;
}

// Reads `count` arrays (name, array, offset pairs from argv) that must each hold n floats from their
// offset; fills ptrs. Returns 0 after throwing when one does not.
static int get_arrays(napi_env env, napi_value *argv, const char *const *names, int count, int64_t n, float **ptrs) {
  for (int i = 0; i < count; i++) {
    f32view v;
    int64_t off;
    if (!get_f32(env, argv[2 * i], names[i], &v) || !get_count(env, argv[2 * i + 1], names[i], &off) ||
        !range_ok(env, names[i], off, n, v.length)) {
      return 0;
    }
    ptrs[i] = v.data + off;
  }
  return 1;
}

// geluTanh(x, xOff, y, yOff, s, sOff, count): y = GELU(x), s = σ(z) (kept for the gradient).
// geluTanhGrad(dy, dyOff, x, xOff, s, sOff, dx, dxOff, count): dx. Outputs may not overlap inputs.
static napi_value js_gelu_common(napi_env env, napi_callback_info info, int grad) {
  t_fn = grad ? "geluTanhGrad" : "geluTanh";
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const size_t want = grad ? 9 : 7;
  if (argc != want) {
    napi_throw_type_error(env, NULL, grad ? "lora-lab-native geluTanhGrad: expected 9 arguments (dy, dyOff, x, xOff, s, sOff, dx, dxOff, count)"
                                          : "lora-lab-native geluTanh: expected 7 arguments (x, xOff, y, yOff, s, sOff, count)");
    return NULL;
  }
  int64_t count;
  if (!get_count(env, argv[want - 1], "count", &count)) return NULL;
  static const char *const fwd[] = {"x", "y", "s"};
  static const char *const bwd[] = {"dy", "x", "s", "dx"};
  float *p[4];
  if (!get_arrays(env, argv, grad ? bwd : fwd, grad ? 4 : 3, count, p)) return NULL;
  const int nin = grad ? 3 : 1, nout = grad ? 1 : 2;
  for (int o = nin; o < nin + nout; o++) {
    for (int i = 0; i < nin + nout; i++) {
      if (i != o && overlaps(p[o], count, p[i], count)) {
        throw_range(env, "an output overlaps another array");
        return NULL;
      }
    }
  }
  if (grad) g_isa->gelu_grad(p[0], p[1], p[2], p[3], count);
  else g_isa->gelu(p[0], p[1], p[2], count);
  return NULL;
}
static napi_value js_gelu(napi_env env, napi_callback_info info) { return js_gelu_common(env, info, 0); }
static napi_value js_gelu_grad(napi_env env, napi_callback_info info) { return js_gelu_common(env, info, 1); }

// norm(x, xOff, w, wOff, b|null, bOff, y, yOff, stats, statsOff, rows, dim, eps, center)
// normGrad(dy, dyOff, x, xOff, w, wOff, stats, statsOff, dx, dxOff, dw, dwOff, db|null, dbOff, rows, dim, center)
static napi_value js_norm_common(napi_env env, napi_callback_info info, int grad) {
  t_fn = grad ? "normGrad" : "norm";
  size_t argc = 17;
  napi_value argv[17];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const size_t want = grad ? 17 : 14;
  if (argc != want) {
    napi_throw_type_error(env, NULL, grad ? "lora-lab-native normGrad: expected 17 arguments (dy, dyOff, x, xOff, w, wOff, stats, statsOff, dx, dxOff, dw, dwOff, db, dbOff, rows, dim, center)"
                                          : "lora-lab-native norm: expected 14 arguments (x, xOff, w, wOff, b, bOff, y, yOff, stats, statsOff, rows, dim, eps, center)");
    return NULL;
  }
  int64_t rows, dim, center;
  const size_t base = grad ? 14 : 10;
  if (!get_count(env, argv[base], "rows", &rows) || !get_count(env, argv[base + 1], "dim", &dim)) return NULL;
  if (!get_count(env, argv[grad ? 16 : 13], "center", &center) || center > 1) {
    if (!napi_is_exception_pending_bool(env)) throw_range(env, "center must be 0 or 1");
    return NULL;
  }
  const int64_t n = rows * dim;
  // name, argv index of the array, element count; an optional one may be null.
  struct { const char *name; int idx; int64_t count; int optional; } spec_f[] = {
    {"x", 0, n, 0}, {"w", 2, dim, 0}, {"b", 4, dim, 1}, {"y", 6, n, 0}, {"stats", 8, 2 * rows, 0}};
  struct { const char *name; int idx; int64_t count; int optional; } spec_b[] = {
    {"dy", 0, n, 0}, {"x", 2, n, 0}, {"w", 4, dim, 0}, {"stats", 6, 2 * rows, 0}, {"dx", 8, n, 0}, {"dw", 10, dim, 0}, {"db", 12, dim, 1}};
  float *p[7] = {0};
  int64_t cnt[7] = {0};
  const int na = grad ? 7 : 5;
  for (int i = 0; i < na; i++) {
    const char *name = grad ? spec_b[i].name : spec_f[i].name;
    const int idx = grad ? spec_b[i].idx : spec_f[i].idx;
    const int64_t count = grad ? spec_b[i].count : spec_f[i].count;
    const int optional = grad ? spec_b[i].optional : spec_f[i].optional;
    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[idx], &t));
    if (optional && (t == napi_null || t == napi_undefined)) continue;
    f32view v;
    int64_t off;
    if (!get_f32(env, argv[idx], name, &v) || !get_count(env, argv[idx + 1], name, &off) || !range_ok(env, name, off, count, v.length)) return NULL;
    p[i] = v.data + off;
    cnt[i] = count;
  }
  // Outputs (forward: y, stats; backward: dx, dw, db) may not overlap any other array.
  const int first_out = grad ? 4 : 3;
  for (int o = first_out; o < na; o++) {
    for (int i = 0; i < na; i++) {
      if (i != o && p[o] && p[i] && overlaps(p[o], cnt[o], p[i], cnt[i])) {
        throw_range(env, "an output overlaps another array");
        return NULL;
      }
    }
  }
  if (grad) {
    norm_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], rows, dim, (int)center);
  } else {
    double eps;
    napi_valuetype et;
    CHECK(env, napi_typeof(env, argv[12], &et));
    if (et != napi_number || napi_get_value_double(env, argv[12], &eps) != napi_ok) {
      static const char *const words[] = {"undefined", "null", "a boolean", "a number", "a string", "a symbol", "an object", "a function", "an external", "a BigInt"};
      char msg[120];
      snprintf(msg, sizeof msg, "lora-lab-native norm: eps must be a number ≥ 0, got %s", (unsigned)et < sizeof words / sizeof words[0] ? words[et] : "another type");
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
    if (!(eps >= 0)) {
      napi_throw_range_error(env, NULL, "lora-lab-native norm: eps must be a number ≥ 0");
      return NULL;
    }
    norm_forward(p[0], p[1], p[2], p[3], p[4], rows, dim, (float)eps, (int)center);
  }
  return NULL;
}
static napi_value js_norm(napi_env env, napi_callback_info info) { return js_norm_common(env, info, 0); }
static napi_value js_norm_grad(napi_env env, napi_callback_info info) { return js_norm_common(env, info, 1); }

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

static napi_value js_isa(napi_env env, napi_callback_info info) {
  (void)info;
  return make_string(env, g_isa->name);
}

static napi_value js_isas(napi_env env, napi_callback_info info) {
  (void)info;
  static const char *names[] = {"avx512", "avx2", "generic"};
  napi_value arr;
  CHECK(env, napi_create_array(env, &arr));
  uint32_t idx = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (isa_by_name(names[i]) && cpu_has(names[i])) {
      napi_value s = make_string(env, names[i]);
      if (!s) return NULL;
      CHECK(env, napi_set_element(env, arr, idx++, s));
    }
  }
  return arr;
}

static napi_value js_select_isa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[32] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lora-lab-native selectIsa: expected \"avx512\", \"avx2\" or \"generic\"");
    return NULL;
  }
  const isa_t *isa = isa_by_name(name);
  if (!isa || !cpu_has(name)) {
    char msg[160];
    snprintf(msg, sizeof msg, "lora-lab-native selectIsa: \"%s\" is not available on this CPU (expected one of isas())", name);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  g_isa = isa;
  return make_string(env, isa->name);
}

static napi_value js_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  CHECK(env, napi_create_uint32(env, (uint32_t)atomic_load(&g_threads), &v));
  return v;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double d = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &d) != napi_ok || !(d >= 1 && d <= LL_MAX_THREADS) || d != (double)(int)d) {
    napi_throw_range_error(env, NULL, "lora-lab-native setThreads: expected an integer from 1 to 64");
    return NULL;
  }
  atomic_store(&g_threads, (int)d);
  return js_threads(env, info);
}

// ---------------------------------------------------------------------------------------------
// Frozen weights in native memory. A frozen weight W (stored row-major [rows, cols], F32, BF16 or
// F16, as in the safetensors file) stays in the bytes it was read into (the addon holds a reference
// to them), outside the wasm heap and never widened as a whole; the products read it there:
//   frozenMatMul(w, x, xOff, y, yOff, n, mode)
//     mode 0: y [n, rows] = x [n, cols] · Wᵀ   (a Linear's forward; the tied head's logits)
//     mode 1: y [n, cols] = x [n, rows] · W    (its backward dx = dy·W; the tied head's dh)
//   frozenGather(w, idx, idxOff, count, out, outOff): out[i] = W[idx[i]] as float32 (embedding lookup)
// BF16/F16 weights are widened a block of output columns at a time into a per-call buffer, and each
// block is one product of the packed kernel above with C's leading dimension the whole row. Every
// element of C is summed over k in the same order as the in-heap product of the widened weight, so
// the results equal it exactly.

enum { LL_F32 = 0, LL_BF16 = 1, LL_F16 = 2 };

typedef struct {
  const uint8_t *data;
  int dtype;
  int64_t rows, cols;
  napi_ref keep;
} frozen_t;

/** Columns of C per widened block: ~4 MB of float32 per block for BF16/F16 weights. */
#define LL_FROZEN_BLOCK_FLOATS (1 << 20)

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  union { uint32_t u; float f; } v;
  if (exp == 0) {
    // zero or subnormal: man · 2^-24, exact in float32
    const float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  v.u = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
  return v.f;
}

static inline float frozen_at(const frozen_t *w, int64_t i) {
  switch (w->dtype) {
    case LL_BF16: {
      uint16_t b;
      memcpy(&b, w->data + 2 * i, 2);
      union { uint32_t u; float f; } v = {(uint32_t)b << 16};
      return v.f;
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

static void frozen_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  frozen_t *w = (frozen_t *)data;
  if (w->keep) napi_delete_reference(env, w->keep);
  free(w);
}

// frozenWeight(bytes: Uint8Array, dtype: "F32" | "BF16" | "F16", rows, cols) → a handle (external).
static napi_value js_frozen_weight(napi_env env, napi_callback_info info) {
  t_fn = "frozenWeight";
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenWeight: expected 4 arguments (bytes, dtype, rows, cols)");
    return NULL;
  }
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenWeight: bytes must be a Uint8Array");
    return NULL;
  }
  char name[8] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenWeight: dtype must be \"F32\", \"BF16\" or \"F16\"");
    return NULL;
  }
  const int dtype = strcmp(name, "F32") == 0 ? LL_F32 : strcmp(name, "BF16") == 0 ? LL_BF16 : strcmp(name, "F16") == 0 ? LL_F16 : -1;
  if (dtype < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "lora-lab-native frozenWeight: dtype must be \"F32\", \"BF16\" or \"F16\", got \"%s\"", name);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  int64_t rows, cols;
  if (!get_count(env, argv[2], "rows", &rows) || !get_count(env, argv[3], "cols", &cols)) return NULL;
  const uint64_t need = (uint64_t)rows * (uint64_t)cols * (dtype == LL_F32 ? 4u : 2u);
  if (need != length) {
    char msg[200];
    snprintf(msg, sizeof msg, "lora-lab-native frozenWeight: [%lld, %lld] %s needs %llu bytes but has %llu",
             (long long)rows, (long long)cols, name, (unsigned long long)need, (unsigned long long)length);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  frozen_t *w = (frozen_t *)calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "lora-lab-native frozenWeight: out of memory");
    return NULL;
  }
  w->data = (const uint8_t *)data;
  w->dtype = dtype;
  w->rows = rows;
  w->cols = cols;
  napi_value handle;
  if (napi_create_reference(env, argv[0], 1, &w->keep) != napi_ok ||
      napi_create_external(env, w, frozen_finalize, NULL, &handle) != napi_ok) {
    if (w->keep) napi_delete_reference(env, w->keep);
    free(w);
    napi_throw_error(env, NULL, "lora-lab-native frozenWeight: N-API call failed");
    return NULL;
  }
  return handle;
}

static const frozen_t *get_frozen(napi_env env, napi_value v, const char *fn) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    char msg[128];
    snprintf(msg, sizeof msg, "lora-lab-native %s: w must be a handle from frozenWeight", fn);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return (const frozen_t *)p;
}

// One product on the thread pool, split as js_gemm splits an unbatched product. Returns 0 or -1.
static int run_product(const gemm_t *whole) {
  int threads = atomic_load(&g_threads);
  const double flops = 2.0 * (double)whole->m * (double)whole->n * (double)whole->k;
  if (flops < LL_MIN_FLOPS_PER_THREAD * threads) {
    threads = (int)(flops / LL_MIN_FLOPS_PER_THREAD);
    if (threads < 1) threads = 1;
  }
  gemm_t tasks[LL_MAX_THREADS];
  const int64_t ntasks = threads > 1 ? split_product(g_isa, whole, threads, tasks) : (tasks[0] = *whole, 1);
  return run_job(g_isa, tasks, ntasks, threads);
}

static napi_value js_frozen_matmul(napi_env env, napi_callback_info info) {
  t_fn = "frozenMatMul";
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenMatMul: expected 7 arguments (w, x, xOff, y, yOff, n, mode)");
    return NULL;
  }
  const frozen_t *w = get_frozen(env, argv[0], "frozenMatMul");
  if (!w) return NULL;
  f32view x, y;
  int64_t xOff, yOff, n, mode;
  if (!get_f32(env, argv[1], "x", &x) || !get_count(env, argv[2], "xOff", &xOff) || !get_f32(env, argv[3], "y", &y) ||
      !get_count(env, argv[4], "yOff", &yOff) || !get_count(env, argv[5], "n", &n) || !get_count(env, argv[6], "mode", &mode)) {
    return NULL;
  }
  if (mode > 1) {
    napi_throw_range_error(env, NULL, "lora-lab-native frozenMatMul: mode must be 0 (x·Wᵀ) or 1 (x·W)");
    return NULL;
  }
  // mode 0: k = cols, outputs = rows; mode 1: k = rows, outputs = cols
  const int64_t k = mode == 0 ? w->cols : w->rows, outs = mode == 0 ? w->rows : w->cols;
  if ((double)n * (double)(k > outs ? k : outs) > 9.0e15) {
    napi_throw_range_error(env, NULL, "lora-lab-native frozenMatMul: n·k exceeds 2^53");
    return NULL;
  }
  if (!range_ok(env, "x", xOff, n * k, x.length) || !range_ok(env, "y", yOff, n * outs, y.length)) return NULL;
  float *py = y.data + yOff;
  const float *px = x.data + xOff;
  if (overlaps(py, n * outs, px, n * k)) {
    napi_throw_range_error(env, NULL, "lora-lab-native frozenMatMul: y overlaps x");
    return NULL;
  }
  if (n == 0 || outs == 0) return NULL;
  gemm_t g = {px, NULL, py, NULL, n, 0, k, k, 0, outs, 0, mode == 0};
  int rc = 0;
  if (w->dtype == LL_F32 && ((uintptr_t)w->data & 3) == 0) {
    g.b = (const float *)w->data;
    g.n = outs;
    g.ldb = w->cols;
    rc = run_product(&g);
  } else {
    int64_t block = LL_FROZEN_BLOCK_FLOATS / (k > 0 ? k : 1);
    if (block < 16) block = 16;
    if (block > outs) block = outs;
    float *buf = (float *)malloc((size_t)(block * (k > 0 ? k : 1)) * sizeof(float));
    if (!buf) {
      napi_throw_error(env, NULL, "lora-lab-native frozenMatMul: out of memory for the widened block");
      return NULL;
    }
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
      g.c = py + o0;
      rc = run_product(&g);
    }
    free(buf);
  }
  if (rc != 0) napi_throw_error(env, NULL, "lora-lab-native frozenMatMul: out of memory for the packing buffers");
  return NULL;
}

static napi_value js_frozen_gather(napi_env env, napi_callback_info info) {
  t_fn = "frozenGather";
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenGather: expected 6 arguments (w, idx, idxOff, count, out, outOff)");
    return NULL;
  }
  const frozen_t *w = get_frozen(env, argv[0], "frozenGather");
  if (!w) return NULL;
  bool is_ta = false;
  napi_typedarray_type type;
  size_t ilen;
  void *idata;
  if (napi_is_typedarray(env, argv[1], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[1], &type, &ilen, &idata, NULL, NULL) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenGather: idx must be an Int32Array");
    return NULL;
  }
  f32view out;
  int64_t idxOff, count, outOff;
  if (!get_count(env, argv[2], "idxOff", &idxOff) || !get_count(env, argv[3], "count", &count) || !get_f32(env, argv[4], "out", &out) ||
      !get_count(env, argv[5], "outOff", &outOff) || !range_ok(env, "idx", idxOff, count, ilen) ||
      !range_ok(env, "out", outOff, count * w->cols, out.length)) {
    return NULL;
  }
  const int32_t *idx = (const int32_t *)idata + idxOff;
  for (int64_t i = 0; i < count; i++) {
    if (idx[i] < 0 || idx[i] >= w->rows) {
      char msg[160];
      snprintf(msg, sizeof msg, "lora-lab-native frozenGather: idx[%lld] = %d is outside [0, %lld)", (long long)i, idx[i], (long long)w->rows);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
  }
  float *po = out.data + outOff;
  for (int64_t i = 0; i < count; i++) {
    const int64_t base = (int64_t)idx[i] * w->cols;
    if (w->dtype == LL_F32) memcpy(po + i * w->cols, w->data + 4 * base, (size_t)w->cols * 4);
    else for (int64_t j = 0; j < w->cols; j++) po[i * w->cols + j] = frozen_at(w, base + j);
  }
  return NULL;
}

// Node unloads an addon (dlclose) when the last worker thread that loaded it exits, if the main
// thread never loaded it - as in VS Code's extension host, where only training workers do. The
// thread pool's threads would then sleep in unmapped code and the next load would start a second
// pool over the first one's memory (a hang or a crash). So the library stays loaded for the
// process's lifetime: on Linux it is linked with -z nodelete (native/build.mjs); elsewhere it takes
// a reference to itself with RTLD_NODELETE here.
static void pin_library(void) {
#if !defined(__linux__)
  Dl_info info;
  if (dladdr((void *)&pin_library, &info) && info.dli_fname) {
    // Takes a reference that is never released; RTLD_NOLOAD: only if already loaded (it is).
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
#endif
}

// A worker thread's packing buffers, freed when its Node environment ends (on that thread), so
// that every training worker of a long-lived extension host does not leave its megabytes behind.
static void free_thread_buffers(void *token) {
  free(token);
  free(t_bufA);
  free(t_bufB);
  t_bufA = t_bufB = NULL;
  t_capA = t_capB = 0;
}

NAPI_MODULE_INIT() {
  static pthread_once_t pinned = PTHREAD_ONCE_INIT;
  pthread_once(&pinned, pin_library);
  if (!g_isa) g_isa = best_isa();
  // A fresh token per load: Node aborts on the same (hook, argument) pair registered twice in one
  // environment, as a second load of the addon there (a cleared require cache) would do.
  void *token = malloc(1);
  if (!token || napi_add_env_cleanup_hook(env, free_thread_buffers, token) != napi_ok) {
    free(token);
    return NULL;
  }
  napi_property_descriptor props[] = {
    {"gemm", NULL, js_gemm, NULL, NULL, NULL, napi_enumerable, NULL},
    {"isa", NULL, js_isa, NULL, NULL, NULL, napi_enumerable, NULL},
    {"isas", NULL, js_isas, NULL, NULL, NULL, napi_enumerable, NULL},
    {"selectIsa", NULL, js_select_isa, NULL, NULL, NULL, napi_enumerable, NULL},
    {"threads", NULL, js_threads, NULL, NULL, NULL, napi_enumerable, NULL},
    {"exp", NULL, js_exp, NULL, NULL, NULL, napi_enumerable, NULL},
    {"geluTanh", NULL, js_gelu, NULL, NULL, NULL, napi_enumerable, NULL},
    {"geluTanhGrad", NULL, js_gelu_grad, NULL, NULL, NULL, napi_enumerable, NULL},
    {"norm", NULL, js_norm, NULL, NULL, NULL, napi_enumerable, NULL},
    {"normGrad", NULL, js_norm_grad, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
    {"frozenWeight", NULL, js_frozen_weight, NULL, NULL, NULL, napi_enumerable, NULL},
    {"frozenMatMul", NULL, js_frozen_matmul, NULL, NULL, NULL, napi_enumerable, NULL},
    {"frozenGather", NULL, js_frozen_gather, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value version;
  if (napi_create_uint32(env, LL_VERSION, &version) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "version", version) != napi_ok) return NULL;
  return exports;
}
#endif // LL_KERNELS_ONLY
