// The tile arithmetic the CPU attention kernels share (cpu_attention.cpp, forward;
// cpu_attention_backward.cpp): single-threaded products on tiles (each kernel parallelises
// over tiles itself, so a product never splits its inner dimension differently on another
// thread count), tiles widened to the compute type, the score tile with its causal rule
// and mask, and a vectorised exp. Compute type: f32 for 16-bit and f32 inputs, f64 for f64.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/attention_geometry.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"
#include "core/tensor.h"

namespace zt::cpu::attention_tiles {

// Queries and keys per tile. A 64 x 128 score tile (32 KB in f32) stays in L2 with its q, k and
// v tiles; measured on the bench's shapes, larger query tiles gained nothing.
inline constexpr int64_t kQueryTile = 64;
inline constexpr int64_t kKeyTile = 128;

// Below this many multiply-adds a call runs on one thread: waking a team of threads costs more
// than the work (a gradient check runs thousands of tiny attentions).
inline constexpr int64_t kParallelWork = int64_t(1) << 18;
inline int threads_for(const AttentionArgs& args) {
  return args.batch * args.L * args.S * (args.E + args.Ev) > kParallelWork ? num_threads() : 1;
}

// C[m, n] = alpha * A B (+ C when `accumulate`) on one thread, where A(i, p) sits at
// a[i * a_row_stride + p * a_col_stride] (one of the two strides is 1: A or its transpose is
// row-major) and B is row-major [k, n] with row stride ldb. In f32 on a processor with AVX-512
// this is a register-blocked kernel of our own (6 rows x 64 columns of C in 24 registers),
// measured 3-4x faster on tiles than OpenBLAS, whose kernels on this kind of machine fall
// back to SSE3; elsewhere, and in f64, OpenBLAS.
void tile_product(int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t a_row_stride, int64_t a_col_stride, const float* b, int64_t ldb,
                  bool accumulate, float* c, int64_t ldc);
void tile_product(int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t a_row_stride, int64_t a_col_stride, const double* b, int64_t ldb,
                  bool accumulate, double* c, int64_t ldc);

// Keys (or values) transposed for the products, which read keys along their vectorised
// dimension: one [width, kKeyTile] block per key tile, [batch, key tiles, width, kKeyTile] in
// the compute dtype, allocated as an accounted workspace (tag other). Transposing once per
// call instead of once per pair of tiles saves a fifth of the forward, and blocks of 128 keys
// keep a tile's rows 512 bytes apart where rows S floats apart would fall into the same cache
// sets. About the size of the keys: memory stays O(T).
Tensor transposed_keys_workspace(int64_t batch, int64_t S, int64_t width, DType compute_dtype);
// Fills batch entry b's blocks from keys [batch, S, width] (zero past S).
template <typename T, typename C>
void transpose_keys_of(const T* keys, int64_t S, int64_t width, int64_t b, C* workspace) {
  const int64_t tiles = (S + kKeyTile - 1) / kKeyTile;
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t s0 = tile * kKeyTile, count = std::min(kKeyTile, S - s0);
    C* block = workspace + (b * tiles + tile) * width * kKeyTile;
    for (int64_t j = 0; j < count; ++j) {
      const T* row = keys + (b * S + s0 + j) * width;
      for (int64_t e = 0; e < width; ++e) block[e * kKeyTile + j] = C(row[e]);
    }
    for (int64_t e = 0; e < width; ++e) {
      std::fill(block + e * kKeyTile + count, block + (e + 1) * kKeyTile, C(0));
    }
  }
}
// The block of key tile s0 / kKeyTile of batch entry b in the workspace.
template <typename C>
const C* transposed_tile(const C* transposed, const AttentionArgs& args, int64_t width, int64_t b,
                         int64_t s0) {
  const int64_t tiles = (args.S + kKeyTile - 1) / kKeyTile;
  return transposed + ((b * tiles + s0 / kKeyTile) * width) * kKeyTile;
}

// row[j] = exp(row[j] - shift) for j < count (0 where row[j] is -inf); returns their sum.
// shift must be finite. The f32 version is a vectorised polynomial (relative error below
// 2e-7), the f64 one std::exp.
float exp_shifted(float* row, int64_t count, float shift);
double exp_shifted(double* row, int64_t count, double shift);

// The largest of row[0 .. count) (-inf when count is 0), and row[j] *= factor: vectorised.
float row_max(const float* row, int64_t count);
double row_max(const double* row, int64_t count);
void scale_row(float* row, int64_t count, float factor);
void scale_row(double* row, int64_t count, double factor);

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
