// A program outside the ZeroTrain tree, built against an installed ZeroTrain with pkg-config
// (Makefile beside it): a small MLP learns XOR through zt::initialize on one process or under
// mpirun. Prints its four answers and which backends it was linked with; exits 1 unless all four
// answers are right.
#include <zerotrain/autograd/functions.h>
#include <zerotrain/comm/mpi_runtime.h>
#include <zerotrain/core/backend.h>
#include <zerotrain/core/factory.h>
#include <zerotrain/dist/initialize.h>
#include <zerotrain/nn/nn.h>

#include <fmt/format.h>

#include <memory>
#include <stdexcept>

// Whether this program was linked with the CUDA backend (pkg-config zerotrain-cuda): it
// registers itself for Device::cuda, whether or not the machine has a GPU.
bool has_cuda_backend() {
  try {
    zt::backend_for(zt::Device::cuda(0));
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

int main(int argc, char** argv) {
  return zt::comm::run_distributed_main(argc, argv, [](zt::comm::MpiRuntime& runtime) {
    zt::manual_seed(1);
    auto model =
        std::make_shared<zt::nn::Sequential>(std::initializer_list<std::shared_ptr<zt::nn::Module>>{
            std::make_shared<zt::nn::Linear>(2, 16), std::make_shared<zt::nn::Tanh>(),
            std::make_shared<zt::nn::Linear>(16, 2)});
    zt::dist::Config config = zt::dist::parse_config(
        R"({"train_micro_batch_size_per_gpu": 4, "steps_per_print": 0,
            "optimizer": {"type": "Adam", "params": {"lr": 0.05}},
            "zero_optimization": {"stage": 2}})",
        "train_xor", runtime.size(), nullptr);
    zt::Initialized initialized = zt::initialize(runtime, config, model);
    zt::dist::Engine& engine = *initialized.engine;
    zt::Tensor inputs = zt::from_values({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
    std::vector<int64_t> xor_values{0, 1, 1, 0};
    zt::Tensor targets = zt::from_int64(xor_values, {4});
    for (int step = 0; step < 200; ++step) {
      engine.backward(zt::cross_entropy(engine.forward(inputs), targets));
      engine.step();
    }
    std::vector<double> answers = zt::argmax(engine.forward(inputs), 1).to_vector();
    int right = 0;
    for (size_t i = 0; i < answers.size(); ++i) right += answers[i] == double(xor_values[i]);
    if (runtime.rank() == 0) {
      fmt::print("xor: 0 0 -> {}, 0 1 -> {}, 1 0 -> {}, 1 1 -> {}; {} of 4 right\n", answers[0],
                 answers[1], answers[2], answers[3], right);
      fmt::print("backends: cpu{}\n", has_cuda_backend() ? ", cuda" : "");
    }
    return right == 4 ? 0 : 1;
  });
}
