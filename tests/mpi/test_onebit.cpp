// The compressed all-reduce against a plain loop that simulates every rank's sign compression
// with error feedback in double, and its traffic against the 1-bit-per-element count; the
// compressed-communication optimizers through the engine: their traffic per step after the
// warm-up against fp32 Adam's for the same model, and the stage rule.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "comm/compressed_allreduce.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "optim/onebit_adam.h"
#include "tests/error_of.h"
#include "tests/mpi/engine_test_helpers.h"
#include "tests/mpi/mpi_test_world.h"

namespace zt::testing {
namespace {

// Rank r's buffer for call c, which every rank can make.
std::vector<double> buffer_of(int rank, int call, int64_t numel) {
  Generator generator(uint64_t(77 + 1000 * call + rank));
  return randn({numel}, {}, &generator).to_vector();
}

// Every rank's compression simulated in one process: the reference.
struct ReferenceCompression {
  int ranks;
  int64_t numel, padded, chunk;
  std::vector<std::vector<double>> worker_errors, server_errors;

  ReferenceCompression(int ranks_, int64_t numel_) : ranks(ranks_), numel(numel_) {
    padded = (numel + 8 * ranks - 1) / (8 * ranks) * (8 * ranks);
    chunk = padded / ranks;
    worker_errors.assign(size_t(ranks), std::vector<double>(size_t(padded), 0.0));
    server_errors.assign(size_t(ranks), std::vector<double>(size_t(chunk), 0.0));
  }
  // scale * sign(x) with scale = ||x|| / sqrt(n); the error keeps the rest.
  static std::vector<double> compress(std::vector<double>& values, std::vector<double>& error) {
    double squares = 0.0;
    for (double v : values) squares += v * v;
    const double scale = std::sqrt(squares / double(values.size()));
    std::vector<double> compressed(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      compressed[i] = values[i] >= 0.0 ? scale : -scale;
      error[i] = values[i] - compressed[i];
    }
    return compressed;
  }
  std::vector<double> average(int call) {
    std::vector<std::vector<double>> sent;
    for (int r = 0; r < ranks; ++r) {
      std::vector<double> values = buffer_of(r, call, numel);
      values.resize(size_t(padded), 0.0);
      for (int64_t i = 0; i < padded; ++i) values[size_t(i)] += worker_errors[size_t(r)][size_t(i)];
      sent.push_back(compress(values, worker_errors[size_t(r)]));
    }
    std::vector<double> result;
    for (int server = 0; server < ranks; ++server) {
      std::vector<double> mean(size_t(chunk), 0.0);
      for (int r = 0; r < ranks; ++r)
        for (int64_t j = 0; j < chunk; ++j)
          mean[size_t(j)] += sent[size_t(r)][size_t(server * chunk + j)] / ranks;
      for (int64_t j = 0; j < chunk; ++j)
        mean[size_t(j)] += server_errors[size_t(server)][size_t(j)];
      std::vector<double> part = compress(mean, server_errors[size_t(server)]);
      result.insert(result.end(), part.begin(), part.end());
    }
    result.resize(size_t(numel));
    return result;
  }
};

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST_CASE(
    "the compressed all-reduce equals a plain loop of sign compression with error "
    "feedback, over 4 calls, within 1e-5") {
  comm::MpiCommunicator& world = test_world();
  const int64_t numel = 1001;  // not a multiple of 8N: padding
  comm::CompressedAllReduce compressed(world, numel);
  ReferenceCompression reference(world.size(), numel);
  for (int call = 0; call < 4; ++call) {
    CAPTURE(call);
    Tensor buffer = from_values(buffer_of(world.rank(), call, numel), {numel});
    compressed.average(buffer);
    std::vector<double> expected = reference.average(call);
    CHECK(max_abs_difference(buffer.to_vector(), expected) <= 1e-5);
    CHECK(max_abs_difference(compressed.worker_error().to_vector(),
                             reference.worker_errors[size_t(world.rank())]) <= 1e-5);
    CHECK(max_abs_difference(compressed.server_error().to_vector(),
                             reference.server_errors[size_t(world.rank())]) <= 1e-5);
  }
}

TEST_CASE(
    "the compressed all-reduce sends 1 bit an element and two scales: 32x less than an "
    "f32 all_reduce") {
  comm::MpiCommunicator& world = test_world();
  const int n = world.size();
  const int64_t numel = 64 * 1024;  // a multiple of 8N for every N of the suite
  comm::CompressedAllReduce compressed(world, numel);
  Tensor buffer = from_values(buffer_of(world.rank(), 0, numel), {numel});
  const comm::CommStats before = world.stats();
  compressed.average(buffer);
  const comm::CommStats sent = comm::CommStats::difference(world.stats(), before);
  const int64_t sign_bytes = numel / 8;
  const int64_t expected = 2 * sign_bytes * (n - 1) / n + 2 * 4 * (n - 1);
  CHECK(sent.total_payload_bytes() == expected);
  CHECK(sent[comm::CollectiveKind::all_to_all].payload_bytes == sign_bytes * (n - 1) / n);
  const int64_t f32_all_reduce =
      comm::ring_payload_bytes(comm::CollectiveKind::all_reduce, 4 * numel, n);
  if (n > 1) CHECK(double(f32_all_reduce) / double(sent.total_payload_bytes()) >= 31.0);
}

dist::Config onebit_config(const std::string& optimizer, int stage, int world) {
  std::string text = fmt::format(R"({{
    "train_batch_size": {}, "steps_per_print": 0,
    "optimizer": {},
    "zero_optimization": {{"stage": {}}}
  }})",
                                 kGlobalBatch, optimizer, stage);
  return dist::parse_config(text, "ds_config.json", world, nullptr);
}

