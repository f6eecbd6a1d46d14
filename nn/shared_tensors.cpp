// Finding tied tensors in a state dict and keeping one name for each (nn/shared_tensors.h).
#include "nn/shared_tensors.h"

#include <algorithm>
#include <set>

namespace zt::nn {

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return false;
  if (a.impl() == b.impl()) return true;
  return a.storage() == b.storage() && a.storage_offset() == b.storage_offset() &&
         a.sizes() == b.sizes() && a.strides() == b.strides() && a.dtype() == b.dtype();
}

SafetensorsMetadata remove_shared_duplicates(NamedTensors& state) {
  SafetensorsMetadata removed;
  std::vector<bool> handled(state.size(), false);
  std::set<std::string> dropped;
  for (size_t i = 0; i < state.size(); ++i) {
    if (handled[i]) continue;
    // Tied names are few (usually two), so the quadratic scan stays cheap.
    std::vector<size_t> tied = {i};
    for (size_t j = i + 1; j < state.size(); ++j) {
      if (!handled[j] && same_tensor(state[i].second, state[j].second)) tied.push_back(j);
    }
    size_t kept = *std::min_element(tied.begin(), tied.end(), [&](size_t x, size_t y) {
      return state[x].first < state[y].first;
    });
    for (size_t index : tied) {
      handled[index] = true;
      if (index == kept) continue;
      removed[state[index].first] = state[kept].first;
      dropped.insert(state[index].first);
    }
  }
  std::erase_if(state, [&](const auto& entry) { return dropped.contains(entry.first); });
  return removed;
}

}  // namespace zt::nn
