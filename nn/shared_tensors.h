// Tensors that appear under several names of a state dict (a tied weight: one parameter
// registered by two modules) and how a file holds them: once, under the alphabetically first of
// its names, with every other name recorded in the metadata as {other name: kept name}, exactly
// as safetensors.torch.save_model does, so the files load in PyTorch with load_model.
#pragma once

#include "core/safetensors.h"
#include "core/tensor.h"

namespace zt::nn {

// Whether `a` and `b` are the same elements: one impl, or views of one storage with the same
// offset, shape, strides and dtype.
bool same_tensor(const Tensor& a, const Tensor& b);

// Removes from `state` every name whose tensor is the same as that of another name and is not
// the alphabetically first of them; returns {removed name: kept name}. Order is kept otherwise.
SafetensorsMetadata remove_shared_duplicates(NamedTensors& state);

}  // namespace zt::nn
