// A job that fails on purpose, for scripts/run-tests: the job must end (non-zero, promptly)
// with the failing rank's error printed, never hang. Modes:
//   throw                  rank 1 throws mid-step while the other ranks wait in an all_reduce
//   signal                 rank 1 dies from SIGKILL mid-step while the others wait in an
//                          all_reduce
//   every-rank             every rank throws the same error (a config error): one line, rank 0's
//   stage3-eval-on-rank-0  after a stage-3 training step, rank 0 alone runs a forward (an
//                          evaluation on rank 0 only) while the others wait in a barrier: its
//                          first gather waits stage3_gather_timeout (2 s) and ends the job
#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "comm/mpi_runtime.h"
#include "core/factory.h"
#include "core/generator.h"
#include "dist/engine.h"
#include "nn/nn.h"

namespace {

class Classifier final : public zt::nn::Module {
 public:
  Classifier() {
    fc1 = register_module("fc1", std::make_shared<zt::nn::Linear>(6, 5));
    fc2 = register_module("fc2", std::make_shared<zt::nn::Linear>(5, 3));
  }
  std::string type_name() const override { return "Classifier"; }

 protected:
  zt::Tensor forward(const zt::Tensor& x) override { return (*fc2)(zt::tanh((*fc1)(x))); }

 private:
  std::shared_ptr<zt::nn::Linear> fc1, fc2;
};

int evaluate_on_rank_0_only(zt::comm::MpiCommunicator& world) {
  std::string text = "{\"train_batch_size\": " + std::to_string(2 * world.size()) +
                     R"(, "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
      "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
                            "stage3_gather_timeout": 2}})";
  zt::dist::Config config = zt::dist::parse_config(text, "abort_probe", world.size(), nullptr);
  zt::manual_seed(1);
  zt::dist::Engine engine(config, std::make_shared<Classifier>(), world);
  zt::Tensor inputs = zt::randn({2, 6});
  zt::Tensor targets = zt::from_int64(std::vector<int64_t>{0, 2}, {2});
  engine.backward(zt::cross_entropy(engine.forward(inputs), targets));
  engine.step();
  if (world.rank() == 0) {
    zt::autograd::NoGradGuard evaluating;
    engine.eval();
    engine.forward(inputs);
  }
  world.barrier();
  std::fprintf(stderr, "abort_probe: rank %d finished the evaluation, which it should not\n",
               world.rank());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view mode = argc > 1 ? argv[1] : "throw";
  return zt::comm::run_distributed_main(argc, argv, [mode](zt::comm::MpiRuntime& runtime) {
    zt::comm::MpiCommunicator& world = runtime.world();
    if (mode == "every-rank")
      throw std::invalid_argument("abort_probe: ds_config.json: train_batch_size: expected > 0");
    if (mode == "stage3-eval-on-rank-0") return evaluate_on_rank_0_only(world);
    zt::Tensor gradients = zt::ones({17});
    for (int step = 0; step < 3; ++step) {
      if (step == 2 && world.rank() == 1) {
        if (mode == "signal") std::raise(SIGKILL);
        throw std::runtime_error("abort_probe: rank 1 failed in step 2");
      }
      world.all_reduce(gradients);
    }
    std::fprintf(stderr, "abort_probe: rank %d finished, which it should not\n", world.rank());
    return 0;
  });
}
