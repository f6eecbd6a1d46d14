// Engine::save_16bit_model (dist/engine.h): the consolidated model file of DeepSpeed's
// engine.save_16bit_model, in the project's model-file format (safetensors, as the apps' --save
// and the checkpoints' model states), in the dtype the model trains in.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "core/safetensors.h"
#include "dist/engine.h"
#include "nn/shared_tensors.h"

namespace zt::dist {
namespace fs = std::filesystem;

bool Engine::save_16bit_model(const std::string& save_dir, const std::string& save_filename) {
  const fs::path path = fs::path(save_dir) / save_filename;
  if (partitioning_.parameters && !config_.zero_optimization.gather_16bit_weights_on_model_save) {
    // As DeepSpeed: without the gather a rank holds only its slices, and a file of slices would
    // be a bogus model, so nothing is saved.
    if (rank() == 0) {
      fmt::print(stderr,
                 "Did not save the model {} because `stage3_gather_16bit_weights_on_model_save` "
                 "is False\n",
                 path.string());
      std::fflush(stderr);
    }
    return false;
  }
  NamedTensors model_state = consolidated_state_dict();  // collective with P_p
  SafetensorsMetadata metadata = nn::remove_shared_duplicates(model_state);
  metadata.emplace("format", "pt");
  run_on_all_ranks("save_16bit_model", [&] {
    if (rank() != 0) return;
    try {
      if (!save_dir.empty()) fs::create_directories(save_dir);
    } catch (const fs::filesystem_error& error) {
      throw std::runtime_error(fmt::format("save_16bit_model: cannot create {}: {}",
                                           error.path1().string(), error.code().message()));
    }
    save_safetensors(path.string(), model_state, metadata);
  });
  return true;
}

}  // namespace zt::dist
