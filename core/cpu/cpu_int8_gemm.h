// Integer matrix product for quantized inference: C[m, n] = sum_k A[m, k] * B[n, k], A unsigned
// 8-bit (activation codes, one row per token), B signed 8-bit (weight codes, one row per
// output feature, the layout of a Linear's weight), C exact int32. AVX-512 VNNI (vpdpbusd)
// where the processor has it, a portable loop elsewhere: both give the same integers.
// Invariant: k <= kInt8GemmMaxK, so that no int32 sum can overflow (255 * 128 * k < 2^31).
#pragma once

#include <cstdint>

namespace zt::cpu {

inline constexpr int64_t kInt8GemmMaxK = 65535;

// Optional epilogue that turns each exact int32 sum into the f32 output of a quantized Linear
// while it is still in registers, instead of writing C:
//   Y[i, j] = row_scales[i] * col_scales[j] *
//             (float(C[i, j] - row_zeros[i] * col_sums[j]) - row_sums[i] * col_zeros[j])
//             + bias[j], then gelu_tanh (core/cpu/cpu_gelu_tanh.h) when asked.
// C - row_zero * col_sum is taken modulo 2^32 (it is exact when it fits int32, which the
// callers' bounds ensure). col_zeros (with row_sums) and bias may be null: zero; col_scales
// may be null: one (a weight with one scale for all its rows folds it into row_scales).
struct Int8GemmRescale {
  float* y = nullptr;  // [m, ldy]
  int64_t ldy = 0;
  const float* row_scales = nullptr;   // [m]
  const int32_t* row_zeros = nullptr;  // [m]
  const float* row_sums = nullptr;     // [m], read only with col_zeros
  const float* col_scales = nullptr;   // [n] or null
  const int32_t* col_sums = nullptr;   // [n]
  const float* col_zeros = nullptr;    // [n] or null
  const float* bias = nullptr;         // [n] or null
  bool gelu_tanh = false;
};

// The epilogue on `count` sums of row i from column j on, into Y: what every path applies.
void int8_gemm_rescale_row(const Int8GemmRescale& rescale, int64_t i, int64_t j, int64_t count,
                           const int32_t* sums);

struct Int8GemmArgs {
  const uint8_t* a = nullptr;  // [m, lda], the first k of each row used
  int64_t lda = 0;
  const int8_t* b = nullptr;  // [n, ldb]; may be null when b_packed is given
  int64_t ldb = 0;
  // Optional: B already in the VNNI path's panel layout (int8_gemm_pack_b), so that a weight
  // used every call is packed once. Every path reads it when given (a layer may hold its
  // codes only so); with both, they must hold the same B.
  const int8_t* b_packed = nullptr;
  int32_t* c = nullptr;  // [m, ldc]; unused (may be null) with `rescale`
  int64_t ldc = 0;
  const Int8GemmRescale* rescale = nullptr;  // f32 Y instead of C
  int64_t m = 0, n = 0, k = 0;
};

// The fastest path this processor has (VNNI, else portable). Throws on k > kInt8GemmMaxK.
void int8_gemm(const Int8GemmArgs& args);
// The same on the calling thread only: for a caller that already runs one task per thread
// (a layer doing its rows' quantization, product and rescaling in one parallel loop).
void int8_gemm_serial(const Int8GemmArgs& args);
// The plain loops, in parallel over rows.
void int8_gemm_portable(const Int8GemmArgs& args);
// Bytes of B [n, k] in the VNNI path's layout: 64-column panels of [ceil(k/4)][64][4] bytes,
// zeros past n and past k. The layout is defined on every processor; only VNNI reads it.
int64_t int8_gemm_packed_b_bytes(int64_t n, int64_t k);
// B [n, ldb] into that layout (`packed` holds int8_gemm_packed_b_bytes(n, k) bytes).
void int8_gemm_pack_b(const int8_t* b, int64_t ldb, int64_t n, int64_t k, int8_t* packed);
// The inverse: B [n, ldb] (its first k columns) from that layout, for saving or inspecting a
// weight held packed only.
void int8_gemm_unpack_b(const int8_t* packed, int64_t n, int64_t k, int8_t* b, int64_t ldb);
// B[j, p] read from that layout.
inline int8_t int8_gemm_packed_b_at(const int8_t* packed, int64_t k, int64_t j, int64_t p) {
  const int64_t panel_bytes = (k + 3) / 4 * 64 * 4;
  return packed[j / 64 * panel_bytes + (p / 4 * 64 + j % 64) * 4 + p % 4];
}
// Whether this processor and build have the VNNI path.
bool int8_gemm_has_vnni();
// The VNNI path, in parallel and on the calling thread; call only where int8_gemm_has_vnni().
void int8_gemm_vnni(const Int8GemmArgs& args);
void int8_gemm_vnni_serial(const Int8GemmArgs& args);

}  // namespace zt::cpu
