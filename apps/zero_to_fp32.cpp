// Joins an engine checkpoint's rank files into one fp32 model file, as DeepSpeed's
// zero_to_fp32.py does: the fp32 master values of every parameter (whatever world size, stage
// and precision saved them) under the model's names, its buffers cast to f32, and metadata
// {"format": "pt"} plus the strings of the client state's "metadata" object (mnist_train's
// "model" and "dataset"), so mnist_eval and PyTorch's safetensors loader open the result.
// Runs without mpirun: it never initialises MPI. Each error is one line naming the file or key;
// OUT is checked before the checkpoint is read. Usage: `zero_to_fp32 --help`.
#include <fmt/format.h>

#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include "apps/output_paths.h"
#include "apps/read_command_line.h"
#include "core/safetensors.h"
#include "dist/checkpoint_files.h"

using namespace zt;

namespace {

const apps::CommandLine kConvertCommandLine{
    "zero_to_fp32",
    "Joins the rank files of the engine checkpoint in DIR (tag TAG, or the one DIR/latest\n"
    "names) into one fp32 model file OUT.safetensors, which mnist_eval and PyTorch open.",
    {},
    "DIR [TAG] OUT.safetensors",
    2,
    3};

// The checkpoint in `tag_dir` as one model: parameters from the fp32 masters, buffers from the
// model file, in the model file's order.
NamedTensors fp32_model_tensors(const dist::ConsolidatedCheckpoint& checkpoint) {
  std::string model_file = dist::model_states_file(checkpoint.tag_dir);
  NamedTensors tensors;
  std::set<std::string> placed;
  for (const auto& [name, saved] : checkpoint.model_tensors) {
    auto master = checkpoint.fp32_params.find(name);
    if (master == checkpoint.fp32_params.end()) {
      tensors.emplace_back(name, saved.to(DType::f32));  // a buffer
      continue;
    }
    if (master->second.sizes() != saved.sizes()) {
      throw std::runtime_error(fmt::format(
          "{}: tensor {} is {}, but the rank files' layout gives it shape {}", model_file, name,
          shape_str(saved.sizes()), shape_str(master->second.sizes())));
    }
    tensors.emplace_back(name, master->second);
    placed.insert(name);
  }
  for (const std::string& name : checkpoint.parameter_names) {
    if (!placed.contains(name)) {
      throw std::runtime_error(
          fmt::format("{}: parameter {} of the rank files' layout is not in this model file",
                      model_file, name));
    }
  }
  return tensors;
}

// {"format": "pt"} and the client state's "metadata" strings.
SafetensorsMetadata output_metadata(const dist::ConsolidatedCheckpoint& checkpoint) {
  SafetensorsMetadata metadata{{"format", "pt"}};
  const nlohmann::json& state = checkpoint.client_state;
  if (!state.is_object() || !state.contains("metadata")) return metadata;
  std::string where = dist::model_states_file(checkpoint.tag_dir) + ": client_state.metadata";
  if (!state["metadata"].is_object())
    throw std::runtime_error(where + ": expected an object of strings");
  for (const auto& [key, value] : state["metadata"].items()) {
    if (!value.is_string()) {
      throw std::runtime_error(
          fmt::format("{}.{}: expected a string, got {}", where, key, value.dump()));
    }
    if (key != "format") metadata[key] = value.get<std::string>();
  }
  return metadata;
}

int convert(const std::vector<std::string>& arguments) {
  std::string dir = arguments.front();
  std::string tag = arguments.size() == 3 ? arguments[1] : "";
  std::string out = arguments.back();
  apps::check_output_file("OUT", out);
  dist::ConsolidatedCheckpoint checkpoint = dist::read_checkpoint(dist::resolve_tag_dir(dir, tag));
  NamedTensors tensors = fp32_model_tensors(checkpoint);
  save_safetensors(out, tensors, output_metadata(checkpoint));
  int64_t elements = 0;
  for (const auto& [name, tensor] : tensors) elements += tensor.numel();
  fmt::print("wrote {}: {} tensors, {} fp32 values, from {} (saved by {} ranks)\n", out,
             tensors.size(), elements, checkpoint.tag_dir, checkpoint.world_size);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> arguments;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kConvertCommandLine,
                              [&](const apps::Flags& flags) { arguments = flags.positionals(); });
  if (status) return *status;
  try {
    return convert(arguments);
  } catch (const std::exception& error) {
    fmt::print(stderr, "zero_to_fp32: {}\n", error.what());
    return 1;
  }
}
