// Quantized weights stored as integers: codes of 8 bits (5-8 bit widths) or 4 bits, two to a
// byte (1-4 bit widths), with one scale and zero code per row, so a value is (code - zero) *
// scale exactly as the quantizer produced it. A compressed model file is safetensors: packed
// weights as NAME.codes (u8), NAME.scales (f32), NAME.zero_codes (i32) and a metadata entry
// NAME -> {"bits", "shape", "signed"}; every other tensor as it is.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace zt::compress {

struct PackedWeight {
  int bits = 8;                     // of each code: 8, or 4 for widths up to 4
  bool is_signed = true;            // symmetric grids have signed codes
  Shape shape;                      // of the weight; dim 0 is the rows
  std::vector<uint8_t> codes;       // row-major, two 4-bit codes a byte (low nibble first)
  std::vector<float> scales;        // one per row
  std::vector<int32_t> zero_codes;  // one per row
};

// Packs `values` (f32, row-major, shape `shape`), each row of which lies on one grid of
// `grid_bits` bits with the row's (scale, zero_code). Throws std::invalid_argument when a value
// is not on its row's grid (it would not survive packing).
PackedWeight pack_weight(const std::vector<float>& values, const Shape& shape, int grid_bits,
                         bool is_signed, const std::vector<float>& scales,
                         const std::vector<int32_t>& zero_codes);
std::vector<float> unpack_weight(const PackedWeight& packed);

// Writes `tensors` (f32 and others as they are) and `packed` weights to `path` (a temp name,
// then renamed), with `metadata` (the model's description) beside the packing entries.
void save_compressed_model(const std::string& path, const NamedTensors& tensors,
                           const std::map<std::string, PackedWeight>& packed,
                           const SafetensorsMetadata& metadata = {});
// Reads a compressed model file back as plain tensors (packed weights dequantized to f32) in
// the order they were saved, ready for load_state_dict.
NamedTensors load_compressed_model(const std::string& path);

}  // namespace zt::compress
