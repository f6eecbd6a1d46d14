// Reading checkpoints back whole: the rank files' flat slices are joined per parameter by the
// layout each file records, so a checkpoint loads at any world size and any ZeRO stage.
#include "dist/checkpoint_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <tuple>

#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/checkpoint_generators.h"

namespace zt::dist {
namespace fs = std::filesystem;

std::string model_states_file(const std::string& tag_dir, int mp_rank) {
  return (fs::path(tag_dir) / fmt::format("mp_rank_{:02d}_model_states.safetensors", mp_rank))
      .string();
}

std::string optim_states_file(const std::string& tag_dir, int rank, int mp_rank) {
  return (fs::path(tag_dir) /
          fmt::format("zero_pp_rank_{}_mp_rank_{:02d}_optim_states.safetensors", rank, mp_rank))
      .string();
}

std::string latest_file(const std::string& dir) {
  return (fs::path(dir) / "latest").string();
}

std::string read_latest_tag(const std::string& dir) {
  std::string path = latest_file(dir);
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error(path + ": not found (no checkpoint has been saved in " + dir + ")");
  std::string tag;
  std::getline(in, tag);
  if (tag.empty() || tag.find('/') != std::string::npos || tag == "." || tag == "..") {
    throw std::runtime_error(path + ": expected the name of a tag directory, got \"" + tag + "\"");
  }
  return tag;
}

std::string resolve_tag_dir(const std::string& dir, const std::string& tag) {
  std::string chosen = tag.empty() ? read_latest_tag(dir) : tag;
  fs::path tag_dir = fs::path(dir) / chosen;
  if (!fs::is_directory(tag_dir)) {
    // A save that replaced this very tag may have been stopped between its two renames.
    fs::path replaced = fs::path(dir) / ("." + chosen + ".old");
    if (fs::is_directory(replaced)) return replaced.string();
    throw std::runtime_error(tag_dir.string() + ": no such checkpoint directory");
  }
  return tag_dir.string();
}

namespace {

// A JSON value that must exist with the right type; nlohmann's own messages do not say where.
template <typename T>
T field(const nlohmann::json& object, const std::string& key, const std::string& where) {
  if (!object.is_object() || !object.contains(key))
    throw std::runtime_error(fmt::format("{}: missing \"{}\"", where, key));
  try {
    return object.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(
        fmt::format("{}: \"{}\" has the wrong type ({})", where, key, object.at(key).dump()));
  }
}

// A parameter being joined: its whole fp32 values and state, and how many elements have arrived.
struct Joining {
  Shape shape;
  int64_t offset = 0;  // in its flat group, the same in every rank file
  int64_t numel = 0;
  int64_t covered = 0;
};

// A parameter's place in a flat group as one rank file's layout states it.
struct PlacedRange {
  int64_t begin, end;
  std::string name;
};

// The layout of one group must place its parameters inside the group (the ranks' slices laid end
// to end) without overlap: otherwise two parameters would read the same saved values.
void check_ranges_disjoint(std::vector<PlacedRange> ranges, const std::string& where) {
  std::sort(ranges.begin(), ranges.end(), [](const PlacedRange& a, const PlacedRange& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw std::runtime_error(fmt::format(
          "{}: parameters {} at [{}, {}) and {} at [{}, {}) overlap", where, ranges[i - 1].name,
          ranges[i - 1].begin, ranges[i - 1].end, ranges[i].name, ranges[i].begin, ranges[i].end));
    }
  }
}

// One parameter of a group's layout, checked to lie inside the group's `group_numel` elements.
struct LaidOutParam {
  std::string name;
  int64_t offset = 0;
  Shape shape;
  int64_t numel = 1;
};

LaidOutParam read_laid_out_param(const nlohmann::json& entry, const std::string& where,
                                 int64_t group_numel) {
  LaidOutParam param;
  param.name = field<std::string>(entry, "name", where);
  param.offset = field<int64_t>(entry, "offset", where + " " + param.name);
  param.shape = field<Shape>(entry, "shape", where + " " + param.name);
  for (int64_t size : param.shape) {
    if (size < 0 || (size > 0 && param.numel > (int64_t(1) << 40) / size))
      throw std::runtime_error(fmt::format("{} {}: bad shape", where, param.name));
    param.numel *= size;
  }
  if (param.offset < 0 || param.offset > group_numel - param.numel) {
    throw std::runtime_error(
        fmt::format("{} {}: offset {} with {} elements is outside the group's {} elements", where,
                    param.name, param.offset, param.numel, group_numel));
  }
  return param;
}

// Joins group `g` of rank `rank`'s file (at `path`) into `checkpoint`: the part of each
// parameter's fp32 values and optimizer state inside the rank's slice, with every offset and
// shape checked against the other ranks' (`joining`).
void join_group(const SafetensorsContents& file, const std::string& path, int rank, size_t g,
                const nlohmann::json& group, ConsolidatedCheckpoint& checkpoint,
                std::map<std::string, Joining>& joining) {
  std::string where = fmt::format("{}: groups[{}]", path, g);
  int64_t slice_begin = field<int64_t>(group, "slice_begin", where);
  int64_t slice_numel = field<int64_t>(group, "slice_numel", where);
  int64_t step = field<int64_t>(group, "step", where);
  auto state_names = field<std::vector<std::string>>(group, "state", where);
  std::string prefix = fmt::format("group.{}.", g);
  auto slice_of = [&](const std::string& name) {
    if (!file.contains(prefix + name))
      throw std::runtime_error(fmt::format("{}: tensor {}{} missing", path, prefix, name));
    const Tensor& tensor = file.at(prefix + name);
    if (tensor.dtype() != DType::f32 || tensor.dim() != 1 || tensor.numel() != slice_numel) {
      throw std::runtime_error(fmt::format("{}: tensor {}{} is {} {}, expected f32 [{}]", path,
                                           prefix, name, dtype_name(tensor.dtype()),
                                           shape_str(tensor.sizes()), slice_numel));
    }
    return tensor;
  };
  Tensor fp32 = slice_of("fp32");
  // Equal slices in rank order (the partition plan's rule), so the files' slices tile the
  // group exactly once. slice_numel is the size of a tensor in the file here, so no product
  // below overflows.
  if (slice_begin != int64_t(rank) * slice_numel) {
    throw std::runtime_error(
        fmt::format("{}: slice_begin {} with slice_numel {} is not rank {}'s slice", where,
                    slice_begin, slice_numel, rank));
  }
  const int64_t group_numel = slice_numel * checkpoint.world_size;
  std::vector<PlacedRange> ranges;
  std::vector<std::pair<std::string, Tensor>> states;
  for (const std::string& name : state_names) states.emplace_back(name, slice_of(name));
  for (const nlohmann::json& entry : field<nlohmann::json>(group, "params", where)) {
    auto [name, offset, shape, numel] = read_laid_out_param(entry, where, group_numel);
    ranges.push_back({offset, offset + numel, name});
    auto [it, added] = joining.try_emplace(name, Joining{shape, offset, numel, 0});
    Joining& target = it->second;
    if (!added && target.offset != offset) {
      throw std::runtime_error(fmt::format("{} {}: offset {} disagrees with another rank's {}",
                                           where, name, offset, target.offset));
    }
    if (added) {
      checkpoint.parameter_names.push_back(name);
      checkpoint.fp32_params[name] = zeros({numel});
      checkpoint.optimizer_steps[name] = step;
    } else if (target.shape != shape) {
      throw std::runtime_error(fmt::format("{} {}: shape {} disagrees with another rank's {}",
                                           where, name, shape_str(shape), shape_str(target.shape)));
    }
    // The part of [offset, offset + numel) inside this rank's slice.
    int64_t begin = std::max(offset, slice_begin);
    int64_t end = std::min(offset + numel, slice_begin + slice_numel);
    if (begin >= end) continue;
    auto copy_part = [&](const Tensor& slice, Tensor& whole) {
      ops::copy_(ops::narrow(whole, 0, begin - offset, end - begin),
                 ops::narrow(slice, 0, begin - slice_begin, end - begin));
    };
    copy_part(fp32, checkpoint.fp32_params[name]);
    for (auto& [state_name, slice] : states) {
      Tensor& whole = checkpoint.optimizer_state[name][state_name];
      if (!whole.defined()) whole = zeros({numel});
      copy_part(slice, whole);
    }
    target.covered += end - begin;
  }
  check_ranges_disjoint(std::move(ranges), where);
}

}  // namespace

nlohmann::json metadata_json(const SafetensorsContents& contents, const std::string& key,
                             const std::string& path, bool required) {
  auto found = contents.metadata.find(key);
  if (found == contents.metadata.end()) {
    if (!required) return nullptr;
    throw std::runtime_error(
        fmt::format("{}: no \"{}\" metadata (not a ZeroTrain checkpoint file)", path, key));
  }
  try {
    return nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(
        fmt::format("{}: metadata \"{}\" is not valid JSON: {}", path, key, error.what()));
  }
}

ConsolidatedCheckpoint read_checkpoint(const std::string& tag_dir, int mp_rank,
                                       std::vector<std::string>* files_opened,
                                       const SafetensorsContents* model_file) {
  ConsolidatedCheckpoint checkpoint;
  checkpoint.tag_dir = tag_dir;
  std::string model_path = model_states_file(tag_dir, mp_rank);
  auto open = [&](const std::string& path) {
    if (files_opened != nullptr) files_opened->push_back(path);
    return load_safetensors(path);
  };
  SafetensorsContents opened;
  if (model_file == nullptr) {
    if (!fs::exists(model_path)) throw std::runtime_error(model_path + ": missing");
    opened = open(model_path);
  }
  const SafetensorsContents& model = model_file != nullptr ? *model_file : opened;
  checkpoint.engine_state = metadata_json(model, "zerotrain", model_path, true);
  checkpoint.client_state = metadata_json(model, "client_state", model_path, false);
  checkpoint.model_parallel = metadata_json(model, "model_parallel", model_path, false);
  checkpoint.model_tensors = model.tensors;
  for (const auto& [key, value] : model.metadata) {
    if (!model.contains(key) && model.contains(value)) checkpoint.tied_names[key] = value;
  }
  checkpoint.world_size = field<int>(checkpoint.engine_state, "world_size", model_path);
  if (checkpoint.world_size < 1 || checkpoint.world_size > 1'000'000) {
    throw std::runtime_error(
        fmt::format("{}: world_size {} is not a rank count", model_path, checkpoint.world_size));
  }
  std::map<std::string, Joining> joining;
  for (int rank = 0; rank < checkpoint.world_size; ++rank) {
    std::string path = optim_states_file(tag_dir, rank, mp_rank);
    if (!fs::exists(path)) {
      throw std::runtime_error(fmt::format("{}: missing (the checkpoint was saved by {} ranks)",
                                           path, checkpoint.world_size));
    }
    SafetensorsContents file = open(path);
    nlohmann::json layout = metadata_json(file, "zerotrain", path, true);
    if (field<int>(layout, "rank", path) != rank ||
        field<int>(layout, "world_size", path) != checkpoint.world_size) {
      throw std::runtime_error(fmt::format("{}: saved by rank {} of {}, expected rank {} of {}",
                                           path, layout["rank"].dump(), layout["world_size"].dump(),
                                           rank, checkpoint.world_size));
    }
    read_generator_record(layout, path, checkpoint);
    auto groups = field<nlohmann::json>(layout, "groups", path);
    if (!groups.is_array()) throw std::runtime_error(path + ": \"groups\" must be an array");
    for (size_t g = 0; g < groups.size(); ++g)
      join_group(file, path, rank, g, groups[g], checkpoint, joining);
  }
  for (const std::string& name : checkpoint.parameter_names) {
    Joining& joined = joining.at(name);
    if (joined.covered != joined.numel) {
      throw std::runtime_error(fmt::format(
          "{}: parameter {} has {} of its {} elements in the rank files (overlapping or missing "
          "slices)",
          tag_dir, name, joined.covered, joined.numel));
    }
    checkpoint.fp32_params[name] = ops::reshape(checkpoint.fp32_params[name], joined.shape);
    for (auto& [state_name, tensor] : checkpoint.optimizer_state[name])
      tensor = ops::reshape(tensor, joined.shape);
  }
  return checkpoint;
}

}  // namespace zt::dist
