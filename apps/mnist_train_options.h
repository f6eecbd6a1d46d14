// mnist_train's command line: its flag table (the parser's and --help's one source) and the
// options read from it. Everything here is checked before MPI starts; what needs the job
// (a GPU for --device cuda, writable output paths) is checked by the run itself.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/config_doctor_flags.h"
#include "apps/deepspeed_flags.h"
#include "apps/trace_flags.h"

namespace zt::apps {

// Filled by read_train_options; the defaults are the flag table's.
struct TrainOptions {
  int64_t epochs = 0, batch_size = 0;
  double lr = 0.0;
  std::string optimizer;  // adam, adamw or sgd: where the config has no optimizer block
  double weight_decay = 0.0;
  std::string model, dataset, data_dir, save_path;
  uint64_t seed = 0;
  bool report = false;
  std::string save_dir;          // "": no checkpoints
  int64_t save_every_steps = 0;  // 0: at each epoch end
  bool resume = false;
  int64_t max_steps = 0;  // 0: no limit
  std::string device;
  DeepSpeedArgs deepspeed;
  // Compression and distillation (apps/mnist_compression.h).
  std::string compression_config;  // "": the ds_config's compression_training, if any
  std::string teacher;             // "": no distillation
  double distill_alpha = 1.0, distill_temperature = 2.0;
  double width = 1.0;    // of the CNN's channels and hidden units
  DoctorOptions doctor;  // --explain-config
  TraceOptions trace;    // --trace DIR, --trace-steps A:B
};

inline const CommandLine& train_command_line() {
  static const CommandLine command_line = [] {
    CommandLine table{
        "mnist_train",
        "Trains the MNIST example network with the ZeroTrain engine, on one process or many\n"
        "(mpirun -np N mnist_train ...). Without --deepspeed_config: ZeRO stage 0 with Adam,\n"
        "--batch-size samples per rank per step, lr warmed up to --lr and decayed to 0.",
        {
            {"epochs", "N", "3", "epochs to train"},
            {"batch-size", "N", "64", "samples per rank per step (without --deepspeed_config)"},
            {"lr", "LR", "0.001",
             "the program's optimizer's (peak) learning rate; \"auto\" in a config takes it"},
            {"model", "cnn|mlp", "cnn", "the network: PyTorch's MNIST CNN, or 784-256-128-10"},
            {"dataset", "auto|mnist|fashion", "auto",
             "auto: MNIST if --data-dir holds it, else Debian's Fashion-MNIST"},
            {"data-dir", "DIR", "data/mnist", "the folder of MNIST's IDX files"},
            {"seed", "S", "1", "seed of the initial weights, dropout and data order"},
            {"save", "PATH", "deepspeed_train_model.safetensors",
             "the trained model, written by rank 0 (safetensors, f32)"},
            {"save-dir", "DIR", "", "engine checkpoints go in DIR", "none, no checkpoints"},
            {"save-every", "N|epoch", "epoch",
             "checkpoint every N optimizer steps, or at each epoch's end"},
            {"resume", "", "", "continue from the checkpoint that DIR/latest names"},
            {"max-steps", "N", "", "stop after N optimizer steps", "no limit"},
            {"device", "cpu|cuda", "cpu", "cuda: each rank on GPU (local rank % GPU count)"},
            {"report", "", "", "train one step, print each rank's memory and traffic, stop"},
            {"compression-config", "FILE", "",
             "a JSON file whose compression_training block compresses the CNN while it trains; "
             "the model is then cleaned, saved smaller and measured",
             "the ds_config's block, if any"},
            {"teacher", "FILE", "", "distil from this trained CNN (mnist_train --save)",
             "none, no distillation"},
            {"distill-alpha", "A", "1", "weight of the teacher's KL term"},
            {"distill-temperature", "T", "2", "softmax temperature of distillation"},
            {"width", "F", "1", "the CNN's channels and hidden units times F (0.5: half width)"},
        }};
    for (const FlagSpec& flag : optimizer_flags("adam", "0")) table.flags.push_back(flag);
    for (const FlagSpec& flag : deepspeed_flags()) table.flags.push_back(flag);
    for (const FlagSpec& flag : config_doctor_flags()) table.flags.push_back(flag);
    for (const FlagSpec& flag : trace_flags()) table.flags.push_back(flag);
    return table;
  }();
  return command_line;
}

inline TrainOptions read_train_options(const Flags& flags) {
  TrainOptions options;
  options.epochs = flags.get_int("epochs", 1);
  options.batch_size = flags.get_int("batch-size", 1);
  options.lr = flags.get_double("lr", 0.0);
  options.optimizer = flags.get_choice("optimizer");
  options.weight_decay = flags.get_non_negative_double("weight-decay");
  options.model = flags.get_choice("model");
  options.dataset = flags.get_choice("dataset");
  options.data_dir = flags.get_string("data-dir");
  options.save_path = flags.get_string("save");
  options.seed = uint64_t(flags.get_int("seed", 0));
  options.report = flags.has("report");
  options.save_dir = flags.get_string("save-dir");
  if (flags.get_string("save-every") != "epoch") {
    try {
      options.save_every_steps = flags.get_int("save-every", 1);
    } catch (const FlagError&) {
      throw FlagError(fmt::format("--save-every: expected an integer >= 1 or 'epoch', got '{}'",
                                  flags.get_string("save-every")));
    }
  }
  options.resume = flags.has("resume");
  if (flags.has("max-steps")) options.max_steps = flags.get_int("max-steps", 1);
  options.device = flags.get_choice("device");
  for (const char* needs_dir : {"save-every", "resume"}) {
    if (flags.has(needs_dir) && options.save_dir.empty())
      throw FlagError(fmt::format("--{} needs --save-dir DIR", needs_dir));
  }
  options.deepspeed = deepspeed_args(flags);
  options.compression_config = flags.get_string("compression-config");
  options.teacher = flags.get_string("teacher");
  options.distill_alpha = flags.get_double("distill-alpha", 0.0);
  options.distill_temperature = flags.get_double("distill-temperature", 0.0);
  options.width = flags.get_double("width", 0.0);
  options.doctor = read_doctor_options(flags);
  options.trace = read_trace_options(flags);
  if (options.width > 1.0)
    throw FlagError(fmt::format("--width: expected F in (0, 1], got {}", options.width));
  if (options.model != "cnn" &&
      (!options.compression_config.empty() || !options.teacher.empty() || options.width != 1.0))
    throw FlagError("--compression-config, --teacher and --width need --model cnn");
  return options;
}

}  // namespace zt::apps
