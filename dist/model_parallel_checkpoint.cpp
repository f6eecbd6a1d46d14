// Joining a model-parallel checkpoint's shards into whole tensors by whole-model name, and
// cutting out one engine's piece at another layout (what DeepSpeed's universal checkpoint
// conversion does offline).
#include "dist/model_parallel_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/ops/index.h"
#include "core/ops/view.h"
#include "dist/checkpoint_generators.h"
#include "dist/checkpoint_read_plan.h"

namespace zt::dist {

using tensor_parallel::ShardKind;
using tensor_parallel::ShardLayout;

std::string ModelParallelPlacement::whole_name(const std::string& local) const {
  auto found = whole_names.find(local);
  return found == whole_names.end() ? local : found->second;
}

ShardLayout ModelParallelPlacement::layout(const std::string& local) const {
  auto found = layouts.find(local);
  return found == layouts.end() ? ShardLayout{} : found->second;
}

std::string ModelParallelPlacement::whole_module_name(const std::string& local) const {
  const std::string prefix = local + ".";
  for (auto entry = whole_names.lower_bound(prefix);
       entry != whole_names.end() && entry->first.starts_with(prefix); ++entry) {
    const std::string inside = entry->first.substr(prefix.size());
    const std::string& whole = entry->second;
    if (whole.size() > inside.size() && whole.ends_with("." + inside))
      return whole.substr(0, whole.size() - inside.size() - 1);
  }
  return local;
}

namespace {

const char* kind_name(ShardKind kind) {
  switch (kind) {
    case ShardKind::rows:
      return "rows";
    case ShardKind::columns:
      return "columns";
    case ShardKind::replicated:
      break;
  }
  return "replicated";
}

ShardKind kind_from(const std::string& name, const std::string& where) {
  if (name == "rows") return ShardKind::rows;
  if (name == "columns") return ShardKind::columns;
  if (name == "replicated") return ShardKind::replicated;
  throw std::runtime_error(
      fmt::format("{}: cut \"{}\" is not one of replicated, rows, columns", where, name));
}

// One parameter of one saved engine, as its model file's "model_parallel" entry states it.
struct SavedPlacement {
  std::string whole;
  ShardLayout layout;
};

// The placement a model file records; a file without one (an engine without model
// parallelism) is one whole replica.
struct SavedGrid {
  int stage = 0, stages = 1, tensor_rank = 0, tensor_size = 1, chunks = 1;
  std::vector<int> layer_bounds;                 // pipeline stages only
  std::map<std::string, SavedPlacement> params;  // by local name
  std::map<std::string, std::string> buffers;    // local -> whole
};

// The grid a model file's "model_parallel" entry states (null: one whole replica); with
// `checkpoint`, each of its parameters' and buffers' places too.
SavedGrid saved_grid(const nlohmann::json& saved, const std::string& path,
                     const ConsolidatedCheckpoint* checkpoint) {
  SavedGrid grid;
  if (saved.is_null()) {
    if (checkpoint == nullptr) return grid;
    for (const std::string& name : checkpoint->parameter_names) grid.params[name] = {name, {}};
    for (const auto& [name, tensor] : checkpoint->model_tensors) grid.buffers[name] = name;
    return grid;
  }
  std::string where = path + ": model_parallel";
  try {
    grid.stage = saved.at("pipeline_stage").get<int>();
    grid.stages = saved.at("pipeline_stages").get<int>();
    grid.tensor_rank = saved.at("tensor_rank").get<int>();
    grid.tensor_size = saved.at("tensor_size").get<int>();
    if (saved.contains("layer_bounds")) {
      grid.layer_bounds = saved.at("layer_bounds").get<std::vector<int>>();
      grid.chunks = saved.at("chunks").get<int>();
    }
    for (const auto& [local, entry] : saved.at("params").items()) {
      ShardLayout layout{kind_from(entry.at("cut").get<std::string>(), where + " " + local),
                         entry.at("fused_blocks").get<int64_t>()};
      grid.params[local] = {entry.at("name").get<std::string>(), layout};
    }
    for (const auto& [local, whole] : saved.at("buffers").items())
      grid.buffers[local] = whole.get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(fmt::format("{}: {}", where, error.what()));
  }
  if (grid.stages < 1 || grid.tensor_size < 1 || grid.stages * grid.tensor_size > 1'000'000)
    throw std::runtime_error(fmt::format("{}: {} pipeline stages x tensor size {} is not a grid",
                                         where, grid.stages, grid.tensor_size));
  return grid;
}

SavedGrid saved_grid(const ConsolidatedCheckpoint& checkpoint, const std::string& path) {
  return saved_grid(checkpoint.model_parallel, path, &checkpoint);
}

// The saved grid as one model-states file records it.
SavedLayout saved_layout(const SafetensorsContents& model_file, const std::string& path) {
  const SavedGrid grid =
      saved_grid(metadata_json(model_file, "model_parallel", path, false), path, nullptr);
  const nlohmann::json engine_state = metadata_json(model_file, "zerotrain", path, false);
  if (!engine_state.is_object() || !engine_state.contains("world_size") ||
      !engine_state["world_size"].is_number_integer())
    throw std::runtime_error(fmt::format("{}: missing \"world_size\"", path));
  const int data_size = engine_state["world_size"].get<int>();
  if (data_size < 1 || data_size > 1'000'000)
    throw std::runtime_error(fmt::format("{}: world_size {} is not a rank count", path, data_size));
  return {grid.stages, grid.tensor_size, data_size, grid.chunks, grid.layer_bounds};
}

// One tensor-parallel rank's part of a parameter.
struct Shard {
  Tensor fp32;
  std::map<std::string, Tensor> state;
  int64_t step = 0;
};

// A parameter being joined: its cut and the shards by tensor rank.
struct Joining {
  ShardLayout layout;
  std::map<int, Shard> by_tensor_rank;
  std::string file;  // the first model file that named it
};

// Adds one model-parallel rank's joined files (`checkpoint`) to the shards being joined.
void add_mp_rank(const ConsolidatedCheckpoint& checkpoint, const SavedGrid& grid, int mp_rank,
                 const std::string& path, UniversalCheckpoint& universal,
                 std::map<std::string, Joining>& joining) {
  for (const std::string& local : checkpoint.parameter_names) {
    auto placed = grid.params.find(local);
    if (placed == grid.params.end())
      throw std::runtime_error(
          fmt::format("{}: model_parallel names no whole-model parameter for {}", path, local));
    const auto& [whole, layout] = placed->second;
    Joining& target = joining[whole];
    if (target.file.empty()) {
      target = {layout, {}, path};
      universal.files[whole] = path;
    }
    // A tied parameter's copies on other stages hold the same values: the first one is kept.
    if (target.by_tensor_rank.count(grid.tensor_rank) != 0) continue;
    Shard& shard = target.by_tensor_rank[grid.tensor_rank];
    shard.fp32 = checkpoint.fp32_params.at(local);
    shard.step = checkpoint.optimizer_steps.at(local);
    auto state = checkpoint.optimizer_state.find(local);
    if (state != checkpoint.optimizer_state.end()) shard.state = state->second;
  }
  for (const auto& [local, tensor] : checkpoint.model_tensors) {
    auto whole = grid.buffers.find(local);
    if (whole != grid.buffers.end()) universal.buffers.try_emplace(whole->second, tensor);
  }
  const nlohmann::json& groups = checkpoint.engine_state.contains("param_groups")
                                     ? checkpoint.engine_state["param_groups"]
                                     : nlohmann::json();
  for (const nlohmann::json& group : groups.is_array() ? groups : nlohmann::json::array()) {
    std::set<std::string>& members = universal.group_members[group.value("name", "")];
    for (const nlohmann::json& member : group.value("params", nlohmann::json::array())) {
      auto placed = grid.params.find(member.get<std::string>());
      if (placed != grid.params.end()) members.insert(placed->second.whole);
    }
  }
  universal.generators[mp_rank] = checkpoint.generators;
  universal.tensor_rank_generators[mp_rank] = checkpoint.tensor_rank_generators;
}

// Every parameter whole (or in place, see UniversalCheckpoint) from the shards of the tensor
// ranks read (`tensor_ranks`); a missing one is named. A replicated parameter is taken from the
// lowest tensor rank read.
void join_all(std::map<std::string, Joining>& joining, const std::set<int>& tensor_ranks,
              UniversalCheckpoint& universal) {
  autograd::NoGradGuard no_grad;
  for (auto& [whole, joined] : joining) {
    const bool replicated = joined.layout.kind == ShardKind::replicated;
    for (int rank : tensor_ranks) {
      if (joined.by_tensor_rank.count(rank) == 0)
        throw std::runtime_error(fmt::format(
            "{}: parameter {} has no shard of tensor rank {} of {} in any model-parallel file",
            joined.file, whole, rank, universal.tensor_size));
      if (replicated) break;
    }
    auto gather = [&](const std::function<Tensor(const Shard&)>& pick) {
      std::map<int, Tensor> shards;
      for (int rank : tensor_ranks) {
        shards[rank] = pick(joined.by_tensor_rank[rank]);
        if (replicated) break;
      }
      return tensor_parallel::join_shards(shards, joined.layout, universal.tensor_size);
    };
    const Shard& first = joined.by_tensor_rank.at(*tensor_ranks.begin());
    universal.fp32[whole] = gather([](const Shard& shard) { return shard.fp32; });
    universal.optimizer_steps[whole] = first.step;
    for (const auto& [state_name, ignored] : first.state) {
      universal.optimizer_state[whole][state_name] = gather([&](const Shard& shard) {
        auto found = shard.state.find(state_name);
        if (found == shard.state.end())
          throw std::runtime_error(
              fmt::format("{}: parameter {} has no optimizer state {} on "
                          "every tensor rank",
                          joined.file, whole, state_name));
        return found->second;
      });
    }
  }
}

}  // namespace

nlohmann::json placement_json(const ModelParallelPlacement& placement,
                              const NamedTensors& parameters, const NamedTensors& buffers) {
  nlohmann::json params = nlohmann::json::object(), buffer_names = nlohmann::json::object();
  for (const auto& [local, tensor] : parameters) {
    ShardLayout layout = placement.layout(local);
    params[local] = {{"name", placement.whole_name(local)},
                     {"cut", kind_name(layout.kind)},
                     {"fused_blocks", layout.fused_blocks}};
  }
  for (const auto& [local, tensor] : buffers) buffer_names[local] = placement.whole_name(local);
  nlohmann::json saved = {{"pipeline_stage", placement.pipeline_stage},
                          {"pipeline_stages", placement.pipeline_stages},
                          {"tensor_rank", placement.tensor_rank},
                          {"tensor_size", placement.tensor_size},
                          {"params", params},
                          {"buffers", buffer_names}};
  if (!placement.layer_bounds.empty()) {
    saved["layer_bounds"] = placement.layer_bounds;
    saved["chunks"] = placement.chunks;
  }
  return saved;
}

UniversalCheckpoint read_universal_checkpoint(const std::string& tag_dir,
                                              const ModelParallelPlacement* reader) {
  UniversalCheckpoint universal;
  universal.tag_dir = tag_dir;
  // The saved grid, from one model-states file: the reader's own model-parallel rank's where the
  // checkpoint has one (at the same layout the only one it reads), else rank 0's.
  int probe_rank = 0;
  if (reader != nullptr && std::filesystem::exists(model_states_file(tag_dir, reader->mp_rank())))
    probe_rank = reader->mp_rank();
  const std::string probe_path = model_states_file(tag_dir, probe_rank);
  if (!std::filesystem::exists(probe_path)) throw std::runtime_error(probe_path + ": missing");
  universal.files_opened.push_back(probe_path);
  const SafetensorsContents probe = load_safetensors(probe_path);
  const SavedLayout layout = saved_layout(probe, probe_path);
  check_checkpoint_files_exist(tag_dir, layout);
  universal.pipeline_stages = layout.stages;
  universal.tensor_size = layout.tensor_size;
  universal.data_size = layout.data_size;
  std::set<int> mp_ranks = needed_mp_ranks(layout, reader);
  // A checkpoint that predates the recorded largest generator offsets: at another layout the
  // default generators' rule needs every rank's offsets, so every file is read.
  const bool other_layout = reader != nullptr && (reader->pipeline_stages != layout.stages ||
                                                  reader->tensor_size != layout.tensor_size);
  if (other_layout &&
      !recorded_largest_offsets(metadata_json(probe, "zerotrain", probe_path, false), probe_path))
    mp_ranks = needed_mp_ranks(layout, nullptr);
  // At the same sizes the generators continue the rank's own mp rank's streams (even where
  // another partition put its layers elsewhere).
  if (reader != nullptr && !other_layout) mp_ranks.insert(reader->mp_rank());
  std::map<std::string, Joining> joining;
  std::set<int> tensor_ranks;
  for (int mp_rank : mp_ranks) {
    const std::string path = model_states_file(tag_dir, mp_rank);
    ConsolidatedCheckpoint checkpoint = read_checkpoint(tag_dir, mp_rank, &universal.files_opened,
                                                        mp_rank == probe_rank ? &probe : nullptr);
    if (universal.engine_state.is_null()) {
      universal.engine_state = checkpoint.engine_state;
      universal.client_state = checkpoint.client_state;
    }
    const SavedGrid grid = saved_grid(checkpoint, path);
    const int stage = mp_rank / universal.tensor_size,
              tensor_rank = mp_rank % universal.tensor_size;
    if (grid.stages != universal.pipeline_stages || grid.tensor_size != universal.tensor_size ||
        grid.stage != stage || grid.tensor_rank != tensor_rank ||
        checkpoint.world_size != universal.data_size) {
      throw std::runtime_error(fmt::format(
          "{}: saved by stage {} of {}, tensor rank {} of {}, data size {}; expected stage {} of "
          "{}, tensor rank {} of {}, data size {}",
          path, grid.stage, grid.stages, grid.tensor_rank, grid.tensor_size, checkpoint.world_size,
          stage, universal.pipeline_stages, tensor_rank, universal.tensor_size,
          universal.data_size));
    }
    add_mp_rank(checkpoint, grid, mp_rank, path, universal, joining);
    tensor_ranks.insert(tensor_rank);
  }
  join_all(joining, tensor_ranks, universal);
  universal.largest_offsets = recorded_largest_offsets(
      universal.engine_state, model_states_file(tag_dir, *mp_ranks.begin()));
  return universal;
}

ConsolidatedCheckpoint read_whole_checkpoint(const std::string& tag_dir) {
  ConsolidatedCheckpoint first = read_checkpoint(tag_dir, 0);
  // One engine that held the whole model under its own names: its files are the whole model,
  // in the model file's order and with its tied names.
  const SavedGrid grid = saved_grid(first, model_states_file(tag_dir, 0));
  bool own_names = grid.stages == 1 && grid.tensor_size == 1;
  for (const auto& [local, placed] : grid.params) own_names = own_names && placed.whole == local;
  if (own_names) return first;
  UniversalCheckpoint universal = read_universal_checkpoint(tag_dir);
  ConsolidatedCheckpoint whole;
  whole.tag_dir = tag_dir;
  whole.engine_state = universal.engine_state;
  whole.client_state = universal.client_state;
  whole.world_size = universal.data_size;
  for (const auto& [name, tensor] : universal.fp32) {
    whole.parameter_names.push_back(name);
    whole.model_tensors.emplace_back(name, tensor);
  }
  for (const auto& [name, tensor] : universal.buffers)
    if (universal.fp32.count(name) == 0) whole.model_tensors.emplace_back(name, tensor);
  whole.fp32_params = universal.fp32;
  whole.optimizer_state = universal.optimizer_state;
  whole.optimizer_steps = universal.optimizer_steps;
  return whole;
}

ConsolidatedCheckpoint localize(const UniversalCheckpoint& universal,
                                const ModelParallelPlacement& placement,
                                const NamedTensors& parameters, const NamedTensors& buffers) {
  ConsolidatedCheckpoint local;
  local.tag_dir = universal.tag_dir;
  local.engine_state = universal.engine_state;
  local.client_state = universal.client_state;
  local.world_size = universal.data_size;
  const std::string first_file = universal.files_opened.front();
  std::set<std::string> wholes;
  autograd::NoGradGuard no_grad;
  for (const auto& [name, parameter] : parameters) {
    const std::string whole = placement.whole_name(name);
    wholes.insert(whole);
    auto found = universal.fp32.find(whole);
    if (found == universal.fp32.end())
      throw std::runtime_error(fmt::format(
          "{}: parameter {} {} is not in the checkpoint, which holds {} parameters (a checkpoint "
          "of a different model?)",
          first_file, whole, shape_str(parameter.sizes()), universal.fp32.size()));
    const ShardLayout layout = placement.layout(name);
    auto cut = [&](const Tensor& whole_tensor) {
      Tensor piece;
      try {
        piece = tensor_parallel::cut_shard(whole_tensor, layout, placement.tensor_rank,
                                           placement.tensor_size);
      } catch (const std::invalid_argument&) {
      }
      if (!piece.defined() || piece.sizes() != parameter.sizes())
        throw std::runtime_error(fmt::format(
            "{}: parameter {} is {} whole in the checkpoint; this model's {} at tensor rank {} "
            "of {} is {} (a checkpoint of another model shape?)",
            universal.files.at(whole), whole, shape_str(whole_tensor.sizes()), name,
            placement.tensor_rank, placement.tensor_size, shape_str(parameter.sizes())));
      return ops::contiguous(piece);
    };
    local.parameter_names.push_back(name);
    local.fp32_params[name] = cut(found->second);
    local.optimizer_steps[name] = universal.optimizer_steps.at(whole);
    auto state = universal.optimizer_state.find(whole);
    if (state != universal.optimizer_state.end())
      for (const auto& [state_name, tensor] : state->second)
        local.optimizer_state[name][state_name] = cut(tensor);
  }
  if (placement.pipeline_stages == 1 && wholes.size() != universal.fp32.size())
    throw std::runtime_error(fmt::format(
        "{}: the checkpoint holds {} parameters, the model {} (a checkpoint of a different "
        "model?)",
        first_file, universal.fp32.size(), wholes.size()));
  for (const auto& [name, buffer] : buffers) {
    auto found = universal.buffers.find(placement.whole_name(name));
    if (found != universal.buffers.end()) local.model_tensors.emplace_back(name, found->second);
  }
  nlohmann::json& groups = local.engine_state["param_groups"];
  if (groups.is_array()) {
    for (nlohmann::json& group : groups) {
      auto members = universal.group_members.find(group.value("name", ""));
      nlohmann::json names = nlohmann::json::array();
      for (const auto& [name, parameter] : parameters)
        if (members != universal.group_members.end() &&
            members->second.count(placement.whole_name(name)) != 0)
          names.push_back(name);
      group["params"] = names;
    }
  }
  local.generators = restored_generators(universal, placement);
  return local;
}

}  // namespace zt::dist
