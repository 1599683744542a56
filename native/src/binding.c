// The N-API binding: argument checks, then the kernels of the other files. Context-aware, so it
// loads in worker threads. The JS API (src/engine/kernels/nativeKernels.ts has it typed):
//   gemm(a, aOff, b, bOff, c, cOff, bias|null, biasOff, batch, m, n, k, flags) → undefined
//     C[e] (m×n) = op(A[e]) (m×k) · op(B[e]) (k×n) [+ bias (n), added to every row], per batch entry e;
//     a, b, c, bias: Float32Array; *Off: element offsets into them (a wasm heap holds all four);
//     flags: 1 transA, 2 transB, 4 A batched, 8 B batched (not batched: one operand for every e).
//     Throws RangeError/TypeError naming the argument when a size, an offset or a type is wrong, or
//     when C overlaps an input.
//   exp(x, xOff, out, outOff, count): out = e^x elementwise (≤ 1 ulp; see elementwise.c).
//   geluTanh(x, xOff, y, yOff, s, sOff, count), geluTanhGrad(dy, dyOff, x, xOff, s, sOff, dx, dxOff,
//   count): GPT-2's GELU in one pass each way.
//   norm(…), normGrad(…): LayerNorm / RMSNorm over the last axis, one pass each way (norm.c).
//   frozenWeight(bytes, dtype, rows, cols) → a handle; frozenMatMul(w, x, xOff, y, yOff, n, mode),
//   frozenGather(w, idx, idxOff, count, out, outOff): products with weights outside the wasm heap (frozen.c).
//   isa() → "avx512" | "avx2" | "neon" | "generic"; selectIsa(name) → the ISA now used (throws if
//   the CPU lacks it; for tests); isas() → the ISAs this CPU can run; version → 1.
//   setThreads(n) → n: threads per product from now on (1 to 64; default 1); threads() → n.
#define NAPI_VERSION 8
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE // dladdr beside _POSIX_C_SOURCE (macOS)
#endif
#include "lora_lab.h"

#include <math.h>

#if !defined(__linux__)
#include <dlfcn.h>
#endif
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Returns from the calling function, after throwing, when an N-API call fails.
#define CHECK(env, call)                                                             \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      napi_throw_error((env), NULL, "lora-lab-native: N-API call failed: " #call);   \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

typedef struct {
  float *data;
  size_t length;
} f32view;

// The JS function being called, named in argument errors ("lora-lab-native norm: w must be …").
static _Thread_local const char *t_fn = "gemm";

