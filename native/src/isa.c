// The instruction sets: each one's micro-kernel, block sizes and elementwise kernels, which of them
// this CPU runs, and the one in use.
//
// Block sizes: a B micro-panel (kc × nr) stays in L1 while the A block (mc × kc) streams from L2;
// the B block (kc × nc) lives in L2/L3. mc is a multiple of mr and nc of nr: the packing buffers
// hold whole micro-panels. The threads of a row split share up to SHARED_B floats of packed op(B)
// (4 MB: two kc × nc blocks at the largest nc, all of op(B) for most such products), so that they
// meet at a barrier once per product rather than once per block.
#include "lora_lab.h"

#include <string.h>

enum { SHARED_B = 1 << 20 };

static const ll_isa_t ISA_GENERIC = {"generic", LL_GENERIC_MR, LL_GENERIC_NR, 256, 128, 2048, SHARED_B, ll_micro_generic, ll_exp_generic, ll_gelu_generic, ll_gelu_grad_generic};
_Static_assert(128 % LL_GENERIC_MR == 0 && 2048 % LL_GENERIC_NR == 0, "generic: mc, nc must hold whole micro-panels");
#ifdef LL_X86
static const ll_isa_t ISA_AVX2 = {"avx2", LL_AVX2_MR, LL_AVX2_NR, 256, 144, 2048, SHARED_B, ll_micro_avx2, ll_exp_avx2, ll_gelu_avx2, ll_gelu_grad_avx2};
_Static_assert(144 % LL_AVX2_MR == 0 && 2048 % LL_AVX2_NR == 0, "avx2: mc, nc must hold whole micro-panels");
static const ll_isa_t ISA_AVX512 = {"avx512", LL_AVX512_MR, LL_AVX512_NR, 256, 144, 2048, SHARED_B, ll_micro_avx512, ll_exp_avx512, ll_gelu_avx512, ll_gelu_grad_avx512};
_Static_assert(144 % LL_AVX512_MR == 0 && 2048 % LL_AVX512_NR == 0, "avx512: mc, nc must hold whole micro-panels");
#endif
#ifdef LL_ARM64
// The elementwise kernels are the generic ones: on arm64 the compiler vectorises them with NEON.
// nc = 2040, not 2048: a whole number of 12-column panels.
static const ll_isa_t ISA_NEON = {"neon", LL_NEON_MR, LL_NEON_NR, 256, 128, 2040, SHARED_B, ll_micro_neon, ll_exp_generic, ll_gelu_generic, ll_gelu_grad_generic};
_Static_assert(128 % LL_NEON_MR == 0 && 2040 % LL_NEON_NR == 0, "neon: mc, nc must hold whole micro-panels");
#endif

const char *const ll_isa_names[] = {"avx512", "avx2", "neon", "generic"};
const size_t ll_isa_count = sizeof ll_isa_names / sizeof ll_isa_names[0];

const ll_isa_t *volatile ll_isa = NULL;

int ll_cpu_has(const char *name) {
#ifdef LL_X86
  __builtin_cpu_init();
  if (strcmp(name, "avx512") == 0) return __builtin_cpu_supports("avx512f");
  if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#ifdef LL_ARM64
  if (strcmp(name, "neon") == 0) return 1;
#endif
  return strcmp(name, "generic") == 0;
}

const ll_isa_t *ll_isa_by_name(const char *name) {
#ifdef LL_X86
  if (strcmp(name, "avx512") == 0) return &ISA_AVX512;
  if (strcmp(name, "avx2") == 0) return &ISA_AVX2;
#endif
#ifdef LL_ARM64
  if (strcmp(name, "neon") == 0) return &ISA_NEON;
#endif
  if (strcmp(name, "generic") == 0) return &ISA_GENERIC;
  return NULL;
}

const ll_isa_t *ll_best_isa(void) {
  for (size_t i = 0; i < ll_isa_count; i++) {
    const ll_isa_t *isa = ll_isa_by_name(ll_isa_names[i]);
    if (isa && ll_cpu_has(ll_isa_names[i])) return isa;
  }
  return &ISA_GENERIC;
}
