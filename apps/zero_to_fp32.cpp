// Joins an engine checkpoint's rank files into one fp32 model file, as DeepSpeed's
// zero_to_fp32.py does: the fp32 master values of every parameter (whatever world size, stage
// and precision saved them) under the model's names, its buffers cast to f32, and metadata
// {"format": "pt"} plus the strings of the client state's "metadata" object (mnist_train's
// "model" and "dataset", gpt_train's model shape), so mnist_eval, gpt_generate and PyTorch's
// safetensors loader open the result.
// Runs without mpirun: it never initialises MPI. Each error is one line naming the file or key;
// OUT is checked before the checkpoint is read. Usage: `zero_to_fp32 --help`.
#include <fmt/format.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include "apps/checkpoint_consolidation.h"
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

int convert(const std::vector<std::string>& arguments) {
  std::string dir = arguments.front();
  std::string tag = arguments.size() == 3 ? arguments[1] : "";
  std::string out = arguments.back();
  apps::check_output_file("OUT", out);
  dist::ConsolidatedCheckpoint checkpoint =
      dist::read_whole_checkpoint(dist::resolve_tag_dir(dir, tag));
  NamedTensors tensors = apps::fp32_model_tensors(checkpoint);
  save_safetensors(out, tensors, apps::consolidated_metadata(checkpoint));
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
