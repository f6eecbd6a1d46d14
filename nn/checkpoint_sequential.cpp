// checkpoint_sequential over the checkpoint node of autograd/checkpoint.h.
#include "nn/checkpoint_sequential.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/checkpoint.h"

namespace zt::nn {

TensorList checkpoint_sequential(Sequential& seq, int64_t segments, const TensorList& inputs) {
  const int64_t layer_count = int64_t(seq.size());
  if (segments < 1 || segments > layer_count) {
    throw std::invalid_argument(fmt::format(
        "checkpoint_sequential: segments: expected 1..{} (the number of layers), got {}",
        layer_count, segments));
  }
  // Layers [begin, end) run through operator(), so module hooks fire.
  auto run_layers = [&seq](int64_t begin, int64_t end, const TensorList& values) {
    TensorList result = values;
    for (int64_t i = begin; i < end; ++i) result = (*seq[size_t(i)])(result);
    return result;
  };
  const int64_t segment_size = layer_count / segments;
  TensorList values = inputs;
  int64_t begin = 0;
  for (int64_t segment = 0; segment + 1 < segments; ++segment, begin += segment_size) {
    const int64_t end = begin + segment_size;
    values = checkpoint(
        [run_layers, begin, end](const TensorList& x) { return run_layers(begin, end, x); },
        values);
  }
  return run_layers(begin, layer_count, values);
}

Tensor checkpoint_sequential(Sequential& seq, int64_t segments, const Tensor& input) {
  TensorList outputs = checkpoint_sequential(seq, segments, TensorList{input});
  if (outputs.size() != 1) {
    throw std::invalid_argument(fmt::format(
        "checkpoint_sequential: the last layer returned {} outputs; pass a TensorList to "
        "receive several",
        outputs.size()));
  }
  return outputs.front();
}

}  // namespace zt::nn
