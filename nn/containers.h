// Sequential (calls its children in order, each child's outputs being the next one's inputs)
// and ModuleList (holds children, no forward).
// Children are named "0", "1", ... as in PyTorch, so state-dict names match.
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "nn/module.h"

namespace zt::nn {

class Sequential final : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module>& operator[](size_t index) const;
  std::string type_name() const override { return "Sequential"; }

 protected:
  TensorList forward_many(const TensorList& inputs) override;

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

class ModuleList final : public Module {
 public:
  ModuleList() = default;
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t index) const;
  std::string type_name() const override { return "ModuleList"; }

 protected:
  TensorList forward_many(const TensorList& inputs) override;  // throws: not callable

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace zt::nn
