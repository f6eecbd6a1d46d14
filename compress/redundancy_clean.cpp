// Order of work for each module: masks baked in, the weight quantized on its training grid
// (over the full tensor, as the forward did), then rows / channels removed, then the inputs of
// related modules removed. Packing reads the grid of each remaining row from the group it came
// from.
#include "compress/redundancy_clean.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "compress/head_pruning.h"
#include "compress/mask_scores.h"
#include "compress/quantizer.h"
#include "core/factory.h"

namespace zt::compress {
namespace {

struct HostTensor {
  Shape shape;
  std::vector<float> values;
  int64_t rows() const { return shape.at(0); }
  int64_t row_size() const { return rows() == 0 ? 0 : int64_t(values.size()) / rows(); }
};

HostTensor host_of(const Tensor& tensor) {
  Tensor host = tensor.detach().to(DType::f32).to(Device::cpu()).contiguous();
  const float* data = host.data_ptr<float>();
  return {host.sizes(), std::vector<float>(data, data + host.numel())};
}

Tensor tensor_of(const HostTensor& host) {
  Tensor tensor = empty(host.shape);
  std::memcpy(tensor.data_ptr<float>(), host.values.data(), host.values.size() * sizeof(float));
  return tensor;
}

HostTensor keep_rows(const HostTensor& tensor, const std::vector<float>& row_mask) {
  HostTensor kept{tensor.shape, {}};
  kept.shape[0] = 0;
  const int64_t row_size = tensor.row_size();
  for (int64_t row = 0; row < tensor.rows(); ++row) {
    if (row_mask[size_t(row)] == 0.0f) continue;
    kept.shape[0] += 1;
    kept.values.insert(kept.values.end(), tensor.values.begin() + row * row_size,
                       tensor.values.begin() + (row + 1) * row_size);
  }
  return kept;
}

// Removes the inputs of `tensor` (a related module's weight) that read the pruned outputs:
// dim 1 holds `pruned_outputs` equal blocks (a Conv2d's channels: blocks of 1 channel; a
// Linear after a flatten: blocks of the channel's spatial positions).
HostTensor keep_inputs(const HostTensor& tensor, const std::vector<float>& source_mask,
                       const std::string& name) {
  const int64_t inputs = tensor.shape.at(1);
  const int64_t sources = int64_t(source_mask.size());
  if (inputs % sources != 0) {
    throw std::invalid_argument(fmt::format(
        "redundancy_clean: related module {} has {} inputs, not a multiple of the {} pruned "
        "outputs it reads",
        name, inputs, sources));
  }
  const int64_t per_source = inputs / sources;
  const int64_t inner = tensor.row_size() / inputs;  // kernel positions of a Conv2d
  HostTensor kept{tensor.shape, {}};
  int64_t kept_inputs = 0;
  for (float kept_source : source_mask) kept_inputs += kept_source != 0.0f ? per_source : 0;
  kept.shape[1] = kept_inputs;
  for (int64_t row = 0; row < tensor.rows(); ++row) {
    for (int64_t input = 0; input < inputs; ++input) {
      if (source_mask[size_t(input / per_source)] == 0.0f) continue;
      auto begin = tensor.values.begin() + (row * inputs + input) * inner;
      kept.values.insert(kept.values.end(), begin, begin + inner);
    }
  }
  return kept;
}

// The entries of `values` whose row the mask keeps.
template <typename T>
std::vector<T> keep_entries(const std::vector<T>& values, const std::vector<float>& row_mask) {
  std::vector<T> kept;
  for (size_t row = 0; row < row_mask.size(); ++row)
    if (row_mask[row] != 0.0f) kept.push_back(values[row]);
  return kept;
}

// The grid (scale, zero code) of each row of the full weight, from the group the row lies in.
void row_grids(const HostTensor& weight, const ModuleCompression& module,
               std::vector<float>& scales, std::vector<int32_t>& zero_codes) {
  const int64_t rows = weight.rows(), groups = module.quantize_groups;
  if (rows % groups != 0) {
    throw std::invalid_argument(fmt::format(
        "redundancy_clean: quantize_groups {} do not split the {} rows of {} into whole rows "
        "(packed storage keeps one grid a row)",
        groups, rows, module.name));
  }
  const size_t group_size = weight.values.size() / size_t(groups);
  for (int64_t group = 0; group < groups; ++group) {
    std::span<const float> values(weight.values.data() + size_t(group) * group_size, group_size);
    float scale = 0.0f;
    int32_t zero_code = 0;
    if (module.weight_bits >= 3) {
      GroupGrid grid = grid_of(values, module.weight_bits, module.symmetric);
      scale = grid.scale;
      zero_code = grid.zero_code;
    } else {
      for (float value : values) scale = std::max(scale, std::fabs(value));  // alpha: codes ±1
    }
    for (int64_t row = 0; row < rows / groups; ++row) {
      scales.push_back(scale);
      zero_codes.push_back(zero_code);
    }
  }
}

// Scales the input features of each head by its mask entry (baking the head mask in).
void bake_head_mask(HostTensor& weight, const std::vector<float>& feature_mask, int input_dim) {
  const int64_t row_size = weight.row_size();
  for (size_t i = 0; i < weight.values.size(); ++i) {
    const int64_t feature = input_dim == 0 ? int64_t(i) / row_size : int64_t(i) % row_size;
    weight.values[i] *= feature_mask[size_t(feature)];
  }
}

using Grids = std::map<std::string, std::pair<std::vector<float>, std::vector<int32_t>>>;

// The outputs of related module `index` (q, k, v or a fused qkv) that fed the pruned heads of
// `module` go: a Conv1D's columns, a Linear's rows (and their grids), the bias entries.
template <typename Current, typename Has>
void remove_head_outputs(const ModuleCompression& module, size_t index, int64_t inner,
                         Current& current, Has& has, Grids& grids) {
  const std::string& related = module.related_modules[index];
  const bool conv1d = module.related_types.at(index) == "Conv1D";
  HostTensor& weight = current(related + ".weight");
  const int64_t features = weight.shape.at(conv1d ? 1 : 0);
  // Llama's grouped-query k and v write one key/value head a group (fewer features than the
  // output projection reads): each group's block is then its own key/value head.
  if (features < inner) inner = features;
  const std::vector<float> outputs =
      feature_mask_of_heads(module.head_mask, features, inner, related);
  if (conv1d) {
    weight = keep_inputs(weight, outputs, related);  // dim 1, one column a feature
  } else {
    weight = keep_rows(weight, outputs);
    if (grids.contains(related)) {
      auto& [scales, zero_codes] = grids[related];
      scales = keep_entries(scales, outputs);
      zero_codes = keep_entries(zero_codes, outputs);
    }
  }
  if (has(related + ".bias")) {
    HostTensor& bias = current(related + ".bias");
    bias = keep_rows(bias, outputs);
  }
}

}  // namespace

CleanedModel redundancy_clean(const NamedTensors& state,
                              const std::vector<ModuleCompression>& compression) {
  std::map<std::string, HostTensor> changed;
  auto current = [&](const std::string& name) -> HostTensor& {
    auto found = changed.find(name);
    if (found != changed.end()) return found->second;
    for (const auto& [key, tensor] : state)
      if (key == name) return changed[name] = host_of(tensor);
    throw std::invalid_argument(fmt::format("redundancy_clean: the state has no {}", name));
  };
  auto has = [&](const std::string& name) {
    for (const auto& [key, tensor] : state)
      if (key == name) return true;
    return false;
  };
  Grids grids;
  std::map<std::string, int64_t> inner_features;  // heads x head size, per head-pruned module
  for (const ModuleCompression& module : compression) {
    HostTensor& weight = current(module.name + ".weight");
    for (size_t i = 0; i < module.sparse_mask.size(); ++i)
      weight.values[i] *= module.sparse_mask[i];
    if (!module.row_mask.empty()) {
      const int64_t row_size = weight.row_size();
      for (int64_t row = 0; row < weight.rows(); ++row)
        for (int64_t i = 0; i < row_size; ++i)
          weight.values[size_t(row * row_size + i)] *= module.row_mask[size_t(row)];
    }
    std::vector<float> head_features;  // the head mask on each input feature
    const int input_dim = input_dim_of(module.type);
    if (!module.head_mask.empty()) {
      inner_features[module.name] = weight.shape.at(size_t(input_dim));
      head_features = feature_mask_of_heads(module.head_mask, inner_features[module.name],
                                            inner_features[module.name], module.name);
      bake_head_mask(weight, head_features, input_dim);
    }
    if (module.weight_bits > 0) {
      // The grids come from the values before quantization, as the quantizer's did.
      row_grids(weight, module, grids[module.name].first, grids[module.name].second);
      fake_quantize(weight.values, {.bits = module.weight_bits,
                                    .groups = module.quantize_groups,
                                    .symmetric = module.symmetric});
    }
    if (!module.row_mask.empty()) {
      weight = keep_rows(weight, module.row_mask);
      if (has(module.name + ".bias")) {
        HostTensor& bias = current(module.name + ".bias");
        bias = keep_rows(bias, module.row_mask);
      }
      if (grids.contains(module.name)) {
        auto& [scales, zero_codes] = grids[module.name];
        scales = keep_entries(scales, module.row_mask);
        zero_codes = keep_entries(zero_codes, module.row_mask);
      }
    }
    if (!module.head_mask.empty() && input_dim == 0) {  // a Conv1D: the heads' rows go
      weight = keep_rows(weight, head_features);
      if (grids.contains(module.name)) {
        auto& [scales, zero_codes] = grids[module.name];
        scales = keep_entries(scales, head_features);
        zero_codes = keep_entries(zero_codes, head_features);
      }
    } else if (!module.head_mask.empty()) {  // a Linear: the heads' input columns go
      weight = keep_inputs(weight, module.head_mask, module.name);
    }
  }
  // Related modules lose the inputs of pruned outputs (after their own cleaning: their rows
  // and grids are unchanged by this).
  for (const ModuleCompression& module : compression) {
    if (!module.row_mask.empty()) {
      for (const std::string& related : module.related_modules) {
        HostTensor& weight = current(related + ".weight");
        weight = keep_inputs(weight, module.row_mask, related);
      }
    }
    if (!module.head_mask.empty()) {
      for (size_t i = 0; i < module.related_modules.size(); ++i)
        remove_head_outputs(module, i, inner_features.at(module.name), current, has, grids);
    }
  }
  CleanedModel cleaned;
  for (const auto& [name, tensor] : state) {
    if (is_compression_state(name)) continue;
    auto found = changed.find(name);
    Tensor result = found == changed.end() ? tensor : tensor_of(found->second);
    cleaned.tensors.emplace_back(name, result);
    cleaned.parameter_count += result.numel();
  }
  for (const ModuleCompression& module : compression) {
    if (module.weight_bits == 0) continue;
    const std::string name = module.name + ".weight";
    const HostTensor& weight = changed.at(name);
    const auto& [scales, zero_codes] = grids.at(module.name);
    cleaned.packed[name] = pack_weight(weight.values, weight.shape, module.weight_bits,
                                       module.symmetric, scales, zero_codes);
  }
  return cleaned;
}

void save_cleaned_model(const std::string& path, const CleanedModel& model,
                        const SafetensorsMetadata& metadata) {
  NamedTensors plain;
  for (const auto& [name, tensor] : model.tensors)
    if (!model.packed.contains(name)) plain.emplace_back(name, tensor);
  save_compressed_model(path, plain, model.packed, metadata);
}

}  // namespace zt::compress
