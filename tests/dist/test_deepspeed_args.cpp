// take_deepspeed_args: the DeepSpeed flags are taken out of argv (both "--flag value" and
// "--flag=value"), the program's own flags stay in order, and bad values name the flag.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dist/initialize.h"

namespace zt {
namespace {

// argv built from `words` (program name first), as main() receives it.
struct Argv {
  explicit Argv(std::vector<std::string> words) : storage(std::move(words)) {
    for (std::string& word : storage) pointers.push_back(word.data());
    pointers.push_back(nullptr);
    argc = int(storage.size());
  }
  std::vector<std::string> remaining() const {
    return std::vector<std::string>(pointers.begin(), pointers.begin() + argc);
  }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  int argc = 0;
};

DeepSpeedArgs take(Argv& argv) {
  return take_deepspeed_args(argv.argc, argv.pointers.data());
}

TEST_CASE("take_deepspeed_args takes the DeepSpeed flags and keeps the others in order") {
  Argv argv({"prog", "--epochs", "2", "--deepspeed", "--deepspeed_config", "ds.json",
             "--local_rank=3", "--dist_backend", "mpi", "--report"});
  DeepSpeedArgs args = take(argv);
  CHECK(args.deepspeed);
  CHECK(args.deepspeed_config == "ds.json");
  CHECK(args.local_rank == 3);
  CHECK(args.dist_backend == DistBackend::mpi);
  CHECK(argv.remaining() == std::vector<std::string>{"prog", "--epochs", "2", "--report"});
  CHECK(argv.pointers[size_t(argv.argc)] == nullptr);
}

TEST_CASE("take_deepspeed_args defaults and --dist_backend choices") {
  Argv none({"prog"});
  DeepSpeedArgs defaults = take(none);
  CHECK_FALSE(defaults.deepspeed);
  CHECK(defaults.deepspeed_config.empty());
  CHECK(defaults.local_rank == -1);
  CHECK(defaults.dist_backend == DistBackend::automatic);
  for (auto [text, expected] :
       {std::pair{"auto", DistBackend::automatic}, std::pair{"nccl", DistBackend::nccl},
        std::pair{"mpi", DistBackend::mpi}}) {
    Argv argv({"prog", std::string("--dist_backend=") + text});
    CHECK(take(argv).dist_backend == expected);
  }
}

TEST_CASE("take_deepspeed_args names the flag of a bad or missing value") {
  Argv backend({"prog", "--dist_backend", "gloo"});
  CHECK_THROWS_WITH_AS(take(backend), "--dist_backend: expected one of auto, nccl, mpi, got 'gloo'",
                       std::invalid_argument);
  Argv rank({"prog", "--local_rank", "-1"});
  CHECK_THROWS_WITH_AS(take(rank), "--local_rank: expected an integer >= 0, got '-1'",
                       std::invalid_argument);
  Argv missing({"prog", "--deepspeed_config"});
  CHECK_THROWS_WITH_AS(take(missing), "--deepspeed_config needs a value", std::invalid_argument);
}

}  // namespace
}  // namespace zt