// Starts a call of function `fn`: reads exactly `want` arguments into argv, or throws a TypeError that
// lists them (`names`) and returns 0.
static int get_args(napi_env env, napi_callback_info info, const char *fn, size_t want, const char *names, napi_value *argv) {
  t_fn = fn;
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "lora-lab-native: N-API call failed: napi_get_cb_info");
    return 0;
  }
  if (argc != want) {
    char msg[200];
    snprintf(msg, sizeof msg, "lora-lab-native %s: expected %zu arguments (%s)", fn, want, names);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

// Reads v as a typed array of `type` (`what`: "a Float32Array", …); throws a TypeError naming the
// argument otherwise.
static int get_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *name, const char *what, void **data, size_t *length) {
  bool is_ta = false;
  napi_typedarray_type got;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &got, length, data, NULL, NULL) != napi_ok || got != type) {
    char msg[128];
    snprintf(msg, sizeof msg, "lora-lab-native %s: %s must be %s", t_fn, name, what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

static int get_f32(napi_env env, napi_value v, const char *name, f32view *out) {
  void *data;
  if (!get_typed(env, v, napi_float32_array, name, "a Float32Array", &data, &out->length)) return 0;
  out->data = (float *)data;
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
  char msg[256];
  snprintf(msg, sizeof msg, "lora-lab-native %s: %s", t_fn, what);
  napi_throw_range_error(env, NULL, msg);
}

static int exception_pending(napi_env env) {
  bool pending = false;
  return napi_is_exception_pending(env, &pending) == napi_ok && pending;
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

static int overlaps(const float *a, int64_t na, const float *b, int64_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

// An array argument (at argv[idx], its offset at argv[idx + 1]) that must hold `count` floats; an
// optional one may be null or undefined.
typedef struct {
  const char *name;
  int idx;
  int64_t count;
  int optional;
} array_arg;

// Reads the arrays of `specs` into ptrs (NULL for an absent optional one). Throws and returns 0 when
// one is not a Float32Array, its offset is not a count, or it is too short.
static int get_arrays(napi_env env, napi_value *argv, const array_arg *specs, int n, float **ptrs) {
  for (int i = 0; i < n; i++) {
    ptrs[i] = NULL;
    if (specs[i].optional && is_nullish(env, argv[specs[i].idx])) continue;
    f32view v;
    int64_t off;
    if (!get_f32(env, argv[specs[i].idx], specs[i].name, &v) || !get_count(env, argv[specs[i].idx + 1], specs[i].name, &off) ||
        !range_ok(env, specs[i].name, off, specs[i].count, v.length)) {
      return 0;
    }
    ptrs[i] = v.data + off;
  }
  return 1;
}

// Whether an output (specs from first_out on) overlaps any other array of the call; throws if so.
static int outputs_overlap(napi_env env, const array_arg *specs, int n, int first_out, float *const *ptrs) {
  for (int o = first_out; o < n; o++) {
    for (int i = 0; i < n; i++) {
      if (i != o && ptrs[o] && ptrs[i] && overlaps(ptrs[o], specs[o].count, ptrs[i], specs[i].count)) {
        throw_range(env, "an output overlaps another array");
        return 1;
      }
    }
  }
  return 0;
}

static napi_value js_gemm(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  if (!get_args(env, info, "gemm", 13, "a, aOff, b, bOff, c, cOff, bias, biasOff, batch, m, n, k, flags", argv)) return NULL;
  f32view a, b, c, bias = {NULL, 0};
  int64_t aOff, bOff, cOff, biasOff, batch, m, n, k, flags;
  // Whether a bias was passed, apart from its data pointer: an empty or detached Float32Array has no
  // data pointer, and taking that as "no bias" would silently drop the caller's bias.
  const int hasBias = !is_nullish(env, argv[6]);
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
    throw_range(env, "flags must combine 1 (transA), 2 (transB), 4 (A batched), 8 (B batched)");
    return NULL;
  }
  const int transA = (flags & 1) != 0, transB = (flags & 2) != 0;
  const int aBatched = (flags & 4) != 0, bBatched = (flags & 8) != 0;
  if ((double)batch * (double)m * (double)k > 9.0e15 || (double)batch * (double)k * (double)n > 9.0e15 ||
      (double)batch * (double)m * (double)n > 9.0e15) {
    throw_range(env, "batch·m·k, batch·k·n or batch·m·n exceeds 2^53");
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
  if (overlaps(pc, needC, pa, needA) || overlaps(pc, needC, pb, needB) || (pbias && overlaps(pc, needC, pbias, n))) {
    throw_range(env, "c overlaps an input");
    return NULL;
  }
  const ll_gemm_t whole = {pa, pb, pc, pbias, m, n, k, transA ? m : k, transB ? k : n, n, transA, transB, 0};
  const int rc = ll_gemm_batch(ll_isa, &whole, batch, aBatched, bBatched, atomic_load(&ll_threads));
  if (rc != 0) napi_throw_error(env, NULL, rc == -2 ? "lora-lab-native gemm: out of memory" : "lora-lab-native gemm: out of memory for the packing buffers");
  return NULL;
}

// exp(x, xOff, out, outOff, count): out[outOff + i] = e^x[xOff + i]. out may be x itself at the
// same offset (in place) but not partly overlap it.
static napi_value js_exp(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, "exp", 5, "x, xOff, out, outOff, count", argv)) return NULL;
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
    throw_range(env, "out partly overlaps x");
    return NULL;
  }
  if (px == po) {
    // In place: through a small buffer, since the loops are compiled for non-aliasing arrays.
    float tmp[1024];
    for (int64_t i = 0; i < count; i += 1024) {
      const int64_t len = count - i < 1024 ? count - i : 1024;
      ll_isa->exp(po + i, tmp, len);
      memcpy(po + i, tmp, (size_t)len * sizeof(float));
    }
  } else {
    ll_isa->exp(px, po, count);
  }
  return NULL;
}

// geluTanh(x, xOff, y, yOff, s, sOff, count): y = GELU(x), s = σ(z) (kept for the gradient).
// geluTanhGrad(dy, dyOff, x, xOff, s, sOff, dx, dxOff, count): dx. Outputs may not overlap inputs.
static napi_value js_gelu_common(napi_env env, napi_callback_info info, int grad) {
  napi_value argv[9];
  const int want = grad ? 9 : 7;
  if (!get_args(env, info, grad ? "geluTanhGrad" : "geluTanh", (size_t)want,
                grad ? "dy, dyOff, x, xOff, s, sOff, dx, dxOff, count" : "x, xOff, y, yOff, s, sOff, count", argv)) {
    return NULL;
  }
  int64_t count;
  if (!get_count(env, argv[want - 1], "count", &count)) return NULL;
  const array_arg fwd[] = {{"x", 0, count, 0}, {"y", 2, count, 0}, {"s", 4, count, 0}};
  const array_arg bwd[] = {{"dy", 0, count, 0}, {"x", 2, count, 0}, {"s", 4, count, 0}, {"dx", 6, count, 0}};
  const array_arg *specs = grad ? bwd : fwd;
  const int na = grad ? 4 : 3;
  float *p[4];
  if (!get_arrays(env, argv, specs, na, p) || outputs_overlap(env, specs, na, grad ? 3 : 1, p)) return NULL;
  if (grad) ll_isa->gelu_grad(p[0], p[1], p[2], p[3], count);
  else ll_isa->gelu(p[0], p[1], p[2], count);
  return NULL;
}
static napi_value js_gelu(napi_env env, napi_callback_info info) { return js_gelu_common(env, info, 0); }
static napi_value js_gelu_grad(napi_env env, napi_callback_info info) { return js_gelu_common(env, info, 1); }

// norm(x, xOff, w, wOff, b|null, bOff, y, yOff, stats, statsOff, rows, dim, eps, center)
// normGrad(dy, dyOff, x, xOff, w, wOff, stats, statsOff, dx, dxOff, dw, dwOff, db|null, dbOff, rows, dim, center)
static napi_value js_norm_common(napi_env env, napi_callback_info info, int grad) {
  napi_value argv[17];
  const int want = grad ? 17 : 14;
  if (!get_args(env, info, grad ? "normGrad" : "norm", (size_t)want,
                grad ? "dy, dyOff, x, xOff, w, wOff, stats, statsOff, dx, dxOff, dw, dwOff, db, dbOff, rows, dim, center"
                     : "x, xOff, w, wOff, b, bOff, y, yOff, stats, statsOff, rows, dim, eps, center",
                argv)) {
    return NULL;
  }
  int64_t rows, dim, center;
  const int base = grad ? 14 : 10;
  if (!get_count(env, argv[base], "rows", &rows) || !get_count(env, argv[base + 1], "dim", &dim)) return NULL;
  if (!get_count(env, argv[want - 1], "center", &center) || center > 1) {
    if (!exception_pending(env)) throw_range(env, "center must be 0 or 1");
    return NULL;
  }
  const int64_t n = rows * dim;
  const array_arg fwd[] = {{"x", 0, n, 0}, {"w", 2, dim, 0}, {"b", 4, dim, 1}, {"y", 6, n, 0}, {"stats", 8, 2 * rows, 0}};
  const array_arg bwd[] = {{"dy", 0, n, 0}, {"x", 2, n, 0}, {"w", 4, dim, 0}, {"stats", 6, 2 * rows, 0},
                           {"dx", 8, n, 0}, {"dw", 10, dim, 0}, {"db", 12, dim, 1}};
  const array_arg *specs = grad ? bwd : fwd;
  const int na = grad ? 7 : 5;
  float *p[7];
  // Outputs (forward: y, stats; backward: dx, dw, db) may not overlap any other array.
  if (!get_arrays(env, argv, specs, na, p) || outputs_overlap(env, specs, na, grad ? 4 : 3, p)) return NULL;
  if (grad) {
    ll_norm_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], rows, dim, (int)center);
    return NULL;
  }
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
    throw_range(env, "eps must be a number ≥ 0");
    return NULL;
  }
  ll_norm_forward(p[0], p[1], p[2], p[3], p[4], rows, dim, (float)eps, (int)center);
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
  return make_string(env, ll_isa->name);
}

