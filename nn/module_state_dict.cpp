// The state dict: a module's parameters and saved buffers under dotted names, and loading one
// back (every name and shape checked before anything is copied), also from a safetensors file.
#include "nn/module.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/ops/view.h"
#include "nn/shared_tensors.h"

namespace zt::nn {

using detail::joined_name;

NamedTensors Module::state_dict() const {
  NamedTensors result = parameters_;
  NamedTensors buffers = saved_buffers();
  result.insert(result.end(), buffers.begin(), buffers.end());
  for (const auto& [child_name, child] : children_) {
    for (auto& [name, tensor] : child->state_dict()) {
      result.emplace_back(joined_name(child_name, name), tensor);
    }
  }
  return result;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  NamedTensors own = state_dict();
  std::set<std::string> own_names;
  for (auto& [name, tensor] : own) own_names.insert(name);
  std::set<std::string> given_names;
  for (auto& [name, tensor] : state) {
    if (!given_names.insert(name).second) {
      throw std::invalid_argument(fmt::format("load_state_dict: \"{}\" appears twice", name));
    }
    if (strict && !own_names.contains(name)) {
      throw std::invalid_argument(fmt::format(
          "load_state_dict: unexpected tensor \"{}\": {} has no such parameter or buffer", name,
          type_name()));
    }
  }
  // Check every shape before copying anything, so a bad file changes nothing.
  std::map<std::string, Tensor> found_by_name;
  for (auto& [name, target] : own) {
    // An init-capture, since clang before 16 cannot capture a structured binding.
    auto found = std::find_if(state.begin(), state.end(), [&wanted = name](const auto& entry) {
      return entry.first == wanted;
    });
    if (found == state.end()) {
      // A tied parameter is saved under one of its names (nn/shared_tensors.h).
      bool tied_name_given = std::any_of(
          own.begin(), own.end(), [&, &wanted = name, &tensor = target](const auto& other) {
            return other.first != wanted && same_tensor(other.second, tensor) &&
                   given_names.contains(other.first);
          });
      if (strict && !tied_name_given) {
        throw std::invalid_argument(fmt::format(
            "load_state_dict: missing tensor \"{}\" of shape {}", name, shape_str(target.sizes())));
      }
      continue;
    }
    if (found->second.sizes() != target.sizes()) {
      throw std::invalid_argument(
          fmt::format("load_state_dict: \"{}\" has shape {}, the model expects {}", name,
                      shape_str(found->second.sizes()), shape_str(target.sizes())));
    }
    found_by_name.emplace(name, found->second);
  }
  autograd::NoGradGuard no_grad;
  load_checked(found_by_name, "");
}

void Module::load_checked(const std::map<std::string, Tensor>& found, const std::string& prefix) {
  for (const auto& [name, param] : parameters_) {
    auto source = found.find(joined_name(prefix, name));
    if (source != found.end()) ops::copy_(param, source->second);
  }
  NamedTensors buffer_values;
  for (const auto& [name, buffer] : saved_buffers()) {
    auto source = found.find(joined_name(prefix, name));
    if (source != found.end()) buffer_values.emplace_back(name, source->second);
  }
  if (!buffer_values.empty()) load_saved_buffers(buffer_values);
  for (const auto& [child_name, child] : children_)
    child->load_checked(found, joined_name(prefix, child_name));
}

void Module::load_saved_buffers(const NamedTensors& values) {
  for (const auto& [name, value] : values) {
    auto buffer =
        std::find_if(buffers_.begin(), buffers_.end(),
                     [&wanted = name](const auto& entry) { return entry.first == wanted; });
    if (buffer == buffers_.end()) {
      throw std::invalid_argument(
          fmt::format("{}: load_saved_buffers: no buffer \"{}\"", type_name(), name));
    }
    ops::copy_(buffer->second, value);
  }
}

void Module::save(const std::string& path) const {
  NamedTensors state = state_dict();
  SafetensorsMetadata tied_names = remove_shared_duplicates(state);
  save_safetensors(path, state, tied_names);
}

void Module::load(const std::string& path, bool strict) {
  SafetensorsContents contents = load_safetensors(path);
  try {
    load_state_dict(contents.tensors, strict);
  } catch (const std::exception& error) {
    throw std::runtime_error(path + ": " + error.what());
  }
}

}  // namespace zt::nn
