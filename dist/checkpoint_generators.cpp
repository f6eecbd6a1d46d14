// Saving and restoring the random streams of a checkpoint (checkpoint_generators.h).
#include "dist/checkpoint_generators.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/factory.h"

namespace zt::dist {

namespace {

SavedGenerator generator_from(const nlohmann::json& pair, const std::string& where) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
      !pair[1].is_number_unsigned())
    throw std::runtime_error(fmt::format("{} needs [seed, offset], got {}", where, pair.dump()));
  return {pair[0].get<uint64_t>(), pair[1].get<uint64_t>()};
}

nlohmann::json pair_of(const Generator& generator) {
  return {generator.seed(), generator.offset()};
}

}  // namespace

GeneratorOffsets largest_generator_offsets(const std::map<std::string, Generator*>& tensor_rank,
                                           const std::vector<comm::Communicator*>& grid_axes) {
  std::vector<int64_t> mine{int64_t(default_generator().offset()), 0};
  for (const auto& [name, generator] : tensor_rank)
    mine[1] = std::max(mine[1], int64_t(generator->offset()));
  Tensor offsets = from_int64(mine, {2});
  for (comm::Communicator* axis : grid_axes) axis->all_reduce(offsets, comm::ReduceOperation::max);
  const int64_t* reached = offsets.data_ptr<int64_t>();
  return {uint64_t(reached[0]), uint64_t(reached[1])};
}

void write_generator_record(const std::map<std::string, Generator*>& tensor_rank_by_whole_name,
                            nlohmann::json& layout) {
  layout["generator"] = pair_of(default_generator());
  nlohmann::json tensor_rank = nlohmann::json::object();
  for (const auto& [whole, generator] : tensor_rank_by_whole_name)
    tensor_rank[whole] = pair_of(*generator);
  layout["tensor_rank_generators"] = tensor_rank;
}

void read_generator_record(const nlohmann::json& layout, const std::string& path,
                           ConsolidatedCheckpoint& checkpoint) {
  if (!layout.contains("generator"))
    throw std::runtime_error(fmt::format("{}: missing \"generator\"", path));
  checkpoint.generators.push_back(
      generator_from(layout["generator"], fmt::format("{}: \"generator\"", path)));
  if (!layout.contains("tensor_rank_generators")) {
    checkpoint.tensor_rank_generators.emplace_back(std::nullopt);
    return;
  }
  const nlohmann::json& saved = layout["tensor_rank_generators"];
  if (!saved.is_object())
    throw std::runtime_error(fmt::format(
        "{}: \"tensor_rank_generators\" must map module names to [seed, offset]", path));
  std::map<std::string, SavedGenerator> by_module;
  for (const auto& [module, pair] : saved.items())
    by_module[module] =
        generator_from(pair, fmt::format("{}: tensor_rank_generators \"{}\"", path, module));
  checkpoint.tensor_rank_generators.emplace_back(std::move(by_module));
}

nlohmann::json offsets_json(const GeneratorOffsets& offsets) {
  return {offsets.default_generator, offsets.tensor_rank};
}

std::optional<GeneratorOffsets> recorded_largest_offsets(const nlohmann::json& engine_state,
                                                         const std::string& where) {
  if (!engine_state.is_object() || !engine_state.contains("largest_generator_offsets"))
    return std::nullopt;
  SavedGenerator pair = generator_from(engine_state["largest_generator_offsets"],
                                       where + ": \"largest_generator_offsets\"");
  return GeneratorOffsets{.default_generator = pair.seed, .tensor_rank = pair.offset};
}

// The rule (docs/checkpoints.md): at the same pipeline and tensor sizes a rank's stream is its
// (stage, tensor rank)'s, saved per data rank; at other sizes a stage's offset counted its own
// layers' draws, which no new stage repeats, so every rank continues past every number any
// rank had drawn.
std::vector<SavedGenerator> restored_generators(const UniversalCheckpoint& universal,
                                                const ModelParallelPlacement& placement) {
  if (universal.pipeline_stages == placement.pipeline_stages &&
      universal.tensor_size == placement.tensor_size)
    return universal.generators.at(placement.mp_rank());
  std::vector<SavedGenerator> continued = universal.generators.begin()->second;
  for (SavedGenerator& generator : continued) {
    if (universal.largest_offsets) {
      generator.offset = std::max(generator.offset, universal.largest_offsets->default_generator);
      continue;
    }
    for (const auto& [mp_rank, data_ranks] : universal.generators)
      for (const SavedGenerator& saved : data_ranks)
        if (saved.seed == generator.seed)
          generator.offset = std::max(generator.offset, saved.offset);
  }
  return continued;
}

std::optional<std::vector<std::map<std::string, SavedGenerator>>> restored_tensor_rank_generators(
    const UniversalCheckpoint& universal, const ModelParallelPlacement& placement,
    const std::map<std::string, Generator*>& local) {
  uint64_t largest = 0;
  for (const auto& [mp_rank, data_ranks] : universal.tensor_rank_generators) {
    for (const auto& record : data_ranks) {
      if (!record) return std::nullopt;
      for (const auto& [module, saved] : *record) largest = std::max(largest, saved.offset);
    }
  }
  if (universal.largest_offsets) largest = universal.largest_offsets->tensor_rank;
  const bool same_tensor_size = universal.tensor_size == placement.tensor_size;
  std::vector<std::map<std::string, SavedGenerator>> restored(size_t(universal.data_size));
  for (const auto& [name, generator] : local) {
    const std::string whole = placement.whole_module_name(name);
    for (size_t data_rank = 0; data_rank < restored.size(); ++data_rank) {
      // The module's state as some read tensor rank saved it (its own, at the same size).
      std::optional<SavedGenerator> found;
      int found_tensor_rank = 0;
      for (const auto& [mp_rank, data_ranks] : universal.tensor_rank_generators) {
        const int tensor_rank = mp_rank % universal.tensor_size;
        if (same_tensor_size && tensor_rank != placement.tensor_rank) continue;
        auto saved = data_ranks.at(data_rank)->find(whole);
        if (saved == data_ranks.at(data_rank)->end()) continue;
        found = saved->second;
        found_tensor_rank = tensor_rank;
        break;
      }
      if (same_tensor_size && found) {
        restored[data_rank][name] = *found;
        continue;
      }
      // Another tensor size (or a module the saved model did not have): the base seed of this
      // module's layer in the saved group plus this tensor rank, past every number drawn
      // before the save.
      const uint64_t seed =
          found ? found->seed - uint64_t(found_tensor_rank) + uint64_t(placement.tensor_rank)
                : generator->seed();
      restored[data_rank][name] = {seed, largest};
    }
  }
  return restored;
}

std::string missing_tensor_rank_generators(const std::string& tag_dir) {
  return fmt::format(
      "{}: no state of the attention-dropout generators seeded per tensor rank (a checkpoint "
      "saved before they were saved); they keep this run's state, so with attention dropout the "
      "resumed run draws other masks than the saving run would have",
      tag_dir);
}

}  // namespace zt::dist
