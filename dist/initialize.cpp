// zt::initialize and the DeepSpeed command-line flags.
#include "dist/initialize.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dist/activation_checkpointing.h"

namespace zt {

DeepSpeedArgs take_deepspeed_args(int& argc, char** argv) {
  DeepSpeedArgs args;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](const std::string& flag) -> std::string {
      if (arg.size() > flag.size() && arg.compare(0, flag.size() + 1, flag + "=") == 0) {
        return arg.substr(flag.size() + 1);
      }
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    if (arg == "--deepspeed") {
      args.deepspeed = true;
    } else if (arg == "--deepspeed_config" || arg.rfind("--deepspeed_config=", 0) == 0) {
      args.deepspeed_config = value_of("--deepspeed_config");
    } else if (arg == "--local_rank" || arg.rfind("--local_rank=", 0) == 0) {
      std::string text = value_of("--local_rank");
      char* end = nullptr;
      long value = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || value < 0) {
        throw std::invalid_argument("--local_rank: expected an integer >= 0, got '" + text + "'");
      }
      args.local_rank = int(value);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
  return args;
}

Initialized initialize(dist::MpiRuntime& runtime, const DeepSpeedArgs& args,
                       std::shared_ptr<nn::Module> model) {
  if (args.deepspeed_config.empty()) {
    throw std::invalid_argument(
        "ZeroTrain requires --deepspeed_config to specify a configuration file");
  }
  return initialize(runtime, dist::load_config(args.deepspeed_config, runtime.size(), nullptr),
                    std::move(model));
}

Initialized initialize(dist::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model) {
  dist::apply_activation_checkpointing(config.activation_checkpointing);
  Initialized result;
  result.grid =
      std::make_unique<dist::ProcessGrid>(dist::ProcessGrid::data_parallel(runtime.world()));
  result.engine = std::make_unique<dist::Engine>(std::move(config), std::move(model),
                                                 result.grid->data_group());
  result.optimizer = &result.engine->optimizer();
  result.lr_scheduler = result.engine->lr_scheduler();
  return result;
}

}  // namespace zt
