// Integer packing of quantized weights and the compressed model file around it.
#include "compress/packed_weights.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/factory.h"

namespace zt::compress {
namespace {

int64_t product(const Shape& shape) {
  int64_t count = 1;
  for (int64_t size : shape) count *= size;
  return count;
}

template <typename T>
Tensor tensor_of(const std::vector<T>& values, const Shape& shape, DType dtype) {
  Tensor tensor = empty(shape, TensorOptions{}.with_dtype(dtype));
  std::memcpy(tensor.raw_data(), values.data(), values.size() * sizeof(T));
  return tensor;
}

template <typename T>
std::vector<T> values_of(const Tensor& tensor) {
  Tensor host = tensor.contiguous();
  const T* data = static_cast<const T*>(host.raw_data());
  return std::vector<T>(data, data + host.numel());
}

}  // namespace

PackedWeight pack_weight(const std::vector<float>& values, const Shape& shape, int grid_bits,
                         bool is_signed, const std::vector<float>& scales,
                         const std::vector<int32_t>& zero_codes) {
  PackedWeight packed;
  packed.bits = grid_bits <= 4 ? 4 : 8;
  packed.is_signed = is_signed;
  packed.shape = shape;
  packed.scales = scales;
  packed.zero_codes = zero_codes;
  const int64_t rows = shape.at(0), count = product(shape);
  if (int64_t(values.size()) != count || int64_t(scales.size()) != rows ||
      int64_t(zero_codes.size()) != rows) {
    throw std::invalid_argument("pack_weight: values, scales and zero codes do not fit the shape");
  }
  const int64_t row_size = count / rows;
  const int32_t low = is_signed ? -(1 << (packed.bits - 1)) : 0;
  const int32_t high = is_signed ? (1 << (packed.bits - 1)) - 1 : (1 << packed.bits) - 1;
  packed.codes.assign(size_t(packed.bits == 4 ? (count + 1) / 2 : count), 0);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = i / row_size;
    const float scale = scales[size_t(row)];
    const int32_t code = scale == 0.0f ? zero_codes[size_t(row)]
                                       : int32_t(std::nearbyint(values[size_t(i)] / scale)) +
                                             zero_codes[size_t(row)];
    if (code < low || code > high ||
        float((code - zero_codes[size_t(row)]) * double(scale)) != values[size_t(i)]) {
      throw std::invalid_argument(
          fmt::format("pack_weight: value {} at {} is not on its row's {}-bit grid",
                      values[size_t(i)], i, grid_bits));
    }
    const uint8_t bits = uint8_t(code & (packed.bits == 4 ? 0x0F : 0xFF));
    if (packed.bits == 8) {
      packed.codes[size_t(i)] = bits;
    } else {
      packed.codes[size_t(i / 2)] |= uint8_t(i % 2 == 0 ? bits : bits << 4);
    }
  }
  return packed;
}

std::vector<float> unpack_weight(const PackedWeight& packed) {
  const int64_t count = product(packed.shape), rows = packed.shape.at(0);
  const int64_t row_size = count / rows;
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int32_t code = packed.bits == 8 ? packed.codes[size_t(i)]
                                    : (packed.codes[size_t(i / 2)] >> (i % 2 == 0 ? 0 : 4)) & 0x0F;
    if (packed.is_signed && code >= (1 << (packed.bits - 1))) code -= 1 << packed.bits;
    const int64_t row = i / row_size;
    values[size_t(i)] =
        float((code - packed.zero_codes[size_t(row)]) * double(packed.scales[size_t(row)]));
  }
  return values;
}

void save_compressed_model(const std::string& path, const NamedTensors& tensors,
                           const std::map<std::string, PackedWeight>& packed,
                           const SafetensorsMetadata& model_metadata) {
  NamedTensors stored = tensors;
  SafetensorsMetadata metadata = model_metadata;
  for (const auto& [name, weight] : packed) {
    const int64_t rows = weight.shape.at(0);
    stored.emplace_back(name + ".codes",
                        tensor_of(weight.codes, {int64_t(weight.codes.size())}, DType::u8));
    stored.emplace_back(name + ".scales", tensor_of(weight.scales, {rows}, DType::f32));
    stored.emplace_back(name + ".zero_codes", tensor_of(weight.zero_codes, {rows}, DType::i32));
    metadata[name] =
        nlohmann::json{{"bits", weight.bits}, {"shape", weight.shape}, {"signed", weight.is_signed}}
            .dump();
  }
  save_safetensors(path, stored, metadata);
}

NamedTensors load_compressed_model(const std::string& path) {
  SafetensorsContents contents = load_safetensors(path);
  NamedTensors result;
  for (const auto& [name, tensor] : contents.tensors) {
    const bool part_of_packed = [&] {
      for (const char* suffix : {".codes", ".scales", ".zero_codes"}) {
        const std::string ending(suffix);
        if (name.size() > ending.size() && name.ends_with(ending) &&
            contents.metadata.contains(name.substr(0, name.size() - ending.size())))
          return true;
      }
      return false;
    }();
    if (!part_of_packed) result.emplace_back(name, tensor);
  }
  for (const auto& [name, text] : contents.metadata) {
    if (!contents.contains(name + ".codes")) continue;
    PackedWeight weight;
    try {
      nlohmann::json description = nlohmann::json::parse(text);
      weight.bits = description.at("bits").get<int>();
      weight.shape = description.at("shape").get<Shape>();
      weight.is_signed = description.at("signed").get<bool>();
    } catch (const nlohmann::json::exception& error) {
      throw std::runtime_error(fmt::format(
          "{}: the description of packed weight {} is unreadable ({})", path, name, error.what()));
    }
    weight.codes = values_of<uint8_t>(contents.at(name + ".codes"));
    weight.scales = values_of<float>(contents.at(name + ".scales"));
    weight.zero_codes = values_of<int32_t>(contents.at(name + ".zero_codes"));
    if ((weight.bits != 4 && weight.bits != 8) || weight.shape.empty() ||
        int64_t(weight.scales.size()) != weight.shape[0] ||
        int64_t(weight.codes.size()) !=
            (weight.bits == 4 ? (product(weight.shape) + 1) / 2 : product(weight.shape))) {
      throw std::runtime_error(fmt::format("{}: packed weight {} is inconsistent", path, name));
    }
    result.emplace_back(name, tensor_of(unpack_weight(weight), weight.shape, DType::f32));
  }
  return result;
}

}  // namespace zt::compress
