// Sequential and ModuleList.
#include "nn/containers.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace zt::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& module : modules) push_back(module);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  add_child(std::to_string(layers_.size()), module);
  layers_.push_back(std::move(module));
}

const std::shared_ptr<Module>& Sequential::operator[](size_t index) const {
  if (index >= layers_.size()) {
    throw std::out_of_range(
        fmt::format("Sequential: index {} of {} layers", index, layers_.size()));
  }
  return layers_[index];
}

TensorList Sequential::forward_many(const TensorList& inputs) {
  TensorList values = inputs;
  for (const auto& layer : layers_) values = (*layer)(values);
  return values;
}

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& module : modules) push_back(module);
}

void ModuleList::push_back(std::shared_ptr<Module> module) {
  add_child(std::to_string(items_.size()), module);
  items_.push_back(std::move(module));
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t index) const {
  if (index >= items_.size()) {
    throw std::out_of_range(
        fmt::format("ModuleList: index {} of {} modules", index, items_.size()));
  }
  return items_[index];
}

TensorList ModuleList::forward_many(const TensorList&) {
  throw std::logic_error("ModuleList is a container and has no forward; call its items");
}

}  // namespace zt::nn
