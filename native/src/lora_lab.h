// lora-lab-native: single-precision matrix products (and exp, GELU, norms) for the tfjs wasm backend.
//
// Why: WebAssembly SIMD is 128 bits wide. On a core with 256- or 512-bit FMA units (AVX2, AVX-512)
// the best wasm matmul (XNNPACK) reaches about a third to a half of what the core can do, and the
// LoRA workloads spend most of their time in products with the frozen weights and in attention. It
// is an optional accelerator: src/runs/nativeLoader.ts loads it where it was built, and the engine
// falls back to the pure wasm kernels, and says so, where it was not.
//
// This header is what the files share: the product's description, an instruction set's kernels and
// block sizes, and each file's entry points. binding.c puts them behind N-API; test/native/kernels_test.c
// calls them directly. Every file is portable C11 that gcc and clang both build warning-free; the
// per-ISA files get their instruction set from compiler flags (native/build.mjs), not attributes.
#ifndef LORA_LAB_H
#define LORA_LAB_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define LL_X86 1
#endif
#if defined(__aarch64__)
#define LL_ARM64 1
#endif

#define LL_VERSION 1
#define LL_MAX_THREADS 64

// ---------------------------------------------------------------------------------------------
// One product C = op(A)·op(B) (+ bias on every row), row-major, with leading dimensions (elements
// between rows as stored), so that a block of rows or columns of a larger product is itself an
// ll_gemm_t. op(A) is m×k: A stored m×k, or k×m with transA; op(B) is k×n: B stored k×n, or n×k
// with transB. With accumulate, C += op(A)·op(B) (no bias): a product over a long k done as several
// calls over consecutive k ranges, each a multiple of the ISA's kc, sums in the same order as one.
typedef struct {
  const float *a;
  const float *b;
  float *c;
  const float *bias;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  int transA, transB;
  int accumulate;
} ll_gemm_t;

// A micro-kernel: the MR×NR product of one packed A micro-panel (kc columns of MR consecutive floats)
// and one packed B micro-panel (kc rows of NR) into C: C = sums (+ bias) when first (the first k
// block), C += sums otherwise; only rows × cols of the tile lie inside C (the panels are zero past them).
typedef void (*ll_micro_fn)(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                            int64_t rows, int64_t cols, int first, const float *bias);
typedef void (*ll_exp_fn)(const float *restrict src, float *restrict dst, int64_t count);
typedef void (*ll_gelu_fn)(const float *restrict x, float *restrict y, float *restrict s, int64_t count);
typedef void (*ll_gelu_grad_fn)(const float *restrict dy, const float *restrict x, const float *restrict s,
                                float *restrict dx, int64_t count);

// An instruction set: its micro-kernel's tile (mr × nr), the block sizes the product is cut into
// (kc, mc, nc: mc a multiple of mr, nc of nr), how many floats of packed op(B) the threads of a
// row-split product share at most (shared_b, whole kc × nc blocks) and its elementwise kernels.
typedef struct {
  const char *name;
  int mr, nr;
  int64_t kc, mc, nc, shared_b;
  ll_micro_fn micro;
  ll_exp_fn exp;
  ll_gelu_fn gelu;
  ll_gelu_grad_fn gelu_grad;
} ll_isa_t;

// Micro-kernel tiles, one per file micro_<isa>.c (isa.c sizes the blocks from them).
enum {
  LL_GENERIC_MR = 4, LL_GENERIC_NR = 16,
  LL_AVX2_MR = 6, LL_AVX2_NR = 16,
  LL_AVX512_MR = 12, LL_AVX512_NR = 32,
  LL_NEON_MR = 8, LL_NEON_NR = 12,
};

// micro_<isa>.c: each compiled only for its architecture, with that instruction set enabled.
void ll_micro_generic(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias);
void ll_micro_avx2(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias);
void ll_micro_avx512(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias);
void ll_micro_neon(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias);

// elementwise.c, compiled once per instruction set (the suffix); arm64 runs the generic build, which
// the compiler vectorises with NEON.
void ll_exp_generic(const float *restrict src, float *restrict dst, int64_t count);
void ll_gelu_generic(const float *restrict x, float *restrict y, float *restrict s, int64_t count);
void ll_gelu_grad_generic(const float *restrict dy, const float *restrict x, const float *restrict s, float *restrict dx, int64_t count);
void ll_exp_avx2(const float *restrict src, float *restrict dst, int64_t count);
void ll_gelu_avx2(const float *restrict x, float *restrict y, float *restrict s, int64_t count);
void ll_gelu_grad_avx2(const float *restrict dy, const float *restrict x, const float *restrict s, float *restrict dx, int64_t count);
void ll_exp_avx512(const float *restrict src, float *restrict dst, int64_t count);
void ll_gelu_avx512(const float *restrict x, float *restrict y, float *restrict s, int64_t count);
void ll_gelu_grad_avx512(const float *restrict dy, const float *restrict x, const float *restrict s, float *restrict dx, int64_t count);

