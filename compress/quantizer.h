// The weight and activation quantizers of compression training: values are quantized and
// dequantized in place (simulated quantization), in groups that each get their own scale, with
// DeepSpeed's rules: >= 3 bits a symmetric or asymmetric uniform grid, 2 bits ternary, 1 bit
// binary. compress/compressor.h applies them with the straight-through estimator;
// compress/packed_weights.h stores the same grid as integers.
#pragma once

#include <cstdint>
#include <span>

namespace zt::compress {

struct QuantizerSettings {
  int bits = 8;
  int64_t groups = 1;       // equal contiguous groups, each with its own scale
  bool symmetric = true;    // false: asymmetric (a zero point per group); needs bits >= 3
  bool stochastic = false;  // round up with probability equal to the fractional part
  uint64_t seed = 0;        // of stochastic rounding
};

// One group's grid: value = (code - zero_code) * scale for integer codes in [min_code, max_code].
// Symmetric: zero_code 0 and codes in [-2^(b-1), 2^(b-1) - 1]; asymmetric: codes in [0, 2^b - 1].
struct GroupGrid {
  float scale = 0.0f;  // 0: the group is all zeros
  int32_t zero_code = 0;
  int32_t min_code = 0, max_code = 0;
};

// The grid of one group of values (bits >= 3).
GroupGrid grid_of(std::span<const float> group, int bits, bool symmetric);

// Replaces `values` by their quantized values. values.size() must be a multiple of groups
// (std::invalid_argument otherwise, naming both).
void fake_quantize(std::span<float> values, const QuantizerSettings& settings);

// Replaces `values` by their quantized values on the grid of a fixed range [lowest, highest]
// (a static activation range): the grid grid_of makes for values with these extremes, values
// outside the range clamped to its end codes, nearest rounding; bits >= 3.
void fake_quantize_in_range(std::span<float> values, int bits, bool symmetric, float lowest,
                            float highest);

}  // namespace zt::compress
