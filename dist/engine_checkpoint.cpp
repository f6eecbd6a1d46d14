// Engine::save_checkpoint and load_checkpoint (layout: dist/checkpoint_files.h).
// Crash safety: every rank writes into DIR/.TAG.partial; once all have finished, rank 0 renames
// it to DIR/TAG and only then rewrites `latest` (atomically), so a process killed at any point
// leaves the previous checkpoint and `latest` as they were. Loading joins the rank files per
// parameter, so a checkpoint saved by N ranks at one stage loads on M ranks at any stage.
// ZEROTRAIN_CHECKPOINT_KILL_AT=after_model_file|before_latest makes rank 0 SIGKILL itself at
// that point of a save: the crash tests use it to stop a save midway, deterministically; with
// ZEROTRAIN_CHECKPOINT_KILL_AFTER_SAVES=n only a save after n complete ones is stopped, so that
// a previous checkpoint exists to survive it.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/atomic_file.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/checkpoint_files.h"
#include "dist/checkpoint_generators.h"
#include "dist/engine.h"
#include "dist/fault_points.h"
#include "dist/zero/gradient_reducer.h"
#include "dist/zero/optimizer_shard.h"
#include "dist/zero/parameter_swap.h"
#include "nn/shared_tensors.h"
#include "tensor_parallel/tensor_rank_generator.h"

