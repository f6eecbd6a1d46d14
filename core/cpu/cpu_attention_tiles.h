// The tile arithmetic the CPU attention kernels share (cpu_attention.cpp, forward;
// cpu_attention_backward.cpp): single-threaded OpenBLAS products on tiles (each kernel
// parallelises over tiles itself, so a product never splits its inner dimension differently on
// another thread count), tiles widened to the compute type, the score tile with its causal rule
// and mask, and a vectorised exp. Compute type: f32 for 16-bit and f32 inputs, f64 for f64.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/attention_geometry.h"
#include "core/cpu/dispatch.h"

namespace zt::cpu::attention_tiles {

// Queries and keys per tile. A 64 x 128 score tile (32 KB in f32) stays in L2 with its q, k and
// v tiles; measured on the bench's shapes, larger query tiles gained nothing.
inline constexpr int64_t kQueryTile = 64;
inline constexpr int64_t kKeyTile = 128;

// Row-major C[m, n] = alpha * op(A) op(B) + beta * C on one thread; nothing to do when m or n
// is 0, and C = beta * C when k is 0.
void tile_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);
void tile_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha,
               const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
               int64_t ldc);

// row[j] = exp(row[j] - shift) for j < count (0 where row[j] is -inf); returns their sum.
// shift must be finite. The f32 version is a vectorised polynomial (relative error below
// 2e-7), the f64 one std::exp.
float exp_shifted(float* row, int64_t count, float shift);
double exp_shifted(double* row, int64_t count, double shift);

// `count` elements from `source` in the compute type C: the source itself when T is C, else
// widened into `buffer`.
template <typename T, typename C = compute_type<T>>
const C* widened(const T* source, int64_t count, std::vector<C>& buffer) {
  if constexpr (std::is_same_v<T, C>) {
    return source;
  } else {
    buffer.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) buffer[size_t(i)] = C(source[i]);
    return buffer.data();
  }
}

// The mask plane of batch b (typed by args.mask), or null when there is no mask.
struct MaskPlane {
  const uint8_t* keep = nullptr;  // keep_u8
  const void* bias = nullptr;     // additive, in the input dtype T
};
inline MaskPlane mask_plane(const AttentionArgs& args, const void* mask_data, size_t element_bytes,
                            int64_t b) {
  MaskPlane plane;
  if (args.mask == AttentionMask::none) return plane;
  const char* start = static_cast<const char*>(mask_data) +
                      attention_mask_batch_offset(args, b) * int64_t(element_bytes);
  if (args.mask == AttentionMask::keep_u8) {
    plane.keep = reinterpret_cast<const uint8_t*>(start);
  } else {
    plane.bias = start;
  }
  return plane;
}

// scores[i * ld + j] (the scaled q.k of query l0 + i and key s0 + j) with the causal rule and
// the mask applied: -inf where a position may not attend, the additive mask added elsewhere.
template <typename T, typename C>
void apply_masks(const AttentionArgs& args, const MaskPlane& plane, int64_t l0, int64_t rows,
                 int64_t s0, int64_t cols, C* scores, int64_t ld) {
  constexpr C kMinusInf = -std::numeric_limits<C>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t l = l0 + i;
    C* row = scores + i * ld;
    const int64_t visible = attention_key_end(args, l) - s0;
    for (int64_t j = visible < 0 ? 0 : visible; j < cols; ++j) row[j] = kMinusInf;
    const int64_t mask_row = l * args.mask_stride_l + s0 * args.mask_stride_s;
    if (plane.keep != nullptr) {
      for (int64_t j = 0; j < cols; ++j) {
        if (plane.keep[mask_row + j * args.mask_stride_s] == 0) row[j] = kMinusInf;
      }
    } else if (plane.bias != nullptr) {
      const T* bias = static_cast<const T*>(plane.bias) + mask_row;
      for (int64_t j = 0; j < cols; ++j) row[j] += C(bias[j * args.mask_stride_s]);
    }
  }
}

// Multiplies the weights of row l (keys s0 ..) by keep / (1 - p), zeroing the dropped ones.
template <typename C>
void apply_dropout(const AttentionArgs& args, int64_t b, int64_t l, int64_t s0, int64_t cols,
                   C* row) {
  const C inverse_keep = C(1.0 / (1.0 - args.dropout_p));
  const bool f64_draw = std::is_same_v<C, double>;
  for (int64_t j = 0; j < cols; ++j) {
    row[j] = attention_dropout_keeps(args, b, l, s0 + j, f64_draw) ? row[j] * inverse_keep : C(0);
  }
}

}  // namespace zt::cpu::attention_tiles
