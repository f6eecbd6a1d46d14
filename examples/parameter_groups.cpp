// The parameter-groups example of docs/zero.md: AdamW with weight decay on the weights only (the
// two groups of GPT recipes), the no_decay group at its own rate, under the config's warm-up.
// Exits 1 unless every group follows the schedule in proportion to its rate and the trained
// model classifies 95% of the blobs.
// Run: mpirun -np 2 build/examples/parameter_groups --deepspeed_config
// examples/parameter_groups.json
#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "autograd/functions.h"
#include "comm/mpi_runtime.h"
#include "dist/initialize.h"
#include "examples/blobs.h"
#include "nn/nn.h"

namespace {

constexpr int64_t kFeatures = 8, kClasses = 4, kGlobalBatch = 64, kSteps = 40;
constexpr double kBlockLr = 0.01, kNoDecayLr = 3e-4;  // parameter_groups.json's lr; ours

std::shared_ptr<zt::nn::Module> make_model() {
  return std::make_shared<zt::nn::Sequential>(
      std::initializer_list<std::shared_ptr<zt::nn::Module>>{
          std::make_shared<zt::nn::Linear>(kFeatures, 32), std::make_shared<zt::nn::ReLU>(),
          std::make_shared<zt::nn::Linear>(32, kClasses)});
}

zt::Initialized initialize_with_groups(zt::comm::MpiRuntime& runtime,
                                       const zt::DeepSpeedArgs& args) {
  std::shared_ptr<zt::nn::Module> model = make_model();
  zt::ParamGroupSpecs groups = zt::weight_decay_groups(*model);
  groups[1].options["lr"] = 3e-4;  // the no_decay group at its own rate, if wanted
  zt::Initialized trainer = zt::initialize(runtime, args, model, groups);
  return trainer;
}

// Whether the no_decay group's rate is the decay group's scaled by kNoDecayLr / kBlockLr.
bool rates_in_proportion(const zt::dist::Engine& engine) {
  std::vector<double> lrs = engine.get_group_lrs();
  return lrs.size() == 2 &&
         std::abs(lrs[1] - lrs[0] * (kNoDecayLr / kBlockLr)) <= 1e-12 * std::abs(lrs[0]);
}

}  // namespace

int main(int argc, char** argv) {
  return zt::comm::run_distributed_main(argc, argv, [&](zt::comm::MpiRuntime& runtime) {
    zt::DeepSpeedArgs args = zt::take_deepspeed_args(argc, argv);  // --deepspeed_config FILE
    zt::Initialized trainer = initialize_with_groups(runtime, args);
    zt::dist::Engine& engine = *trainer.engine;
    int64_t micro_batch = kGlobalBatch / runtime.size(), first = runtime.rank() * micro_batch;
    bool in_proportion = true;
    for (int64_t step = 0; step < kSteps; ++step) {
      examples::Blobs blobs = examples::make_blobs(kGlobalBatch, kFeatures, kClasses, 100 + step);
      zt::Tensor loss =
          zt::cross_entropy(engine.forward(blobs.points.narrow(0, first, micro_batch)),
                            blobs.labels.narrow(0, first, micro_batch));
      engine.backward(loss);
      engine.step();
      in_proportion = in_proportion && rates_in_proportion(engine);
    }
    engine.eval();
    examples::Blobs test = examples::make_blobs(512, kFeatures, kClasses, 7);
    double accuracy = examples::accuracy(engine.forward(test.points), test);
    if (runtime.rank() == 0) {
      fmt::print("parameter groups on {} rank(s): rates in proportion {}, test accuracy {:.1f}%\n",
                 runtime.size(), in_proportion ? "yes" : "no", 100 * accuracy);
    }
    return in_proportion && accuracy >= 0.95 ? 0 : 1;
  });
}