namespace zt::dist {
namespace fs = std::filesystem;

namespace {

void check_tag(const std::string& tag) {
  if (tag.empty() || tag.front() == '.' || tag.find('/') != std::string::npos ||
      tag.find('\n') != std::string::npos) {
    throw std::invalid_argument(fmt::format(
        "save_checkpoint: tag \"{}\" must be a plain directory name (not empty, no '/', not "
        "starting with '.')",
        tag));
  }
}

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

namespace {

// Runs `body` on every rank of `groups` and agrees on the outcome: when it throws on any rank,
// every rank throws (the failing ones their own error), so no rank is left waiting in a later
// collective. The groups are reduced in turn, so a rank learns of a failure anywhere in them.
void run_and_agree(const std::string& what, const std::function<void()>& body,
                   const std::vector<comm::Communicator*>& groups) {
  std::string error;
  try {
    body();
  } catch (const std::exception& failure) {
    error = failure.what();
  }
  Tensor failed =
      full({1}, error.empty() ? 0.0 : 1.0, {.dtype = DType::f64, .tag = MemoryTag::comm});
  for (comm::Communicator* group : groups) group->all_reduce(failed, comm::ReduceOperation::max);
  if (!error.empty()) throw std::runtime_error(error);
  if (failed.item() != 0.0) throw std::runtime_error(what + ": failed on another rank");
}

}  // namespace

// Over the data group.
void Engine::run_on_all_ranks(const std::string& what, const std::function<void()>& body) {
  run_and_agree(what, body, {control_.get()});
}

// Over the whole grid: the data group first, then each model-parallel axis in turn.
void Engine::run_on_every_grid_rank(const std::string& what, const std::function<void()>& body) {
  std::vector<comm::Communicator*> groups{control_.get()};
  groups.insert(groups.end(), other_axes_.begin(), other_axes_.end());
  run_and_agree(what, body, groups);
}

void Engine::set_model_parallel_placement(
    const ModelParallelPlacement& placement, std::vector<comm::Communicator*> other_axes,
    std::function<void(const std::string&)> write_model_files) {
  placement_ = placement;
  other_axes_ = std::move(other_axes);
  write_model_files_ = std::move(write_model_files);
}

nlohmann::json Engine::engine_state_json() const {
  nlohmann::json state = {{"format_version", 1},
                          {"world_size", world_size()},
                          {"zero_stage", zero_stage()},
                          {"dtype", dtype_name(model_dtype_)},
                          {"optimizer", shard_->optimizer().name()},
                          {"global_steps", global_steps_},
                          {"global_samples", global_samples_},
                          {"micro_steps", micro_steps_},
                          {"skipped_steps", skipped_steps_},
                          {"param_groups", param_groups_json(param_groups_)},
                          {"lr_scheduler", nullptr},
                          {"loss_scaler", nullptr}};
  if (schedule_)
    state["lr_scheduler"] = {{"last_batch_iteration", schedule_->last_batch_iteration()}};
  if (loss_scaler_) {
    const optim::LossScalerState& scaler = loss_scaler_->state();
    state["loss_scaler"] = {{"scale", scaler.scale},
                            {"iteration", scaler.iteration},
                            {"last_overflow_iteration", scaler.last_overflow_iteration},
                            {"hysteresis_left", scaler.hysteresis_left}};
  }
  return state;
}

// This rank's optimizer file in `staging_dir`: its slice of every group's fp32 values and
// optimizer state, with the layout that lets any world size and stage read them back.
void Engine::write_optimizer_states(
    const std::string& staging_dir,
    const std::map<std::string, Generator*>& tensor_rank_generators) const {
  NamedTensors tensors;
  nlohmann::json groups = nlohmann::json::array();
  for (size_t g = 0; g < groups_.size(); ++g) {
    const FlatGroupBuffers& group = *groups_[g];
    // Without P_os every rank holds everything; each rank saves its rank slice of it, so the
    // files partition the state at every stage.
    int64_t slice_begin = group.plan.slice_begin(rank());
    int64_t slice_numel = group.plan.slice_numel();
    int64_t local_begin = partitioning_.optimizer_states ? 0 : slice_begin;
    // Files are written from host memory: device slices come back to the host first.
    auto mine = [&](const Tensor& tensor) {
      return flat_range(ops::reshape(tensor, {tensor.numel()}), local_begin, slice_numel)
          .to(Device::cpu());
    };
    std::string prefix = fmt::format("group.{}.", g);
    tensors.emplace_back(prefix + "fp32", mine(shard_->master_slice(g)));
    optim::ParamState state = shard_->slice_state(g);
    nlohmann::json state_names = nlohmann::json::array();
    for (auto& [name, tensor] : state.tensors) {
      tensors.emplace_back(prefix + name, mine(tensor));
      state_names.push_back(name);
    }
    nlohmann::json params = nlohmann::json::array();
    for (const PlannedParam& entry : group.plan.params) {
      params.push_back(
          {{"name", entry.name}, {"offset", entry.offset}, {"shape", entry.param.sizes()}});
    }
    groups.push_back({{"slice_begin", slice_begin},
                      {"slice_numel", slice_numel},
                      {"step", state.step},
                      {"state", state_names},
                      {"params", params}});
  }
  nlohmann::json layout = {
      {"rank", rank()}, {"world_size", world_size()}, {"zero_stage", zero_stage()}};
  std::map<std::string, Generator*> by_whole_name;
  for (const auto& [name, generator] : tensor_rank_generators)
    by_whole_name[placement_.whole_module_name(name)] = generator;
  write_generator_record(by_whole_name, layout);
  layout["groups"] = groups;
  save_safetensors(optim_states_file(staging_dir, rank(), placement_.mp_rank()), tensors,
                   {{"zerotrain", layout.dump()}});
}

std::string Engine::save_checkpoint(const std::string& dir, const std::string& tag,
                                    const nlohmann::json& client_state, bool save_latest) {
  if (backward_since_step_) {
    throw std::logic_error(
        "save_checkpoint: the last engine.backward has had no step() yet; save after it");
  }
  if (micro_steps_ % config_.gradient_accumulation_steps != 0) {
    throw std::logic_error(fmt::format(
        "save_checkpoint: micro-step {} is inside an accumulation window of {}; save after the "
        "step() that ends one",
        micro_steps_, config_.gradient_accumulation_steps));
  }
  std::string chosen = tag.empty() ? fmt::format("global_step{}", global_steps_) : tag;
  check_tag(chosen);
  reach_fault_point("checkpoint_save_begin", rank(), global_steps_);
  fs::path staging = fs::path(dir) / ("." + chosen + ".partial");
  fs::path final_dir = fs::path(dir) / chosen;
  // One rank of the world makes and renames the directory; every engine writes into it.
  const bool world_rank_zero = rank() == 0 && placement_.mp_rank() == 0;
  run_on_every_grid_rank("save_checkpoint", [&] {
    if (!world_rank_zero) return;
    try {
      fs::create_directories(dir);
      fs::remove_all(staging);  // left by a save that was killed
      fs::create_directory(staging);
    } catch (const fs::filesystem_error& error) {
      // The library's text ("filesystem error: cannot create directories: ...") names neither
      // the call nor which folder of the checkpoint failed.
      throw std::runtime_error(fmt::format("save_checkpoint: cannot create {}: {}",
                                           error.path1().string(), error.code().message()));
    }
  });
  NamedTensors model_state = consolidated_state_dict();  // collective with P_p
  const std::map<std::string, Generator*> tensor_rank_generators =
      tensor_parallel::tensor_rank_generators(*model_);
  std::vector<comm::Communicator*> grid_axes{control_.get()};
  grid_axes.insert(grid_axes.end(), other_axes_.begin(), other_axes_.end());
  nlohmann::json engine_state = engine_state_json();
  engine_state["largest_generator_offsets"] =
      offsets_json(largest_generator_offsets(tensor_rank_generators, grid_axes));
  // A tied parameter is stored once, as safetensors.torch.save_model stores it.
  SafetensorsMetadata tied_names = nn::remove_shared_duplicates(model_state);
  const NamedTensors parameters = model_->named_parameters();
  if (!placement_.model_file_holds_parameters) {
    std::erase_if(model_state, [&](const auto& entry) {
      for (const auto& [name, parameter] : parameters)
        if (name == entry.first) return true;
      return false;
    });
  }
  run_on_every_grid_rank("save_checkpoint", [&] {
    if (rank() == 0) {
      SafetensorsMetadata metadata = {
          {"format", "pt"},
          {"zerotrain", engine_state.dump()},
          {"client_state", client_state.dump()},
          {"model_parallel",
           placement_json(placement_, parameters, model_->named_buffers()).dump()}};
      metadata.insert(tied_names.begin(), tied_names.end());  // never over the engine's keys
      save_safetensors(model_states_file(staging.string(), placement_.mp_rank()), model_state,
                       metadata);
      if (write_model_files_) write_model_files_(staging.string());
      reach_fault_point("checkpoint_after_model_file", rank(), global_steps_);
    }
    write_optimizer_states(staging.string(), tensor_rank_generators);
  });
  run_on_every_grid_rank("save_checkpoint", [&] {
    if (!world_rank_zero) return;
    fs::path replaced = fs::path(dir) / ("." + chosen + ".old");
    if (fs::exists(final_dir)) {
      fs::remove_all(replaced);
      fs::rename(final_dir, replaced);
    }
    fs::rename(staging, final_dir);
    fs::remove_all(replaced);
    reach_fault_point("checkpoint_before_latest", rank(), global_steps_);
    if (save_latest) {
      AtomicFileWriter latest(latest_file(dir));
      std::string line = chosen + "\n";
      latest.write(line.data(), line.size());
      latest.commit();
    }
  });
  return final_dir.string();
}

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
