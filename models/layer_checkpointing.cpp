// See models/layer_checkpointing.h.
#include "models/layer_checkpointing.h"

#include <vector>

#include "autograd/checkpoint.h"

namespace zt::models {

nn::TensorList run_decoder_layer(nn::Module& layer, const nn::TensorList& inputs,
                                 bool checkpointed) {
  // The last two inputs are the layer's cache; a defined one means generation.
  const size_t cache_at = inputs.size() - 2;
  const bool has_cache = inputs[cache_at].defined() || inputs[cache_at + 1].defined();
  if (!checkpointed || has_cache) return layer(inputs);
  // checkpoint() takes defined tensors only: the hidden state and the tables before the cache.
  std::vector<Tensor> kept(inputs.begin(), inputs.begin() + std::ptrdiff_t(cache_at));
  std::vector<Tensor> hidden = checkpoint(
      [&layer](const std::vector<Tensor>& saved) {
        nn::TensorList args(saved.begin(), saved.end());
        args.resize(args.size() + 2);  // no cache
        return std::vector<Tensor>{layer(args)[0]};
      },
      kept);
  return nn::TensorList{hidden[0], Tensor(), Tensor()};
}

}  // namespace zt::models