static napi_value js_isas(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr;
  CHECK(env, napi_create_array(env, &arr));
  uint32_t idx = 0;
  for (size_t i = 0; i < ll_isa_count; i++) {
    if (ll_isa_by_name(ll_isa_names[i]) && ll_cpu_has(ll_isa_names[i])) {
      napi_value s = make_string(env, ll_isa_names[i]);
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
    napi_throw_type_error(env, NULL, "lora-lab-native selectIsa: expected \"avx512\", \"avx2\", \"neon\" or \"generic\"");
    return NULL;
  }
  const ll_isa_t *isa = ll_isa_by_name(name);
  if (!isa || !ll_cpu_has(name)) {
    char msg[160];
    snprintf(msg, sizeof msg, "lora-lab-native selectIsa: \"%s\" is not available on this CPU (expected one of isas())", name);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  ll_isa = isa;
  return make_string(env, isa->name);
}

static napi_value js_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  CHECK(env, napi_create_uint32(env, (uint32_t)atomic_load(&ll_threads), &v));
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
  atomic_store(&ll_threads, (int)d);
  return js_threads(env, info);
}

// ---------------------------------------------------------------------------------------------
// Frozen weights: the handle holds a reference to the bytes, so they live as long as it does.
typedef struct {
  ll_frozen_t w;
  napi_ref keep;
} frozen_handle;

static void frozen_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  frozen_handle *h = (frozen_handle *)data;
  if (h->keep) napi_delete_reference(env, h->keep);
  free(h);
}

