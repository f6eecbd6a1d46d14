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
  int stage = 0, stages = 1, tensor_rank = 0, tensor_size = 1;
  std::map<std::string, SavedPlacement> params;  // by local name
  std::map<std::string, std::string> buffers;    // local -> whole
};

SavedGrid saved_grid(const ConsolidatedCheckpoint& checkpoint, const std::string& path) {
  SavedGrid grid;
  const nlohmann::json& saved = checkpoint.model_parallel;
  if (saved.is_null()) {
    for (const std::string& name : checkpoint.parameter_names) grid.params[name] = {name, {}};
    for (const auto& [name, tensor] : checkpoint.model_tensors) grid.buffers[name] = name;
    return grid;
  }
  std::string where = path + ": model_parallel";
  try {
    grid.stage = saved.at("pipeline_stage").get<int>();
    grid.stages = saved.at("pipeline_stages").get<int>();
    grid.tensor_rank = saved.at("tensor_rank").get<int>();
    grid.tensor_size = saved.at("tensor_size").get<int>();
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

// The shards of one tensor, in tensor-rank order, put back together.
Tensor join_shards(const std::vector<Tensor>& shards, const ShardLayout& layout) {
  if (layout.kind == ShardKind::replicated) return shards.front();
  if (layout.kind == ShardKind::rows) return ops::cat(shards, 0);
  // Columns: each rank holds one piece of every fused block; block b is the ranks' pieces b.
  const int64_t last = shards.front().dim() - 1;
  const int64_t piece = shards.front().size(last) / layout.fused_blocks;
  std::vector<Tensor> pieces;
  for (int64_t block = 0; block < layout.fused_blocks; ++block)
    for (const Tensor& shard : shards)
      pieces.push_back(ops::narrow(shard, last, block * piece, piece));
  return ops::cat(pieces, last);
}

// Adds one model-parallel rank's joined files (`checkpoint`) to the shards being joined.
void add_mp_rank(const ConsolidatedCheckpoint& checkpoint, const SavedGrid& grid,
                 const std::string& path, UniversalCheckpoint& universal,
                 std::map<std::string, Joining>& joining) {
  for (const std::string& local : checkpoint.parameter_names) {
    auto placed = grid.params.find(local);
    if (placed == grid.params.end())
      throw std::runtime_error(
          fmt::format("{}: model_parallel names no whole-model parameter for {}", path, local));
    const auto& [whole, layout] = placed->second;
    Joining& target = joining[whole];
    if (target.file.empty()) target = {layout, {}, path};
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
  universal.generators.push_back(checkpoint.generators);
}

// Every parameter whole from its shards; a missing tensor rank is named.
void join_all(std::map<std::string, Joining>& joining, UniversalCheckpoint& universal) {
  autograd::NoGradGuard no_grad;
  for (auto& [whole, joined] : joining) {
    const int needed = joined.layout.kind == ShardKind::replicated ? 1 : universal.tensor_size;
    for (int rank = 0; rank < needed; ++rank) {
      if (joined.by_tensor_rank.count(rank) == 0)
        throw std::runtime_error(fmt::format(
            "{}: parameter {} has no shard of tensor rank {} of {} in any model-parallel file",
            joined.file, whole, rank, universal.tensor_size));
    }
    auto gather = [&](const std::function<Tensor(const Shard&)>& pick) {
      std::vector<Tensor> shards;
      for (int rank = 0; rank < needed; ++rank) shards.push_back(pick(joined.by_tensor_rank[rank]));
      return join_shards(shards, joined.layout);
    };
    const Shard& first = joined.by_tensor_rank.begin()->second;
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
  return {{"pipeline_stage", placement.pipeline_stage},
          {"pipeline_stages", placement.pipeline_stages},
          {"tensor_rank", placement.tensor_rank},
          {"tensor_size", placement.tensor_size},
          {"params", params},
          {"buffers", buffer_names}};
}

UniversalCheckpoint read_universal_checkpoint(const std::string& tag_dir) {
  UniversalCheckpoint universal;
  universal.tag_dir = tag_dir;
  ConsolidatedCheckpoint first = read_checkpoint(tag_dir, 0);
  const SavedGrid first_grid = saved_grid(first, model_states_file(tag_dir, 0));
  universal.pipeline_stages = first_grid.stages;
  universal.tensor_size = first_grid.tensor_size;
  universal.data_size = first.world_size;
  universal.engine_state = first.engine_state;
  universal.client_state = first.client_state;
  std::map<std::string, Joining> joining;
  const int mp_size = first_grid.stages * first_grid.tensor_size;
  for (int mp_rank = 0; mp_rank < mp_size; ++mp_rank) {
    const std::string path = model_states_file(tag_dir, mp_rank);
    ConsolidatedCheckpoint checkpoint;
    if (mp_rank == 0) {
      checkpoint = std::move(first);
    } else {
      if (!std::filesystem::exists(path))
        throw std::runtime_error(fmt::format(
            "{}: missing (the checkpoint was saved with {} pipeline stages x tensor size {})", path,
            universal.pipeline_stages, universal.tensor_size));
      checkpoint = read_checkpoint(tag_dir, mp_rank);
    }
    const SavedGrid grid = mp_rank == 0 ? first_grid : saved_grid(checkpoint, path);
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
    add_mp_rank(checkpoint, grid, path, universal, joining);
  }
  join_all(joining, universal);
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
  const std::string file = model_states_file(universal.tag_dir, 0);
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
          file, whole, shape_str(parameter.sizes()), universal.fp32.size()));
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
            file, whole, shape_str(whole_tensor.sizes()), name, placement.tensor_rank,
            placement.tensor_size, shape_str(parameter.sizes())));
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
        file, universal.fp32.size(), wholes.size()));
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

// The rule (docs/checkpoints.md): at the same pipeline and tensor sizes a rank's stream is its
// (stage, tensor rank)'s, saved per data rank (the engine takes data rank d mod the saved
// count); at other sizes a stage's offset counted its own layers' draws, which no new stage
// repeats, so every rank continues the saved seed past every number any rank had drawn.
std::vector<SavedGenerator> restored_generators(const UniversalCheckpoint& universal,
                                                const ModelParallelPlacement& placement) {
  if (universal.pipeline_stages == placement.pipeline_stages &&
      universal.tensor_size == placement.tensor_size)
    return universal.generators.at(size_t(placement.mp_rank()));
  std::vector<SavedGenerator> continued = universal.generators.at(0);
  for (SavedGenerator& generator : continued)
    for (const std::vector<SavedGenerator>& stage : universal.generators)
      for (const SavedGenerator& saved : stage)
        if (saved.seed == generator.seed)
          generator.offset = std::max(generator.offset, saved.offset);
  return continued;
}

}  // namespace zt::dist