// Payload bytes of each step of `steps` of the MLP on the test world, and the last loss.
std::vector<int64_t> bytes_per_step(const std::string& optimizer, int steps, double* last_loss) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  dist::Engine engine(onebit_config(optimizer, 0, world.size()), make_mlp(), grid.data_group());
  const int64_t micro = kGlobalBatch / world.size();
  std::vector<int64_t> bytes;
  for (int step = 0; step < steps; ++step) {
    GlobalBatch batch = global_batch(step % 4);
    const comm::CommStats before = engine.data_parallel_communicator().stats();
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, world.rank() * micro, micro));
    engine.backward(
        cross_entropy(logits, ops::narrow(batch.targets, 0, world.rank() * micro, micro)));
    engine.step();
    bytes.push_back(comm::CommStats::difference(engine.data_parallel_communicator().stats(), before)
                        .total_payload_bytes());
  }
  *last_loss = engine.last_global_loss();
  return bytes;
}

TEST_CASE(
    "1-bit Adam and 0/1 Adam: after the warm-up a step sends >= 16x fewer bytes than "
    "fp32 Adam's, and training still lowers the loss") {
  const int world = test_world().size();
  double adam_loss = 0.0, onebit_loss = 0.0, zero_one_loss = 0.0;
  std::vector<int64_t> adam =
      bytes_per_step(R"({"type": "Adam", "params": {"lr": 0.002}})", 8, &adam_loss);
  std::vector<int64_t> onebit = bytes_per_step(
      R"({"type": "OneBitAdam", "params": {"lr": 0.002, "freeze_step": 3}})", 8, &onebit_loss);
  std::vector<int64_t> zero_one = bytes_per_step(
      R"({"type": "ZeroOneAdam", "params": {"lr": 0.002, "var_freeze_step": 3,
          "local_step_scaler": 2, "local_step_clipper": 2}})",
      8, &zero_one_loss);
  MESSAGE(
      fmt::format("{} rank(s): bytes per step, Adam {}, 1-bit Adam {} (warm-up {}), 0/1 "
                  "Adam {}; losses after 8 steps {:.4f} {:.4f} {:.4f}",
                  world, adam.back(), onebit.back(), onebit.front(), zero_one.back(), adam_loss,
                  onebit_loss, zero_one_loss));
  CHECK(onebit_loss < 2.2);  // from ln(10) = 2.30 at the start
  CHECK(zero_one_loss < 2.2);
  if (world == 1) return;                 // nothing is sent
  CHECK(onebit.front() == adam.front());  // the warm-up all-reduces in full
  for (size_t step = 4; step < onebit.size(); ++step) {
    CAPTURE(step);
    CHECK(adam[step] >= 16 * onebit[step]);
    CHECK(adam[step] >= 16 * zero_one[step]);
  }
}