// Reads argument v as a handle from frozenWeight; throws a TypeError otherwise.
static const ll_frozen_t *get_frozen(napi_env env, napi_value v) {
  napi_valuetype t;
  void *p = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    char msg[128];
    snprintf(msg, sizeof msg, "lora-lab-native %s: w must be a handle from frozenWeight", t_fn);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return &((const frozen_handle *)p)->w;
}

// frozenWeight(bytes: Uint8Array, dtype: "F32" | "BF16" | "F16", rows, cols) → a handle (external).
static napi_value js_frozen_weight(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, "frozenWeight", 4, "bytes, dtype, rows, cols", argv)) return NULL;
  void *data;
  size_t length;
  if (!get_typed(env, argv[0], napi_uint8_array, "bytes", "a Uint8Array", &data, &length)) return NULL;
  char name[8] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lora-lab-native frozenWeight: dtype must be \"F32\", \"BF16\" or \"F16\"");
    return NULL;
  }
  const int dtype = strcmp(name, "F32") == 0 ? LL_F32 : strcmp(name, "BF16") == 0 ? LL_BF16 : strcmp(name, "F16") == 0 ? LL_F16 : -1;
  if (dtype < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "dtype must be \"F32\", \"BF16\" or \"F16\", got \"%s\"", name);
    throw_range(env, msg);
    return NULL;
  }
  int64_t rows, cols;
  if (!get_count(env, argv[2], "rows", &rows) || !get_count(env, argv[3], "cols", &cols)) return NULL;
  const uint64_t need = (uint64_t)rows * (uint64_t)cols * (dtype == LL_F32 ? 4u : 2u);
  if (need != length) {
    char msg[200];
    snprintf(msg, sizeof msg, "[%lld, %lld] %s needs %llu bytes but has %llu",
             (long long)rows, (long long)cols, name, (unsigned long long)need, (unsigned long long)length);
    throw_range(env, msg);
    return NULL;
  }
  frozen_handle *h = (frozen_handle *)calloc(1, sizeof *h);
  if (!h) {
    napi_throw_error(env, NULL, "lora-lab-native frozenWeight: out of memory");
    return NULL;
  }
  h->w.data = (const uint8_t *)data;
  h->w.dtype = dtype;
  h->w.rows = rows;
  h->w.cols = cols;
  napi_value handle;
  if (napi_create_reference(env, argv[0], 1, &h->keep) != napi_ok ||
      napi_create_external(env, h, frozen_finalize, NULL, &handle) != napi_ok) {
    if (h->keep) napi_delete_reference(env, h->keep);
    free(h);
    napi_throw_error(env, NULL, "lora-lab-native frozenWeight: N-API call failed");
    return NULL;
  }
  return handle;
}

