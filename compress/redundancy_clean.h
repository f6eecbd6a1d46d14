// redundancy_clean: the end of compression training. The masks are baked in and what they
// pruned is removed for real: a pruned row of a Linear or output channel of a Conv2d leaves
// the weight and bias, and the related modules (which read those outputs) lose the matching
// input columns or channels; quantized weights keep their grid and are stored packed
// (compress/packed_weights.h). The result loads into a model built with the smaller sizes and
// computes what the compressed model computed.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "compress/packed_weights.h"
#include "core/safetensors.h"

namespace zt::compress {

struct CleanedModel {
  NamedTensors tensors;  // every tensor of the state, smaller where pruned (f32)
  // Quantized weights by tensor name ("fc1.weight"), packed; their f32 values are in `tensors`.
  std::map<std::string, PackedWeight> packed;
  int64_t parameter_count = 0;  // elements of `tensors`
};

// Cleans `state` (a model's state dict) with the modules' final compression state
// (Compressor::state_at). Throws std::invalid_argument naming the module when a related module
// cannot lose the pruned inputs (sizes that do not divide) or quantize groups do not align with
// rows (packing keeps one grid a row).
CleanedModel redundancy_clean(const NamedTensors& state,
                              const std::vector<ModuleCompression>& compression);

// Writes the cleaned model: unquantized tensors as they are, quantized weights packed.
void save_cleaned_model(const std::string& path, const CleanedModel& model,
                        const SafetensorsMetadata& metadata = {});

}  // namespace zt::compress