TEST_CASE("1-bit Adam leaves still the elements that never had a gradient") {
  // The compression hands every element +-scale; where the variance is 0 the update would be
  // scale / eps. Elements 8..15 never get a gradient.
  comm::MpiCommunicator& world = test_world();
  Tensor param = zeros({16});
  param.set_requires_grad(true);
  optim::OneBitAdam optimizer(optim::single_group({param}, 0.01), world, {.freeze_step = 2});
  for (int step = 0; step < 6; ++step) {
    std::vector<double> grad(16, 0.0);
    for (size_t i = 0; i < 8; ++i) grad[i] = std::sin(double(i + 1) * (step + 1 + world.rank()));
    param.set_grad(from_values(grad, {16}));
    optimizer.step();
  }
  std::vector<double> values = param.to_vector();
  for (size_t i = 8; i < 16; ++i) CHECK(values[i] == 0.0);
  CHECK(std::abs(values[0]) > 0.0);
}

TEST_CASE("exact_average makes 1-bit Adam average its momentum exactly") {
  // The measure of what the compression costs: with the variance frozen the momentum update is
  // linear, so the exact average of the ranks' momenta is the momentum of their mean gradient,
  // and 1-bit Adam becomes Adam without bias correction, its variance frozen at freeze_step.
  comm::MpiCommunicator& world = test_world();
  const int64_t numel = 16;
  const int freeze_step = 3;
  auto gradient = [](int rank, int step, int64_t i) {
    return std::sin(0.7 * double(i + 1) * double(step + 1) + double(rank));
  };
  Tensor param = full({numel}, 0.5);
  param.set_requires_grad(true);
  optim::OneBitAdam optimizer(optim::single_group({param}, 0.01), world,
                              {.freeze_step = freeze_step, .exact_average = true});
  std::vector<double> weights(size_t(numel), 0.5), exp_avg(size_t(numel), 0.0),
      exp_avg_sq(size_t(numel), 0.0);
  for (int step = 1; step <= 6; ++step) {
    std::vector<double> mean(static_cast<size_t>(numel), 0.0), local(static_cast<size_t>(numel));
    for (int64_t i = 0; i < numel; ++i) {
      for (int rank = 0; rank < world.size(); ++rank)
        mean[size_t(i)] += gradient(rank, step, i) / world.size();
      local[size_t(i)] = gradient(world.rank(), step, i);
    }
    // The warm-up takes the all-reduced gradient (the engine's), the frozen steps the rank's own.
    param.set_grad(from_values(step <= freeze_step ? mean : local, {numel}));
    optimizer.step();
    if (step == 1) continue;  // DeepSpeed's set-up step
    for (size_t i = 0; i < size_t(numel); ++i) {
      exp_avg[i] = 0.9 * exp_avg[i] + 0.1 * mean[i];
      if (step <= freeze_step) exp_avg_sq[i] = 0.999 * exp_avg_sq[i] + 0.001 * mean[i] * mean[i];
      weights[i] -= 0.01 * exp_avg[i] / (std::sqrt(exp_avg_sq[i]) + 1e-8);
    }
  }
  CHECK(max_abs_difference(param.to_vector(), weights) <= 1e-5);  // f32 betas: ~2e-6
}