// ---------------------------------------------------------------------------------------------
// isa.c: the instruction sets this build has, which of them the CPU runs, and the one in use
// (process-wide; selectIsa changes it for tests).
extern const ll_isa_t *volatile ll_isa;
const ll_isa_t *ll_isa_by_name(const char *name); // NULL when this build lacks it
int ll_cpu_has(const char *name);
const ll_isa_t *ll_best_isa(void);
// The names isas() may list, fastest first (each still to be checked with ll_isa_by_name, ll_cpu_has).
extern const char *const ll_isa_names[];
extern const size_t ll_isa_count;

// ---------------------------------------------------------------------------------------------
// gemm.c: products on up to `threads` threads (fewer when the work is small).
// `batch` products shaped like `whole` (A, B advancing by a whole operand per entry where batched, C
// always). Returns 0, -1 (no memory for the packing buffers) or -2 (none for the task list). The
// caller has checked every size and offset.
int ll_gemm_batch(const ll_isa_t *isa, const ll_gemm_t *whole, int64_t batch, int aBatched, int bBatched, int threads);
// Frees the calling thread's packing buffers (a worker thread's Node environment ending; tests).
void ll_free_thread_buffers(void);
// Threads per product (setThreads), 1 to LL_MAX_THREADS.
extern _Atomic int ll_threads;

// pool.c: a persistent pool of threads that run the parts of one call at once.
// Calls work(ctx, part, parts) once for each part < parts, each on its own thread (the calling
// thread runs part 0), where 1 ≤ parts ≤ want: fewer when threads cannot be started, 1 when another
// call is using the pool. Returns when every part has returned. A part's thread may start late (not
// yet scheduled where threads outnumber free cores), so parts share work by claiming it, never by
// waiting for a part that has not started.
typedef void (*ll_work_fn)(void *ctx, int part, int parts);
void ll_pool_run(ll_work_fn work, void *ctx, int want);
// How many parts `work` units are worth: at most `threads`, at least 1, none under `min_per_part`
// units (below that, waking a thread costs more than it saves).
int ll_parts_for(int64_t work, int64_t min_per_part, int threads);

// ---------------------------------------------------------------------------------------------
// norm.c: LayerNorm (center 1) and RMSNorm (center 0) over the last axis, one pass each way.
void ll_norm_forward(const float *x, const float *w, const float *b, float *y, float *stats,
                     int64_t rows, int64_t dim, float eps, int center);
void ll_norm_backward(const float *dy, const float *x, const float *w, const float *stats, float *dx,
                      float *dw, float *db, int64_t rows, int64_t dim, int center);

// ---------------------------------------------------------------------------------------------
// frozen.c: a frozen weight W [rows, cols], row-major, in the bytes of a safetensors file.
enum { LL_F32 = 0, LL_BF16 = 1, LL_F16 = 2 };
typedef struct {
  const uint8_t *data;
  int dtype;
  int64_t rows, cols;
} ll_frozen_t;
// mode 0: y [n, rows] = x [n, cols]·Wᵀ; mode 1: y [n, cols] = x [n, rows]·W. Returns 0, -1 (no
// memory for the packing buffers) or -3 (none for the widened block).
int ll_frozen_matmul(const ll_isa_t *isa, const ll_frozen_t *w, const float *x, float *y, int64_t n, int mode, int threads);
// out [count, cols] = rows idx[0..count) of W as float32 (every idx checked to be in [0, rows)).
void ll_frozen_gather(const ll_frozen_t *w, const int32_t *idx, int64_t count, float *out);

// ---------------------------------------------------------------------------------------------
// The row kernels (xent.c, softmax.c) keep LL_LANES independent partial maxima or sums, so that their
// loops vectorise without reassociating one running value. ll_sum_lanes: the sum of n floats that
// way, the lanes then added in double.
#define LL_LANES 16
static inline double ll_sum_lanes(const float *t, int64_t n) {
  float lanes[LL_LANES] = {0};
  int64_t j = 0;
  for (; j + LL_LANES <= n; j += LL_LANES) {
    for (int l = 0; l < LL_LANES; l++) lanes[l] += t[j + l];
  }
  double s = 0;
  for (int l = 0; l < LL_LANES; l++) s += lanes[l];
  for (; j < n; j++) s += t[j];
  return s;
}

// ---------------------------------------------------------------------------------------------
// xent.c: softmax cross-entropy of rows × v logits z against labels (each in [0, v)): loss[i] =
// log Σ_j e^z[i,j] − z[i, labels[i]]; with scale, z is overwritten by the gradient
// scale[i] · (softmax(z[i]) − onehot(labels[i])). On up to `threads` threads.
void ll_softmax_xent(const ll_isa_t *isa, float *z, int64_t rows, int64_t v, const int32_t *labels, const float *scale,
                     float *loss, int threads);

// ---------------------------------------------------------------------------------------------
// softmax.c: attention's softmax over rows × cols scores s: p[r] = softmax(s[r] / divisor + mask[r mod
// maskRows]) (mask may be NULL), and its gradient ds[r] = p[r]·(dp[r] − Σ dp[r]·p[r]) / divisor.
void ll_softmax_rows(const ll_isa_t *isa, const float *s, const float *mask, int64_t mask_rows, float *p, int64_t rows, int64_t cols,
                     float divisor, int threads);
void ll_softmax_rows_grad(const float *p, const float *dp, float *ds, int64_t rows, int64_t cols, float divisor, int threads);

#endif
