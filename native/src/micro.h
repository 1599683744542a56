// What every micro-kernel file shares: writing a tile of sums into C. Inline, so each file compiles
// it with its own instruction set.
#ifndef LORA_LAB_MICRO_H
#define LORA_LAB_MICRO_H

#include "lora_lab.h"

// Writes an MR×NR tile of sums (row-major, nr per row) into C: C = acc (+ bias) on the first k
// block, C += acc on later ones; only the rows × cols inside C.
static inline void ll_store_tile(const float *acc, int nr, float *c, int64_t ldc, int64_t rows, int64_t cols, int first, const float *bias) {
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

#endif
