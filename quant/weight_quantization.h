// ZeroQuant's group-wise weight quantization: a weight [rows, cols] (rows = output features)
// is cut into `groups` equal runs of rows, each with one scale (and, asymmetric, one integer
// zero point), so that value = scale * (code - zero). Codes are signed: int8 in [-128, 127],
// int4 in [-8, 7] packed two a byte (DType::i4x2, low nibble first). Symmetric grids use
// [-qmax, qmax] (qmax = 127 or 7) and zero 0; rounding is to nearest, ties to even.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace zt::quant {

enum class QuantizationType { symmetric, asymmetric };

struct QuantizedWeight {
  int bits = 8;  // 8 or 4
  QuantizationType type = QuantizationType::symmetric;
  int64_t rows = 0, cols = 0, groups = 1;
  Tensor codes;        // i8 [rows, cols], or i4x2 [rows, (cols + 1) / 2]
  Tensor scales;       // f32 [groups]
  Tensor zero_points;  // i32 [groups]; undefined when symmetric

  int64_t rows_per_group() const { return rows / groups; }
  // Bytes of codes, scales and zero points: what the quantized layer stores.
  size_t nbytes() const;
};

// `weight` f32 [rows, cols] on the CPU; `groups` must divide rows, bits be 4 or 8 (errors say
// which). An all-zero group gets scale 1.
QuantizedWeight quantize_weight(const Tensor& weight, int bits, int64_t groups,
                                QuantizationType type);

// The code at (row, col), unpacked.
int code_at(const QuantizedWeight& weight, int64_t row, int64_t col);
// Rows [row_begin, row_end) as f32 values into `out` ([row_end - row_begin, cols]): the tile
// a weight-only GEMM multiplies, so that no full f32 copy of the weight ever exists.
void dequantize_rows(const QuantizedWeight& weight, int64_t row_begin, int64_t row_end, float* out);
// The whole weight as f32 [rows, cols] (tests and inspection).
Tensor dequantize_weight(const QuantizedWeight& weight);
// Rows [row_begin, row_end) of int4 codes unpacked to int8 [row_end - row_begin, cols].
void unpack_int4_rows(const QuantizedWeight& weight, int64_t row_begin, int64_t row_end,
                      int8_t* out);

}  // namespace zt::quant
