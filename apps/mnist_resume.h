// Resuming mnist_train: where training stands between two batches, as a checkpoint's client
// state records it (with the model and dataset names), read back and checked against the run
// that resumes it, so that a resumed run continues exactly where the saved one was.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "dist/checkpoint_files.h"

namespace zt::apps {

// Where training stands between two batches: what a checkpoint's client state records (with the
// model and dataset names) so that a resumed run continues exactly where the saved one was.
struct Position {
  int64_t epoch = 1;              // 1-based: the epoch being run
  int64_t next_batch = 0;         // the batch of that epoch to run next
  std::vector<double> loss_sums;  // per rank: the epoch's running sum of batch losses so far
  int64_t world_size = 1, micro_batch_size = 1;  // of the run that saved it
};

inline nlohmann::json client_state(const Position& position, const std::string& model_name,
                                   const std::string& dataset_name) {
  return {{"epoch", position.epoch},
          {"next_batch", position.next_batch},
          {"loss_sums", position.loss_sums},
          {"world_size", position.world_size},
          {"micro_batch_size", position.micro_batch_size},
          {"metadata", {{"model", model_name}, {"dataset", dataset_name}}}};
}

// The client state of the checkpoint --resume continues from (DIR/latest), read and checked
// against the flags before any data is loaded: a checkpoint of another network or dataset is an
// error naming its file, not a shape mismatch deep in the engine. Every rank reads it, so every
// rank fails alike. Returns the model file's path, for later messages.
inline std::string check_resume_checkpoint(const std::string& save_dir,
                                           const std::string& model_name,
                                           const std::string& dataset_name) {
  std::string model_file = dist::model_states_file(dist::resolve_tag_dir(save_dir, ""));
  SafetensorsContents contents = load_safetensors(model_file);
  auto found = contents.metadata.find("client_state");
  nlohmann::json state;
  try {
    if (found != contents.metadata.end()) state = nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(fmt::format("{}: metadata \"client_state\" is not valid JSON: {}",
                                         model_file, error.what()));
  }
  const nlohmann::json* metadata =
      state.is_object() && state.contains("metadata") ? &state["metadata"] : nullptr;
  if (metadata == nullptr || !metadata->is_object()) {
    throw std::runtime_error(model_file +
                             ": client_state.metadata missing (not a checkpoint of mnist_train)");
  }
  for (auto [key, wanted] :
       {std::pair<std::string, std::string>{"model", model_name}, {"dataset", dataset_name}}) {
    std::string saved = metadata->contains(key) && (*metadata)[key].is_string()
                            ? (*metadata)[key].get<std::string>()
                            : (*metadata).value(key, nlohmann::json()).dump();
    if (saved != wanted) {
      throw std::runtime_error(fmt::format(
          "{}: client_state.metadata.{}: the checkpoint is of {} {}, but this run has {} {}",
          model_file, key, key, saved, key, wanted));
    }
  }
  return model_file;
}

// The position a resumed run starts from, from the client state the engine restored; `where`
// names the file. Mid-epoch, the rest of the epoch is this rank's share of batches only with
// the same ranks and batch size; at an epoch's start any will do.
inline Position position_from(const nlohmann::json& state, const std::string& where, int world_size,
                              int64_t micro_batch_size) {
  auto integer = [&](const char* key, int64_t min_value) {
    if (!state.is_object() || !state.contains(key) || !state[key].is_number_integer() ||
        state[key].get<int64_t>() < min_value) {
      throw std::runtime_error(
          fmt::format("{}: client_state.{}: expected an integer >= {}", where, key, min_value));
    }
    return state[key].get<int64_t>();
  };
  Position position;
  position.epoch = integer("epoch", 1);
  position.next_batch = integer("next_batch", 0);
  position.world_size = integer("world_size", 1);
  position.micro_batch_size = integer("micro_batch_size", 1);
  const nlohmann::json& sums = state.contains("loss_sums") ? state["loss_sums"] : nullptr;
  if (!sums.is_array() || sums.size() != size_t(position.world_size)) {
    throw std::runtime_error(
        fmt::format("{}: client_state.loss_sums: expected {} numbers", where, position.world_size));
  }
  for (const nlohmann::json& sum : sums) {
    if (!sum.is_number())
      throw std::runtime_error(where + ": client_state.loss_sums: expected numbers");
    position.loss_sums.push_back(sum.get<double>());
  }
  if (position.world_size == world_size && position.micro_batch_size == micro_batch_size)
    return position;
  if (position.next_batch > 0) {
    throw std::runtime_error(fmt::format(
        "{}: saved in the middle of epoch {} by {} ranks with micro-batches of {}; resume it "
        "with those (this run: {} ranks, micro-batches of {})",
        where, position.epoch, position.world_size, position.micro_batch_size, world_size,
        micro_batch_size));
  }
  position.loss_sums.assign(size_t(world_size), 0.0);
  return position;
}

}  // namespace zt::apps
