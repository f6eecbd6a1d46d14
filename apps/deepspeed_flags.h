// DeepSpeed's command-line flags (deepspeed.add_config_arguments, plus our --dist_backend) as
// entries of a program's flag table, and DeepSpeedArgs read from the parsed flags, so that
// --help lists them beside the program's own and one parser reads them all.
#pragma once

#include <fmt/format.h>

#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "dist/config.h"
#include "dist/config_builders.h"
#include "dist/initialize.h"

namespace zt::apps {

inline FlagSpec deepspeed_config_flag() {
  return {"deepspeed_config", "FILE", "", "the ds_config.json to train with",
          "the program's built-in config"};
}

inline std::vector<FlagSpec> deepspeed_flags() {
  return {
      {"deepspeed", "", "", "accepted as DeepSpeed's launch lines pass it (always on)"},
      deepspeed_config_flag(),
      {"local_rank", "N", "", "set by launchers; ignored, MPI gives the local rank", "from MPI"},
      {"dist_backend", "auto|nccl|mpi", "auto",
       "ZeRO traffic of a GPU model: NCCL (auto: where each rank has its own GPU) or MPI"}};
}

// Loads the ds_config.json at `path` for `world_size` ranks. Every rank reads it; the leader
// prints its warnings, also when the config is rejected: before the ConfigError (every problem,
// one line each) goes on to the program's error report.
inline dist::Config load_config_file(const std::string& path, int world_size, bool leader,
                                     const dist::ProgramValues& program = {}) {
  std::vector<std::string> warnings;
  auto print_warnings = [&] {
    if (!leader) return;
    for (const std::string& warning : warnings) fmt::print(stderr, "warning: {}\n", warning);
  };
  try {
    dist::Config config = dist::load_config(path, world_size, &warnings, program);
    print_warnings();
    return config;
  } catch (const dist::ConfigError&) {
    print_warnings();
    throw;
  }
}

// The flags of the program's own optimizer: used where the config has no optimizer block (as a
// script passes its optimizer to deepspeed.initialize), and the source of "auto" values.
inline std::vector<FlagSpec> optimizer_flags(const std::string& default_optimizer,
                                             const std::string& default_weight_decay) {
  return {{"optimizer", "adam|adamw|sgd", default_optimizer,
           "the program's optimizer, where the config has no optimizer block"},
          {"weight-decay", "WD", default_weight_decay,
           "the program's optimizer's weight decay (adam: added to the gradient; adamw: "
           "decoupled)"}};
}

// The program's optimizer goes in where the config has no optimizer block; a block in the
// config is kept. `say_so` (the leader, with a config file): print that the program's is used.
inline dist::Config with_program_optimizer(dist::Config config,
                                           const dist::OptimizerConfig& program, bool say_so) {
  if (config.optimizer.present) return config;
  config = dist::with_client_optimizer(std::move(config), {.optimizer = program}, nullptr);
  if (say_so) {
    fmt::print("config: {}: no optimizer block; the program's {} (lr {}, weight decay {})\n",
               config.source_name, program.type, program.lr, program.weight_decay);
  }
  return config;
}

inline DeepSpeedArgs deepspeed_args(const Flags& flags) {
  DeepSpeedArgs args;
  args.deepspeed = flags.has("deepspeed");
  args.deepspeed_config = flags.get_string("deepspeed_config");
  if (flags.has("deepspeed_config") && args.deepspeed_config.empty())
    throw FlagError("--deepspeed_config: expected a file path, got ''");
  if (flags.has("local_rank")) args.local_rank = int(flags.get_int("local_rank", 0));
  args.dist_backend = parse_dist_backend(flags.get_string("dist_backend"), "--dist_backend");
  return args;
}

}  // namespace zt::apps
