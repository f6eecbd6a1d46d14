// Group-wise weight quantization and the unpacking that the quantized GEMMs use.
#include "quant/weight_quantization.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/factory.h"
#include "core/parallel.h"

namespace zt::quant {

namespace {

struct CodeRange {
  int low, high;
};

// Symmetric grids drop the most negative code so that +-max map to +-qmax alike.
CodeRange code_range(int bits, QuantizationType type) {
  int qmax = (1 << (bits - 1)) - 1;
  return {type == QuantizationType::symmetric ? -qmax : -qmax - 1, qmax};
}

struct GroupGrid {
  float scale;
  int zero;
};

GroupGrid group_grid(const float* values, int64_t count, CodeRange range, QuantizationType type) {
  float low = 0.0f, high = 0.0f;  // the range always holds 0, so that 0 is exact
  for (int64_t i = 0; i < count; ++i) {
    low = std::min(low, values[i]);
    high = std::max(high, values[i]);
  }
  if (type == QuantizationType::symmetric) {
    float max_abs = std::max(-low, high);
    return {max_abs > 0 ? max_abs / float(range.high) : 1.0f, 0};
  }
  float scale = high > low ? (high - low) / float(range.high - range.low) : 1.0f;
  // low maps to range.low: zero = range.low - low / scale, an integer inside the range.
  int zero = int(std::nearbyint(float(range.low) - low / scale));
  return {scale, std::clamp(zero, range.low, range.high)};
}

}  // namespace

size_t QuantizedWeight::nbytes() const {
  size_t bytes = codes.nbytes() + scales.nbytes();
  if (zero_points.defined()) bytes += zero_points.nbytes();
  return bytes;
}

QuantizedWeight quantize_weight(const Tensor& weight, int bits, int64_t groups,
                                QuantizationType type) {
  if (bits != 4 && bits != 8) {
    throw std::invalid_argument(
        fmt::format("quantize_weight: num_bits must be 4 or 8, got {}", bits));
  }
  if (weight.dim() != 2 || !weight.device().is_cpu()) {
    throw std::invalid_argument(fmt::format(
        "quantize_weight: expected a 2-d weight on the CPU, got {}", shape_str(weight.sizes())));
  }
  int64_t rows = weight.size(0), cols = weight.size(1);
  if (groups < 1 || rows % groups != 0) {
    throw std::invalid_argument(fmt::format(
        "quantize_weight: q_groups {} does not divide the weight's {} rows", groups, rows));
  }
  Tensor values = weight.detach().to(DType::f32).contiguous();
  const float* data = values.data_ptr<float>();
  QuantizedWeight result{bits, type, rows, cols, groups, Tensor(), Tensor(), Tensor()};
  TensorOptions param = TensorOptions().with_tag(MemoryTag::param);
  result.scales = empty({groups}, param);
  if (type == QuantizationType::asymmetric)
    result.zero_points = zeros({groups}, param.with_dtype(DType::i32));
  result.codes = bits == 8 ? empty({rows, cols}, param.with_dtype(DType::i8))
                           : zeros({rows, (cols + 1) / 2}, param.with_dtype(DType::i4x2));
  CodeRange range = code_range(bits, type);
  int64_t group_rows = rows / groups;
  parallel_for(0, groups, 1, [&](int64_t group_begin, int64_t group_end) {
    for (int64_t group = group_begin; group < group_end; ++group) {
      const float* group_values = data + group * group_rows * cols;
      GroupGrid grid = group_grid(group_values, group_rows * cols, range, type);
      result.scales.data_ptr<float>()[group] = grid.scale;
      if (type == QuantizationType::asymmetric)
        result.zero_points.data_ptr<int32_t>()[group] = grid.zero;
      for (int64_t row = group * group_rows; row < (group + 1) * group_rows; ++row) {
        for (int64_t col = 0; col < cols; ++col) {
          float scaled = std::nearbyint(data[row * cols + col] / grid.scale) + float(grid.zero);
          int code = int(std::clamp(scaled, float(range.low), float(range.high)));
          if (bits == 8) {
            result.codes.data_ptr<int8_t>()[row * cols + col] = int8_t(code);
          } else {
            uint8_t* byte =
                static_cast<uint8_t*>(result.codes.raw_data()) + row * ((cols + 1) / 2) + col / 2;
            *byte = uint8_t(*byte | ((code & 0xF) << (col % 2 == 0 ? 0 : 4)));
          }
        }
      }
    }
  });
  return result;
}

int code_at(const QuantizedWeight& weight, int64_t row, int64_t col) {
  if (weight.bits == 8) return weight.codes.data_ptr<int8_t>()[row * weight.cols + col];
  uint8_t byte =
      static_cast<const uint8_t*>(weight.codes.raw_data())[row * ((weight.cols + 1) / 2) + col / 2];
  int nibble = col % 2 == 0 ? (byte & 0xF) : (byte >> 4);
  return nibble >= 8 ? nibble - 16 : nibble;  // sign-extend the 4-bit value
}

void unpack_int4_rows(const QuantizedWeight& weight, int64_t row_begin, int64_t row_end,
                      int8_t* out) {
  const uint8_t* packed = static_cast<const uint8_t*>(weight.codes.raw_data());
  int64_t row_bytes = (weight.cols + 1) / 2;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const uint8_t* bytes = packed + row * row_bytes;
    int8_t* out_row = out + (row - row_begin) * weight.cols;
    for (int64_t col = 0; col < weight.cols; ++col) {
      uint8_t byte = bytes[col / 2];
      // Shifting the nibble to the top of a signed byte and back sign-extends it.
      int8_t high_aligned = int8_t(col % 2 == 0 ? uint8_t(byte << 4) : uint8_t(byte & 0xF0));
      out_row[col] = int8_t(high_aligned >> 4);
    }
  }
}

void dequantize_rows(const QuantizedWeight& weight, int64_t row_begin, int64_t row_end,
                     float* out) {
  const float* scales = weight.scales.data_ptr<float>();
  const int32_t* zeros =
      weight.zero_points.defined() ? weight.zero_points.data_ptr<int32_t>() : nullptr;
  int64_t group_rows = weight.rows_per_group();
  std::vector<int8_t> unpacked(weight.bits == 4 ? size_t(weight.cols) : 0);
  for (int64_t row = row_begin; row < row_end; ++row) {
    int64_t group = row / group_rows;
    float scale = scales[group];
    float zero = zeros ? float(zeros[group]) : 0.0f;
    const int8_t* codes = weight.codes.dtype() == DType::i8
                              ? weight.codes.data_ptr<int8_t>() + row * weight.cols
                              : unpacked.data();
    if (weight.bits == 4) unpack_int4_rows(weight, row, row + 1, unpacked.data());
    float* out_row = out + (row - row_begin) * weight.cols;
    for (int64_t col = 0; col < weight.cols; ++col)
      out_row[col] = scale * (float(codes[col]) - zero);
  }
}

Tensor dequantize_weight(const QuantizedWeight& weight) {
  Tensor result = empty({weight.rows, weight.cols});
  dequantize_rows(weight, 0, weight.rows, result.data_ptr<float>());
  return result;
}

}  // namespace zt::quant