static napi_value js_frozen_matmul(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, "frozenMatMul", 7, "w, x, xOff, y, yOff, n, mode", argv)) return NULL;
  const ll_frozen_t *w = get_frozen(env, argv[0]);
  if (!w) return NULL;
  f32view x, y;
  int64_t xOff, yOff, n, mode;
  if (!get_f32(env, argv[1], "x", &x) || !get_count(env, argv[2], "xOff", &xOff) || !get_f32(env, argv[3], "y", &y) ||
      !get_count(env, argv[4], "yOff", &yOff) || !get_count(env, argv[5], "n", &n) || !get_count(env, argv[6], "mode", &mode)) {
    return NULL;
  }
  if (mode > 1) {
    throw_range(env, "mode must be 0 (x·Wᵀ) or 1 (x·W)");
    return NULL;
  }
  const int64_t k = mode == 0 ? w->cols : w->rows, outs = mode == 0 ? w->rows : w->cols;
  if ((double)n * (double)(k > outs ? k : outs) > 9.0e15) {
    throw_range(env, "n·k exceeds 2^53");
    return NULL;
  }
  if (!range_ok(env, "x", xOff, n * k, x.length) || !range_ok(env, "y", yOff, n * outs, y.length)) return NULL;
  float *py = y.data + yOff;
  const float *px = x.data + xOff;
  if (overlaps(py, n * outs, px, n * k)) {
    throw_range(env, "y overlaps x");
    return NULL;
  }
  const int rc = ll_frozen_matmul(ll_isa, w, px, py, n, (int)mode, atomic_load(&ll_threads));
  if (rc != 0) {
    napi_throw_error(env, NULL, rc == -3 ? "lora-lab-native frozenMatMul: out of memory for the widened block"
                                         : "lora-lab-native frozenMatMul: out of memory for the packing buffers");
  }
  return NULL;
}

static napi_value js_frozen_gather(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, "frozenGather", 6, "w, idx, idxOff, count, out, outOff", argv)) return NULL;
  const ll_frozen_t *w = get_frozen(env, argv[0]);
  if (!w) return NULL;
  void *idata;
  size_t ilen;
  if (!get_typed(env, argv[1], napi_int32_array, "idx", "an Int32Array", &idata, &ilen)) return NULL;
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
      snprintf(msg, sizeof msg, "idx[%lld] = %d is outside [0, %lld)", (long long)i, idx[i], (long long)w->rows);
      throw_range(env, msg);
      return NULL;
    }
  }
  ll_frozen_gather(w, idx, count, out.data + outOff);
  return NULL;
}

// softmaxRows(s, sOff, mask, maskOff, maskRows, p, pOff, rows, cols, divisor): p = softmax(s / divisor +
// mask) over each row, the mask ([maskRows, cols], or null) repeated over the rows. softmaxRowsGrad(p,
// pOff, dp, dpOff, ds, dsOff, rows, cols, divisor): its gradient. Outputs may not overlap inputs.
static int get_divisor(napi_env env, napi_value v, float *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d > 0) || !isfinite(d)) {
    throw_range(env, "divisor must be a positive finite number");
    return 0;
  }
  *out = (float)d;
  return 1;
}

static napi_value js_softmax_rows(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, "softmaxRows", 10, "s, sOff, mask, maskOff, maskRows, p, pOff, rows, cols, divisor", argv)) return NULL;
  int64_t rows, cols, maskRows;
  float divisor;
  if (!get_count(env, argv[4], "maskRows", &maskRows) || !get_count(env, argv[7], "rows", &rows) || !get_count(env, argv[8], "cols", &cols) ||
      !get_divisor(env, argv[9], &divisor)) {
    return NULL;
  }
  if ((double)rows * (double)cols > 9.0e15) {
    throw_range(env, "rows·cols exceeds 2^53");
    return NULL;
  }
  const int hasMask = !is_nullish(env, argv[2]);
  if (hasMask && (maskRows == 0 || rows % maskRows != 0)) {
    throw_range(env, "maskRows must divide rows");
    return NULL;
  }
  const array_arg specs[] = {{"s", 0, rows * cols, 0}, {"mask", 2, maskRows * cols, 1}, {"p", 5, rows * cols, 0}};
  float *ptrs[3];
  if (!get_arrays(env, argv, specs, 3, ptrs) || outputs_overlap(env, specs, 3, 2, ptrs)) return NULL;
  ll_softmax_rows(ll_isa, ptrs[0], ptrs[1], maskRows, ptrs[2], rows, cols, divisor, atomic_load(&ll_threads));
  return NULL;
}

