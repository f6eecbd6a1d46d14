// The frozen stage-3 model (dist/zero/frozen_stage3.h): the engine's by-module plan and flat
// buffers, kept without their gradient buffers, and the engine's gatherer around each forward.
#include "dist/zero/frozen_stage3.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/grad_mode.h"
#include "dist/engine.h"
#include "dist/zero/parameter_gatherer.h"

namespace zt::dist {
namespace {

DType dtype_of_parameters(nn::Module& model) {
  NamedTensors params = model.named_parameters();
  if (params.empty())
    throw std::invalid_argument("frozen stage-3 model: the model has no parameters");
  return params.front().second.dtype();
}

}  // namespace

FrozenStage3Model::FrozenStage3Model(std::shared_ptr<nn::Module> model, const ZeroConfig& zero,
                                     comm::Communicator& data_parallel)
    : model_(std::move(model)) {
  if (!model_) throw std::invalid_argument("frozen stage-3 model: no model");
  model_->eval();
  for (const Tensor& parameter : model_->parameters()) parameter.set_requires_grad(false);
  const ZeroPartitioning stage3 = ZeroPartitioning::for_stage(3);
  const DType dtype = dtype_of_parameters(*model_);
  plan_ = plan_by_module(*model_, data_parallel.size(), zero.stage3_param_persistence_threshold,
                         zero.stage3_model_persistence_threshold);
  groups_ =
      build_flat_group_buffers(plan_, stage3, dtype, device_of_parameters(*model_), data_parallel);
  for (auto& group : groups_) {
    // Nothing is ever reduced into or updated from these: the stage-3 layout's gradient slice
    // goes, and a group kept whole needs no slice of its own (it is never refreshed).
    group->owned_grads = Tensor();
    if (!group->plan.partitioned) group->owned_params = Tensor();
  }
  gatherer_ = std::make_unique<ParameterGatherer>(stage3, zero, data_parallel, groups_, dtype);
  gatherer_->register_module_hooks(*model_, plan_.module_groups, [](size_t group) {
    // Forwards run without a graph, so no backward reaches a gather.
    throw std::logic_error(fmt::format("frozen stage-3 model: backward reached group {}", group));
  });
}

FrozenStage3Model::~FrozenStage3Model() = default;

Tensor FrozenStage3Model::forward(const Tensor& input) {
  autograd::NoGradGuard no_grad;
  Tensor output = (*model_)(input).detach();
  // The first forward's module order drives prefetching in the later ones.
  if (!first_forward_done_) gatherer_->stop_recording_traces();
  first_forward_done_ = true;
  return output;
}

int64_t FrozenStage3Model::resident_parameter_numel() const {
  int64_t numel = 0;
  for (const auto& group : groups_) {
    if (group->owned_params.defined()) numel += group->owned_params.numel();
    if (!group->plan.partitioned) numel += group->full_params.numel();
  }
  return numel;
}

}  // namespace zt::dist
