// The first example of docs/zero.md: a model trained by the engine zt::initialize returns, at the
// ZeRO stage its --deepspeed_config names, on one process or under mpirun. The data are
// separable blobs (blobs.h); exits 1 unless the trained model classifies 95% of them.
// Run: mpirun -np 2 build/examples/zero_training --deepspeed_config examples/zero_training.json
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "comm/mpi_runtime.h"
#include "dist/initialize.h"
#include "examples/blobs.h"
#include "nn/nn.h"

namespace {

constexpr int64_t kFeatures = 8, kClasses = 4, kGlobalBatch = 64, kSteps = 40;

std::shared_ptr<zt::nn::Module> make_model() {
  return std::make_shared<zt::nn::Sequential>(
      std::initializer_list<std::shared_ptr<zt::nn::Module>>{
          std::make_shared<zt::nn::Linear>(kFeatures, 32), std::make_shared<zt::nn::ReLU>(),
          std::make_shared<zt::nn::Linear>(32, kClasses)});
}

struct Batch {
  zt::Tensor inputs, targets;
};

// This rank's rows of each global batch (the config's train_batch_size, kGlobalBatch): every
// rank draws the same blobs and keeps its own slice, as a distributed sampler would.
std::vector<Batch> my_share_of_the_data(zt::comm::MpiRuntime& runtime) {
  int64_t micro_batch = kGlobalBatch / runtime.size(), first = runtime.rank() * micro_batch;
  std::vector<Batch> batches;
  for (int64_t step = 0; step < kSteps; ++step) {
    examples::Blobs blobs = examples::make_blobs(kGlobalBatch, kFeatures, kClasses, 100 + step);
    batches.push_back(
        {blobs.points.narrow(0, first, micro_batch), blobs.labels.narrow(0, first, micro_batch)});
  }
  return batches;
}

}  // namespace

int main(int argc, char** argv) {
  return zt::comm::run_distributed_main(argc, argv, [&](zt::comm::MpiRuntime& runtime) {
    zt::DeepSpeedArgs args = zt::take_deepspeed_args(argc, argv);  // --deepspeed_config FILE
    zt::Initialized initialized = zt::initialize(runtime, args, make_model());
    zt::dist::Engine& engine = *initialized.engine;
    for (const Batch& batch : my_share_of_the_data(runtime)) {
      zt::Tensor loss = zt::cross_entropy(engine.forward(batch.inputs), batch.targets);
      engine.backward(loss);
      engine.step();
    }
    // Every rank evaluates: at stage 3 each forward gathers parameters from all of them.
    engine.eval();
    examples::Blobs test = examples::make_blobs(512, kFeatures, kClasses, 7);
    double accuracy = examples::accuracy(engine.forward(test.points), test);
    if (runtime.rank() == 0) {
      fmt::print("ZeRO stage {} on {} rank(s): test accuracy {:.1f}%\n", engine.zero_stage(),
                 runtime.size(), 100 * accuracy);
    }
    return accuracy >= 0.95 ? 0 : 1;
  });
}
