// Engine::load_checkpoint: reads this rank's piece of a checkpoint saved at any world size,
// stage and tensor size (the read plan, dist/model_parallel_checkpoint.h), checks all of it on
// every grid rank, and only then sets the engine's parameters, optimizer state, counters and
// generators (the save path and the crash-safety rules: engine_checkpoint.cpp).
#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/checkpoint_files.h"
#include "dist/checkpoint_generators.h"
#include "dist/engine.h"
#include "dist/zero/gradient_reducer.h"
#include "dist/zero/optimizer_shard.h"
#include "dist/zero/parameter_swap.h"
#include "tensor_parallel/tensor_rank_generator.h"

namespace zt::dist {

namespace {

// `flat` (a group's padded length) filled from the whole per-parameter tensors of `values`.
Tensor flat_group_values(const FlatGroup& plan, const std::map<std::string, Tensor>& values) {
  Tensor flat = zeros({plan.padded_numel});
  for (const PlannedParam& entry : plan.params) {
    auto found = values.find(entry.name);
    if (found == values.end())
      throw std::runtime_error("checkpoint: no values for parameter " + entry.name);
    ops::copy_(flat_range(flat, entry.offset, entry.numel),
               ops::reshape(found->second, {entry.numel}));
  }
  return flat;
}

// The optimizer state of one group from the checkpoint's per-parameter states: elements
// [begin, begin + numel) of the group's flat layout.
optim::ParamState group_optimizer_state(const ConsolidatedCheckpoint& checkpoint,
                                        const FlatGroup& plan, int64_t begin, int64_t numel) {
  // Every parameter of a group must bring the same optimizer state (one update count, the
  // same tensors): the group is one tensor to the optimizer.
  optim::ParamState restored;
  const std::string& first = plan.params.front().name;
  restored.step = checkpoint.optimizer_steps.at(first);
  static const std::map<std::string, Tensor> kNoState;
  auto state_of = [&](const std::string& name) -> const std::map<std::string, Tensor>& {
    auto found = checkpoint.optimizer_state.find(name);
    return found == checkpoint.optimizer_state.end() ? kNoState : found->second;
  };
  const std::map<std::string, Tensor>& first_state = state_of(first);
  for (const PlannedParam& entry : plan.params) {
    if (checkpoint.optimizer_steps.at(entry.name) != restored.step ||
        state_of(entry.name).size() != first_state.size()) {
      throw std::runtime_error(fmt::format(
          "{}: parameters {} and {} have different optimizer states, but this engine updates "
          "them as one group",
          checkpoint.tag_dir, first, entry.name));
    }
  }
  for (auto& [name, ignored] : first_state) {
    std::map<std::string, Tensor> values;
    for (const PlannedParam& entry : plan.params) {
      auto found = state_of(entry.name).find(name);
      if (found == state_of(entry.name).end())
        throw std::runtime_error(fmt::format("{}: parameter {} has no optimizer state {}",
                                             checkpoint.tag_dir, entry.name, name));
      values[entry.name] = found->second;
    }
    restored.tensors.emplace_back(name, flat_range(flat_group_values(plan, values), begin, numel));
  }
  return restored;
}

}  // namespace

void Engine::check_checkpoint_matches_model(const ConsolidatedCheckpoint& checkpoint) const {
  NamedTensors params = model_->named_parameters();
  for (auto& [name, param] : params) {
    auto found = checkpoint.fp32_params.find(name);
    if (found == checkpoint.fp32_params.end()) {
      throw std::runtime_error(fmt::format(
          "{}: parameter {} {} is not in the checkpoint, which holds {} parameters (a checkpoint "
          "of a different model?)",
          checkpoint.tag_dir, name, shape_str(param.sizes()), checkpoint.fp32_params.size()));
    }
    if (found->second.sizes() != param.sizes()) {
      throw std::runtime_error(fmt::format(
          "{}: parameter {} has shape {} in the checkpoint, {} in the model", checkpoint.tag_dir,
          name, shape_str(found->second.sizes()), shape_str(param.sizes())));
    }
  }
  if (checkpoint.fp32_params.size() != params.size()) {
    throw std::runtime_error(fmt::format(
        "{}: the checkpoint holds {} parameters, the model {} (a checkpoint of a different model?)",
        checkpoint.tag_dir, checkpoint.fp32_params.size(), params.size()));
  }
}

// What a checkpoint sets in this engine, all read and checked before anything changes.
struct Engine::LoadedState {
  std::vector<Tensor> update_slices;         // per group: this rank's fp32 slice
  std::vector<Tensor> full_values;           // per group: every element, padded
  std::vector<optim::ParamState> optimizer;  // per group
  NamedTensors buffers;                      // the model's buffers, by its names
  int64_t global_steps = 0, global_samples = 0, micro_steps = 0, skipped_steps = 0;
  std::optional<int64_t> schedule_iteration;
  std::optional<optim::LossScalerState> scaler;
  std::optional<SavedGenerator> generator;
  // By local module name; nullopt with `generators_missing` when the checkpoint predates them.
  std::optional<std::map<std::string, SavedGenerator>> tensor_rank_generators;
  bool tensor_rank_generators_missing = false;
  nlohmann::json client_state;
  std::string tag_dir;
  std::vector<std::string> files_read;
};

Engine::LoadedState Engine::read_loaded_state(const std::string& dir,
                                              const std::string& tag) const {
  // Joined over every rank that saved it and cut for this engine's place in the grid.
  const UniversalCheckpoint universal =
      read_universal_checkpoint(resolve_tag_dir(dir, tag), &placement_);
  ConsolidatedCheckpoint checkpoint =
      localize(universal, placement_, model_->named_parameters(), model_->named_buffers());
  check_checkpoint_matches_model(checkpoint);
  LoadedState loaded;
  std::string where = model_states_file(checkpoint.tag_dir) + ": zerotrain";
  const nlohmann::json& state = checkpoint.engine_state;
  auto count = [&](const char* key) {
    if (!state.contains(key) || !state[key].is_number_integer() || state[key].get<int64_t>() < 0)
      throw std::runtime_error(fmt::format("{}: \"{}\" must be an integer >= 0", where, key));
    return state[key].get<int64_t>();
  };
  loaded.global_steps = count("global_steps");
  loaded.global_samples = count("global_samples");
  loaded.micro_steps = count("micro_steps");
  loaded.skipped_steps = count("skipped_steps");
  // The optimizer state is restored per parameter, but each parameter must come back into the
  // group it was trained in: a checkpoint of other groups is refused.
  check_saved_param_groups(state.contains("param_groups") ? state["param_groups"] : nullptr,
                           param_groups_, where);
  try {
    if (state.contains("lr_scheduler") && state["lr_scheduler"].is_object())
      loaded.schedule_iteration = state["lr_scheduler"].at("last_batch_iteration").get<int64_t>();
    if (state.contains("loss_scaler") && state["loss_scaler"].is_object()) {
      const nlohmann::json& scaler = state["loss_scaler"];
      loaded.scaler = optim::LossScalerState{
          .scale = scaler.at("scale").get<double>(),
          .iteration = scaler.at("iteration").get<int64_t>(),
          .last_overflow_iteration = scaler.at("last_overflow_iteration").get<int64_t>(),
          .hysteresis_left = scaler.at("hysteresis_left").get<int>()};
      if (!(loaded.scaler->scale > 0.0) || loaded.scaler->hysteresis_left < 1)
        throw std::runtime_error("loss_scaler: scale must be > 0 and hysteresis_left >= 1");
    }
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(fmt::format("{}: {}", where, error.what()));
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(fmt::format("{}: {}", where, error.what()));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const FlatGroupBuffers& group = *groups_[g];
    Tensor flat = flat_group_values(group.plan, checkpoint.fp32_params);
    int64_t begin = partitioning_.optimizer_states ? group.plan.slice_begin(rank()) : 0;
    // The owned slice's length (its values may be in a swap file, not in owned_params).
    int64_t numel =
        partitioning_.optimizer_states ? group.plan.slice_numel() : group.plan.padded_numel;
    loaded.full_values.push_back(flat);
    loaded.update_slices.push_back(flat_range(flat, begin, numel));
    loaded.optimizer.push_back(group_optimizer_state(checkpoint, group.plan, begin, numel));
  }
  for (auto& [name, tensor] : model_->named_buffers()) {
    Tensor saved;
    for (auto& [saved_name, value] : checkpoint.model_tensors)
      if (saved_name == name && value.sizes() == tensor.sizes()) saved = value;
    if (!saved.defined())
      throw std::runtime_error(fmt::format("{}: buffer {} {} missing",
                                           model_states_file(checkpoint.tag_dir), name,
                                           shape_str(tensor.sizes())));
    loaded.buffers.emplace_back(name, saved);
  }
  // A data rank the saved grid did not have continues the stream of rank r mod its size
  // (docs/checkpoints.md, generators).
  if (!checkpoint.generators.empty())
    loaded.generator = checkpoint.generators[size_t(rank()) % checkpoint.generators.size()];
  const std::map<std::string, Generator*> generators =
      tensor_parallel::tensor_rank_generators(*model_);
  if (!generators.empty()) {
    auto restored = restored_tensor_rank_generators(universal, placement_, generators);
    loaded.tensor_rank_generators_missing = !restored;
    if (restored) loaded.tensor_rank_generators = (*restored)[size_t(rank()) % restored->size()];
  }
  loaded.client_state = checkpoint.client_state;
  loaded.files_read = universal.files_opened;
  loaded.tag_dir = universal.tag_dir;
  return loaded;
}

nlohmann::json Engine::load_checkpoint(const std::string& dir, const std::string& tag) {
  LoadedState loaded;
  run_on_every_grid_rank("load_checkpoint", [&] { loaded = read_loaded_state(dir, tag); });
  autograd::NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    FlatGroupBuffers& group = *groups_[g];
    shard_->set_master_slice(g, loaded.update_slices[g]);
    if (group.full_params.defined()) ops::copy_(group.full_params, loaded.full_values[g]);
    // With P_p the owned slice is a buffer of its own, not a view of full_params.
    if (partitioning_.parameters) {
      if (parameter_swap_) parameter_swap_->bring_in(g, [] {});
      ops::copy_(group.owned_params, loaded.update_slices[g]);
      if (parameter_swap_) parameter_swap_->send_out(g, /*changed=*/true);
    }
    shard_->set_slice_state(g, loaded.optimizer[g]);
  }
  NamedTensors buffers = model_->named_buffers();
  for (size_t i = 0; i < buffers.size(); ++i)
    ops::copy_(buffers[i].second, loaded.buffers[i].second);
  global_steps_ = loaded.global_steps;
  global_samples_ = loaded.global_samples;
  micro_steps_ = loaded.micro_steps;
  skipped_steps_ = loaded.skipped_steps;
  backward_since_step_ = false;
  if (schedule_ && loaded.schedule_iteration)
    schedule_->set_last_batch_iteration(*loaded.schedule_iteration);
  if (loss_scaler_ && loaded.scaler) loss_scaler_->set_state(*loaded.scaler);
  if (loaded.generator)
    default_generator().set_state(loaded.generator->seed, loaded.generator->offset);
  std::map<std::string, Generator*> generators = tensor_parallel::tensor_rank_generators(*model_);
  if (loaded.tensor_rank_generators)
    for (const auto& [name, saved] : *loaded.tensor_rank_generators)
      generators.at(name)->set_state(saved.seed, saved.offset);
  if (loaded.tensor_rank_generators_missing && rank() == 0 && placement_.tensor_rank == 0)
    fmt::print(stderr, "warning: {}\n", missing_tensor_rank_generators(loaded.tag_dir));
  files_read_ = std::move(loaded.files_read);
  reducer_->zero_gradients();
  return loaded.client_state;
}
}  // namespace zt::dist