static napi_value js_softmax_rows_grad(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!get_args(env, info, "softmaxRowsGrad", 9, "p, pOff, dp, dpOff, ds, dsOff, rows, cols, divisor", argv)) return NULL;
  int64_t rows, cols;
  float divisor;
  if (!get_count(env, argv[6], "rows", &rows) || !get_count(env, argv[7], "cols", &cols) || !get_divisor(env, argv[8], &divisor)) return NULL;
  if ((double)rows * (double)cols > 9.0e15) {
    throw_range(env, "rows·cols exceeds 2^53");
    return NULL;
  }
  const array_arg specs[] = {{"p", 0, rows * cols, 0}, {"dp", 2, rows * cols, 0}, {"ds", 4, rows * cols, 0}};
  float *ptrs[3];
  if (!get_arrays(env, argv, specs, 3, ptrs) || outputs_overlap(env, specs, 3, 2, ptrs)) return NULL;
  ll_softmax_rows_grad(ptrs[0], ptrs[1], ptrs[2], rows, cols, divisor, atomic_load(&ll_threads));
  return NULL;
}

// softmaxXent(z, zOff, rows, vocab, labels, scale, loss): loss[i] = log Σ e^z[i] − z[i, labels[i]]
// for the rows × vocab logits at z[zOff..]; with scale (a Float32Array of rows, or null) the logits
// are overwritten in place by the gradient scale[i] · (softmax(z[i]) − onehot(labels[i])).
static napi_value js_softmax_xent(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, "softmaxXent", 7, "z, zOff, rows, vocab, labels, scale, loss", argv)) return NULL;
  f32view z, loss, scale = {NULL, 0};
  int64_t zOff, rows, vocab;
  void *ldata;
  size_t llen;
  const int hasScale = !is_nullish(env, argv[5]);
  if (!get_f32(env, argv[0], "z", &z) || !get_count(env, argv[1], "zOff", &zOff) || !get_count(env, argv[2], "rows", &rows) ||
      !get_count(env, argv[3], "vocab", &vocab) || !get_typed(env, argv[4], napi_int32_array, "labels", "an Int32Array", &ldata, &llen) ||
      (hasScale && !get_f32(env, argv[5], "scale", &scale)) || !get_f32(env, argv[6], "loss", &loss)) {
    return NULL;
  }
  if ((double)rows * (double)vocab > 9.0e15) {
    throw_range(env, "rows·vocab exceeds 2^53");
    return NULL;
  }
  if (!range_ok(env, "z", zOff, rows * vocab, z.length) || !range_ok(env, "labels", 0, rows, llen) ||
      (hasScale && !range_ok(env, "scale", 0, rows, scale.length)) || !range_ok(env, "loss", 0, rows, loss.length)) {
    return NULL;
  }
  const int32_t *labels = (const int32_t *)ldata;
  for (int64_t i = 0; i < rows; i++) {
    if (labels[i] < 0 || labels[i] >= vocab) {
      char msg[160];
      snprintf(msg, sizeof msg, "labels[%lld] = %d is outside [0, %lld)", (long long)i, labels[i], (long long)vocab);
      throw_range(env, msg);
      return NULL;
    }
  }
  float *pz = z.data + zOff;
  if (overlaps(loss.data, rows, pz, rows * vocab) || (hasScale && overlaps(scale.data, rows, pz, rows * vocab))) {
    throw_range(env, "loss or scale overlaps z");
    return NULL;
  }
  if (rows == 0 || vocab == 0) return NULL;
  ll_softmax_xent(ll_isa, pz, rows, vocab, labels, hasScale ? scale.data : NULL, loss.data, atomic_load(&ll_threads));
  return NULL;
}

// ---------------------------------------------------------------------------------------------
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
  ll_free_thread_buffers();
}

NAPI_MODULE_INIT() {
  static pthread_once_t pinned = PTHREAD_ONCE_INIT;
  pthread_once(&pinned, pin_library);
  if (!ll_isa) ll_isa = ll_best_isa();
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
    {"softmaxXent", NULL, js_softmax_xent, NULL, NULL, NULL, napi_enumerable, NULL},
    {"softmaxRows", NULL, js_softmax_rows, NULL, NULL, NULL, napi_enumerable, NULL},
    {"softmaxRowsGrad", NULL, js_softmax_rows_grad, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value version;
  if (napi_create_uint32(env, LL_VERSION, &version) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "version", version) != napi_ok) return NULL;
  return exports;
}
