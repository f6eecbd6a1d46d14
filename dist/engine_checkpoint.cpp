// Engine::save_checkpoint (layout: dist/checkpoint_files.h), and the agreement on a collective
// step's outcome that save and load share (load: engine_checkpoint_load.cpp).
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
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/checkpoint_files.h"
#include "dist/checkpoint_generators.h"
#include "dist/engine.h"
#include "dist/fault_points.h"
#include "dist/zero/optimizer_shard.h"
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

}  // namespace zt::dist
