// OneBitAdam's step (optim/onebit_adam.h).
#include "optim/onebit_adam.h"

#include <fmt/format.h>

#include <stdexcept>

#include "optim/onebit_arithmetic.h"
#include "optim/state_tensors.h"

namespace zt::optim {

namespace {

void check_host(const Tensor& param, const std::string& optimizer) {
  if (param.device().type != DeviceType::cpu || param.dtype() != DType::f32 ||
      !param.is_contiguous())
    throw std::invalid_argument(fmt::format(
        "{}: parameters must be contiguous f32 in host memory (the compressed all-reduce "
        "stages through the host), got {} on {}",
        optimizer, dtype_name(param.dtype()), param.device().str()));
}

}  // namespace

OneBitAdam::OneBitAdam(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
                       OneBitOptions options)
    : CompressedCommunicationOptimizer(std::move(groups), data_parallel, options.exact_average),
      options_(options) {
  if (options_.freeze_step < 0)
    throw std::invalid_argument(
        fmt::format("OneBitAdam: freeze_step {} must be >= 0", options_.freeze_step));
  for (const ParamGroup& group : groups_) {
    for (const Tensor& param : group.params) check_host(param, name());
    states_.emplace_back(group.params.size());
  }
}

void OneBitAdam::step() {
  const float beta1 = float(options_.beta1), beta2 = float(options_.beta2);
  const bool compress = frozen_ && data_parallel_.size() > 1;
  int64_t last_step = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    for (size_t p = 0; p < group.params.size(); ++p) {
      const Tensor& param = group.params[p];
      if (!param.grad().defined()) continue;
      Tensor grad = gradient_of(param, "OneBitAdam");
      State& state = states_[g][p];
      if (!state.exp_avg.defined()) {
        state.exp_avg = new_state_like(param);
        state.exp_avg_sq = new_state_like(param);
      }
      state.step += 1;
      last_step = state.step;
      // DeepSpeed's set-up step only counts: its moments start from the second step's gradient.
      if (!initialized_) continue;
      const int64_t count = param.numel();
      float* exp_avg = state.exp_avg.data_ptr<float>();
      onebit::update_momentum(exp_avg, grad.data_ptr<float>(), count, beta1);
      if (!frozen_) {
        onebit::update_variance(state.exp_avg_sq.data_ptr<float>(), grad.data_ptr<float>(), count,
                                beta2);
      } else if (compress) {
        average_by_pieces(state.compression, state.exp_avg);
        onebit::mask_unseen(exp_avg, state.exp_avg_sq.data_ptr<float>(), count);
      }
      onebit::apply_adam_update(param.data_ptr<float>(), exp_avg,
                                state.exp_avg_sq.data_ptr<float>(), count, float(group.lr),
                                float(options_.eps), float(group.weight_decay), nullptr);
    }
  }
  initialized_ = true;
  if (!frozen_ && last_step >= options_.freeze_step) frozen_ = true;
}

void OneBitAdam::set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) {
  State& state = states_.at(group).at(index);
  state.compression = {std::move(pieces), {}};
}

ParamState OneBitAdam::param_state(size_t group, size_t index) const {
  const State& current = states_.at(group).at(index);
  return named_state(current.step,
                     {{"exp_avg", current.exp_avg}, {"exp_avg_sq", current.exp_avg_sq}});
}

void OneBitAdam::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  State& target = states_.at(group).at(index);
  std::vector<Tensor> restored = restored_states(param, name(), state, {"exp_avg", "exp_avg_sq"});
  target.exp_avg = restored[0];
  target.exp_avg_sq = restored[1];
  target.step = state.step;
  // As DeepSpeed on loading: the phase follows the step count and the errors start afresh.
  target.compression.compressions.clear();
  initialized_ = state.step > 0;
  frozen_ = state.step >= options_.freeze_step;
}

}  // namespace zt::optim
