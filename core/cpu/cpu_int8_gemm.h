// Integer matrix product for quantized inference: C[m, n] = sum_k A[m, k] * B[n, k], A unsigned
// 8-bit (activation codes, one row per token), B signed 8-bit (weight codes, one row per
// output feature, the layout of a Linear's weight), C exact int32. AVX-512 VNNI (vpdpbusd)
// where the processor has it, a portable loop elsewhere: both give the same integers.
// Invariant: k <= kInt8GemmMaxK, so that no int32 sum can overflow (255 * 128 * k < 2^31).
#pragma once

#include <cstdint>

namespace zt::cpu {

inline constexpr int64_t kInt8GemmMaxK = 65535;

struct Int8GemmArgs {
  const uint8_t* a = nullptr;  // [m, lda], the first k of each row used
  int64_t lda = 0;
  const int8_t* b = nullptr;  // [n, ldb]
  int64_t ldb = 0;
  // Optional: B already in the VNNI path's panel layout (int8_gemm_pack_b), so that a weight
  // used every call is packed once; the portable path still reads `b`, which must be the same.
  const int8_t* b_packed = nullptr;
  int32_t* c = nullptr;  // [m, ldc]
  int64_t ldc = 0;
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
// Whether this processor and build have the VNNI path.
bool int8_gemm_has_vnni();
// The VNNI path, in parallel and on the calling thread; call only where int8_gemm_has_vnni().
void int8_gemm_vnni(const Int8GemmArgs& args);
void int8_gemm_vnni_serial(const Int8GemmArgs& args);

}  // namespace zt::cpu