TEST_CASE("the compressed-communication optimizers run at stage 0 only, as in DeepSpeed") {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  for (const char* type : {"OneBitAdam", "ZeroOneAdam", "OneBitLamb"}) {
    CAPTURE(type);
    dist::Config config =
        onebit_config(fmt::format(R"({{"type": "{}", "params": {{}}}})", type), 1, world.size());
    CHECK(error_of([&] { dist::Engine(config, make_mlp(), grid.data_group()); }) ==
          fmt::format("ds_config.json: optimizer.type: {} runs at zero_optimization.stage 0 "
                      "only, as in DeepSpeed (its momentum is averaged whole on every rank, "
                      "which partitioned optimizer states would cut), got stage 1",
                      type));
  }
}

// The losses of `steps` steps of the MLP, step s on global batch batches[s].
std::vector<double> losses_of(const std::string& optimizer, const std::vector<int>& batches) {
  comm::MpiCommunicator& world = test_world();
  comm::ProcessGrid grid = comm::ProcessGrid::data_parallel(world);
  dist::Engine engine(onebit_config(optimizer, 0, world.size()), make_mlp(), grid.data_group());
  const int64_t micro = kGlobalBatch / world.size();
  std::vector<double> losses;
  for (int index : batches) {
    GlobalBatch batch = global_batch(index);
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, world.rank() * micro, micro));
    engine.backward(
        cross_entropy(logits, ops::narrow(batch.targets, 0, world.rank() * micro, micro)));
    engine.step();
    losses.push_back(engine.last_global_loss());
  }
  return losses;
}

TEST_CASE("1-bit LAMB's warm-up is LAMB with a trust ratio per parameter, one step late") {
  // The engine hands the optimizer runs of its flat buffer (the MLP's six parameters in one);
  // each parameter must still take its own trust ratio, as in DeepSpeed. The warm-up is
  // DeepSpeed's Lamb without bias correction, after a set-up step that changes nothing.
  const std::vector<double> lamb = losses_of(
      R"({"type": "Lamb", "params": {"lr": 0.05, "bias_correction": false}})", {0, 1, 2, 3, 4});
  const std::vector<double> onebit = losses_of(
      R"({"type": "OneBitLamb", "params": {"lr": 0.05, "freeze_step": 100}})", {0, 0, 1, 2, 3, 4});
  for (size_t step = 0; step < lamb.size(); ++step) {
    CAPTURE(step);
    CHECK(std::abs(onebit[step + 1] - lamb[step]) <= 1e-5 * lamb[step]);
  }
}

TEST_CASE("1-bit Adam's warm-up is Adam without bias correction, one step late") {
  // DeepSpeed's set-up step only counts: the moments start from the second step's gradient, so
  // steps 2.. are Adam's (bias_correction false, DeepSpeed's update rule) from step 1.
  const std::vector<double> adam = losses_of(
      R"({"type": "Adam", "params": {"lr": 0.01, "bias_correction": false}})", {0, 1, 2, 3, 4});
  const std::vector<double> onebit = losses_of(
      R"({"type": "OneBitAdam", "params": {"lr": 0.01, "freeze_step": 100}})", {0, 0, 1, 2, 3, 4});
  for (size_t step = 0; step < adam.size(); ++step) {
    CAPTURE(step);
    CHECK(std::abs(onebit[step + 1] - adam[step]) <= 1e-5 * adam[step]);
  }
}

TEST_CASE("1-bit LAMB: warm-up, then compressed momenta, and the loss goes down") {
  double loss = 0.0;
  std::vector<int64_t> bytes = bytes_per_step(
      R"({"type": "OneBitLamb", "params": {"lr": 0.05, "freeze_step": 3}})", 8, &loss);
  MESSAGE(fmt::format("1-bit LAMB on {} rank(s): {} bytes in a warm-up step, {} after; loss {:.4f}",
                      test_world().size(), bytes.front(), bytes.back(), loss));
  CHECK(loss < 2.2);
  if (test_world().size() > 1) CHECK(bytes.front() >= 16 * bytes.back());
}

}  // namespace
}  // namespace zt::testing
