// OneBitLamb's step (optim/onebit_lamb.h), in the order of DeepSpeed's.
#include "optim/onebit_lamb.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/view.h"
#include "optim/onebit_arithmetic.h"
#include "optim/state_tensors.h"

namespace zt::optim {

namespace {

double norm_of(const float* values, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += double(values[i]) * double(values[i]);
  return std::sqrt(sum);
}

}  // namespace

OneBitLamb::OneBitLamb(std::vector<ParamGroup> groups, comm::Communicator& data_parallel,
                       OneBitLambOptions options)
    : CompressedCommunicationOptimizer(std::move(groups), data_parallel,
                                       options.base.exact_average),
      options_(options) {
  if (options_.base.freeze_step < 0 || options_.min_coeff > options_.max_coeff ||
      options_.factor_min > options_.factor_max)
    throw std::invalid_argument(
        "OneBitLamb: expected freeze_step >= 0, min_coeff <= max_coeff and factor_min <= "
        "factor_max");
  for (const ParamGroup& group : groups_) {
    for (const Tensor& param : group.params) {
      if (param.device().type != DeviceType::cpu || param.dtype() != DType::f32)
        throw std::invalid_argument(
            "OneBitLamb: parameters must be contiguous f32 in host memory (the compressed "
            "all-reduce stages through the host)");
    }
    states_.emplace_back(group.params.size());
  }
}

void OneBitLamb::set_pieces(size_t group, size_t index, std::vector<NormSegment> pieces) {
  State& state = states_.at(group).at(index);
  state.segments = std::move(pieces);
  state.pieces.clear();
}

void OneBitLamb::attach_pieces(State& state, int64_t numel) {
  std::vector<NormSegment> segments = state.segments;
  if (segments.empty()) segments.push_back({0, numel, 0});
  if (state.pieces.size() != segments.size()) state.pieces.assign(segments.size(), Piece{});
  auto view = [numel](const Tensor& whole, const NormSegment& segment) {
    return ops::narrow(ops::reshape(whole, {numel}), 0, segment.begin, segment.numel);
  };
  for (size_t s = 0; s < segments.size(); ++s) {
    state.pieces[s].exp_avg = view(state.exp_avg, segments[s]);
    state.pieces[s].exp_avg_sq = view(state.exp_avg_sq, segments[s]);
    state.pieces[s].exp_avg_sq_fresh = view(state.exp_avg_sq_fresh, segments[s]);
  }
}

void OneBitLamb::warm_up_step(const Entry& entry) {
  Piece& state = *entry.state;
  const int64_t count = entry.param.numel();
  float* param = entry.param.data_ptr<float>();
  float* exp_avg = state.exp_avg.data_ptr<float>();
  float* exp_avg_sq = state.exp_avg_sq.data_ptr<float>();
  onebit::update_momentum(exp_avg, entry.grad.data_ptr<float>(), count, float(options_.base.beta1));
  onebit::update_variance(exp_avg_sq, entry.grad.data_ptr<float>(), count,
                          float(options_.base.beta2));
  if (entry.step == options_.base.freeze_step) ops::copy_(state.exp_avg_sq_fresh, state.exp_avg_sq);
  if (!initialized_) return;
  const float eps = float(options_.base.eps), decay = float(entry.group->weight_decay);
  std::vector<float> update(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    update[size_t(i)] =
        exp_avg[i] / (std::sqrt(exp_avg_sq[i]) + eps) + (decay > 0.0f ? decay * param[i] : 0.0f);
  const double weight_norm = norm_of(param, count), update_norm = norm_of(update.data(), count);
  double coeff = 1.0;
  if (weight_norm != 0.0 && update_norm != 0.0)
    coeff = std::clamp(weight_norm / update_norm, options_.min_coeff, options_.max_coeff);
  if (coeff != 1.0)
    state.coeff_average =
        options_.coeff_beta * state.coeff_average + (1.0 - options_.coeff_beta) * coeff;
  trust_ratios_.push_back(coeff);
  const float scale = float(entry.group->lr * coeff);
  for (int64_t i = 0; i < count; ++i) param[i] -= scale * update[size_t(i)];
}

void OneBitLamb::average_momenta(const std::vector<Entry>& entries) {
  int64_t total = 0;
  for (const Entry& entry : entries) total += entry.param.numel();
  if (data_parallel_.size() == 1 || total == 0) return;
  if (!compression_)
    compression_ = std::make_unique<comm::CompressedAllReduce>(data_parallel_, total);
  Tensor flat = zeros({total}, {.dtype = DType::f32, .tag = MemoryTag::comm});
  int64_t offset = 0;
  for (const Entry& entry : entries) {
    const int64_t count = entry.param.numel();
    ops::copy_(ops::narrow(flat, 0, offset, count), ops::reshape(entry.state->exp_avg, {count}));
    offset += count;
  }
  average(*compression_, flat);
  offset = 0;
  for (const Entry& entry : entries) {
    const int64_t count = entry.param.numel();
    ops::copy_(ops::reshape(entry.state->exp_avg, {count}), ops::narrow(flat, 0, offset, count));
    offset += count;
  }
}

void OneBitLamb::frozen_step(const Entry& entry, const std::vector<float>& last_exp_avg) {
  Piece& state = *entry.state;
  const int64_t count = entry.param.numel();
  const float beta1 = float(options_.base.beta1), beta2 = float(options_.base.beta2);
  const float eps = float(options_.base.eps), decay = float(entry.group->weight_decay);
  float* param = entry.param.data_ptr<float>();
  float* exp_avg = state.exp_avg.data_ptr<float>();
  const float* exp_avg_sq = state.exp_avg_sq.data_ptr<float>();
  float* fresh = state.exp_avg_sq_fresh.data_ptr<float>();
  std::vector<float> prelim(static_cast<size_t>(count)), update(static_cast<size_t>(count));
  double factor = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    exp_avg[i] /= float(state.scaling);
    if (exp_avg_sq[i] == 0.0f) exp_avg[i] = 0.0f;  // no gradient ever: onebit::mask_unseen
    const float reconstructed = (exp_avg[i] - last_exp_avg[size_t(i)] * beta1) / (1.0f - beta1);
    fresh[i] = beta2 * fresh[i] + (1.0f - beta2) * reconstructed * reconstructed;
    const float denominator = std::sqrt(exp_avg_sq[i]) + eps;
    prelim[size_t(i)] = exp_avg[i] / denominator;
    update[size_t(i)] = prelim[size_t(i)] + (decay > 0.0f ? decay * param[i] : 0.0f);
    factor = std::max(factor, double(denominator / (std::sqrt(fresh[i]) + eps)));
  }
  const double update_norm = norm_of(update.data(), count);
  if (decay > 0.0f && update_norm > 0.0) {
    const double ratio = std::min(1.0, norm_of(prelim.data(), count) / update_norm);
    factor = factor * ratio + (1.0 - ratio);
  }
  factor = std::clamp(factor, options_.factor_min, options_.factor_max);
  factor = std::clamp(factor, state.last_factor * (1.0 - options_.factor_threshold),
                      state.last_factor * (1.0 + options_.factor_threshold));
  state.last_factor = factor;
  const double coeff = state.coeff_average * factor;
  trust_ratios_.push_back(coeff);
  const float scale = float(entry.group->lr * coeff);
  for (int64_t i = 0; i < count; ++i) param[i] -= scale * update[size_t(i)];
}

void OneBitLamb::step() {
  std::vector<Entry> entries;
  int64_t last_step = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t p = 0; p < groups_[g].params.size(); ++p) {
      const Tensor& param = groups_[g].params[p];
      if (!param.grad().defined()) continue;
      State& state = states_[g][p];
      const int64_t numel = param.numel();
      if (!state.exp_avg.defined()) {
        state.exp_avg = new_state_like(param);
        state.exp_avg_sq = new_state_like(param);
        state.exp_avg_sq_fresh = new_state_like(param);
      }
      if (state.pieces.empty()) attach_pieces(state, numel);
      state.step += 1;
      last_step = state.step;
      const Tensor flat_param = ops::reshape(param, {numel});
      const Tensor flat_grad = ops::reshape(gradient_of(param, "OneBitLamb"), {numel});
      for (size_t s = 0; s < state.pieces.size(); ++s) {
        const int64_t begin = state.segments.empty() ? 0 : state.segments[s].begin;
        const int64_t count = state.segments.empty() ? numel : state.segments[s].numel;
        entries.push_back({&groups_[g], ops::narrow(flat_param, 0, begin, count),
                           ops::narrow(flat_grad, 0, begin, count), &state.pieces[s], state.step});
      }
    }
  }
  trust_ratios_.clear();
  if (!initialized_) {  // DeepSpeed's set-up step: the counts advance, nothing else
    initialized_ = true;
    return;
  }
  std::vector<std::vector<float>> last_exp_avg;
  if (frozen_) {
    // One common magnitude for the flattened momenta, set at the first compressed step.
    double scale_sum = 0.0;
    std::vector<double> scales;
    for (const Entry& entry : entries) {
      const float* exp_avg = entry.state->exp_avg.data_ptr<float>();
      last_exp_avg.emplace_back(exp_avg, exp_avg + entry.param.numel());
      scales.push_back(norm_of(exp_avg, entry.param.numel()) /
                       std::sqrt(double(entry.param.numel())));
      scale_sum += scales.back();
    }
    for (size_t e = 0; e < entries.size(); ++e) {
      if (entries[e].state->scaling != 0.0) continue;
      const double united = scale_sum / double(entries.size());
      entries[e].state->scaling = scales[e] > 0.0 ? united / scales[e] : 1.0;
    }
  }
  for (const Entry& entry : entries) {
    if (!frozen_) {
      warm_up_step(entry);
      continue;
    }
    float* exp_avg = entry.state->exp_avg.data_ptr<float>();
    onebit::update_momentum(exp_avg, entry.grad.data_ptr<float>(), entry.param.numel(),
                            float(options_.base.beta1));
    for (int64_t i = 0; i < entry.param.numel(); ++i) exp_avg[i] *= float(entry.state->scaling);
  }
  if (frozen_) {
    average_momenta(entries);
    for (size_t e = 0; e < entries.size(); ++e) frozen_step(entries[e], last_exp_avg[e]);
  }
  if (!frozen_ && !entries.empty() && last_step >= options_.base.freeze_step) frozen_ = true;
}

ParamState OneBitLamb::param_state(size_t group, size_t index) const {
  const State& current = states_.at(group).at(index);
  return named_state(current.step, {{"exp_avg", current.exp_avg},
                                    {"exp_avg_sq", current.exp_avg_sq},
                                    {"exp_avg_sq_fresh", current.exp_avg_sq_fresh}});
}

void OneBitLamb::set_param_state(size_t group, size_t index, const ParamState& state) {
  const Tensor& param = groups_.at(group).params.at(index);
  State& target = states_.at(group).at(index);
  std::vector<Tensor> restored =
      restored_states(param, name(), state, {"exp_avg", "exp_avg_sq", "exp_avg_sq_fresh"});
  target.exp_avg = restored[0];
  target.exp_avg_sq = restored[1];
  target.exp_avg_sq_fresh = restored[2];
  target.step = state.step;
  if (target.exp_avg.defined()) attach_pieces(target, param.numel());
  compression_.reset();
  initialized_ = state.step > 0;
  frozen_ = state.step >= options_.base.freeze_step;
}

}  // namespace zt::optim
