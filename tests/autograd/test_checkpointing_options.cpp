// The checkpointing options acting on zt::checkpoint: cpu_checkpointing moves saved inputs to
// the activation_offload tag (and back for recomputation), contiguous_memory_optimization lays
// them end to end in one reused buffer, profile counts recomputations. Every variant's gradients
// are held bitwise to the model run without checkpointing.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "autograd/checkpoint.h"
#include "autograd/checkpoint_storage.h"
#include "autograd/checkpointing_options.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/checkpoint_sequential.h"
#include "nn/nn.h"

using namespace zt;

namespace {

// Sets the options for one test and puts the defaults back, so no other test sees them.
class ScopedCheckpointing {
 public:
  explicit ScopedCheckpointing(const CheckpointingOptions& options) {
    configure_checkpointing(options);
    reset_checkpointing_profile();
  }
  ~ScopedCheckpointing() {
    configure_checkpointing(CheckpointingOptions{});
    reset_checkpointing_profile();
  }
  ScopedCheckpointing(const ScopedCheckpointing&) = delete;
  ScopedCheckpointing& operator=(const ScopedCheckpointing&) = delete;
};

std::shared_ptr<nn::Sequential> layers(const std::vector<int64_t>& widths, double dropout_p) {
  MemoryTagGuard params(MemoryTag::param);
  auto model = std::make_shared<nn::Sequential>();
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    model->push_back(std::make_shared<nn::Linear>(widths[i], widths[i + 1]));
    model->push_back(std::make_shared<nn::ReLU>());
    if (dropout_p > 0.0) model->push_back(std::make_shared<nn::Dropout>(dropout_p));
  }
  return model;
}

Tensor input_leaf(int64_t batch, int64_t width) {
  Generator generator(99);
  Tensor x = uniform({batch, width}, -1.0, 1.0, {}, &generator);
  x.set_requires_grad(true);
  return x;
}

MemoryStats memory() {
  return cpu_allocator().accounting().stats();
}

// The input's gradient, then every parameter's, after backward of sum(y * y) from a fixed seed;
// gradients are cleared afterwards.
std::vector<std::vector<double>> gradients(nn::Sequential& model, const Tensor& x,
                                           const std::function<Tensor(const Tensor&)>& forward) {
  manual_seed(4321);
  Tensor out;
  {
    MemoryTagGuard activations(MemoryTag::activation);
    out = forward(x);
    sum(out * out).backward();
  }
  std::vector<std::vector<double>> grads{x.grad().to_vector()};
  for (const Tensor& param : model.parameters()) grads.push_back(param.grad().to_vector());
  model.zero_grad();
  x.set_grad(Tensor());
  return grads;
}

constexpr int64_t kFloatBytes = 4;

}  // namespace

TEST_CASE("cpu_checkpointing: saved inputs live under activation_offload, not activation") {
  manual_seed(21);
  const int64_t batch = 4, width = 16;                            // 256 bytes an activation
  auto model = layers({width, width, width, width, width}, 0.2);  // 12 layers
  Tensor x = input_leaf(batch, width);
  const int64_t activation_bytes = batch * width * kFloatBytes;
  // 4 segments: 3 checkpoints, whose inputs are x and the outputs of segments 0 and 1.
  auto forward = [&](const Tensor& in) { return checkpoint_sequential(*model, 4, in); };
  const auto plain = gradients(*model, x, [&](const Tensor& in) { return (*model)(in); });

  // Live bytes while the forward graph is alive, with checkpoints that keep aliases.
  auto live_after_forward = [&](const CheckpointingOptions& options, int64_t* offload_peak) {
    ScopedCheckpointing scoped(options);
    MemoryTagGuard activations(MemoryTag::activation);
    cpu_allocator().accounting().reset_peak();
    const MemoryStats before = memory();
    Tensor out = forward(x);
    const MemoryStats during = memory();
    *offload_peak =
        during.peak(MemoryTag::activation_offload) - before.live(MemoryTag::activation_offload);
    sum(out).backward();
    out = Tensor();
    CHECK(memory().live(MemoryTag::activation_offload) ==
          before.live(MemoryTag::activation_offload));
    model->zero_grad();
    x.set_grad(Tensor());
    return std::pair{
        during.live(MemoryTag::activation) - before.live(MemoryTag::activation),
        during.live(MemoryTag::activation_offload) - before.live(MemoryTag::activation_offload)};
  };
  int64_t alias_offload_peak = 0, offload_peak = 0;
  const auto [alias_activation, alias_offload] =
      live_after_forward(CheckpointingOptions{}, &alias_offload_peak);
  const auto [offload_activation, offload_offload] =
      live_after_forward({.partition_activations = true, .cpu_checkpointing = true}, &offload_peak);
  CHECK(alias_offload == 0);
  CHECK(alias_offload_peak == 0);
  CHECK(offload_offload == 3 * activation_bytes);
  CHECK(offload_peak == 3 * activation_bytes);
  // x is the test's own tensor (tag `other`), so only the two segment outputs leave `activation`.
  CHECK(alias_activation - offload_activation == 2 * activation_bytes);

  ScopedCheckpointing scoped({.partition_activations = true, .cpu_checkpointing = true});
  CHECK(gradients(*model, x, forward) == plain);
}

TEST_CASE("cpu_checkpointing: recomputation runs on a copy back in the input's own tag") {
  ScopedCheckpointing scoped({.partition_activations = true, .cpu_checkpointing = true});
  Tensor x;
  {
    MemoryTagGuard activations(MemoryTag::activation);
    x = input_leaf(2, 8);
  }
  std::vector<MemoryTag> tags_seen;
  std::vector<const StorageImpl*> storages_seen;
  auto fn = [&](const Tensor& in) {
    tags_seen.push_back(in.storage()->tag());
    storages_seen.push_back(in.storage().get());
    return tanh(in) * 3.0;
  };
  Tensor y = checkpoint(fn, x);
  sum(y).backward();
  REQUIRE(tags_seen.size() == 2);  // the forward, then the recomputation
  CHECK(tags_seen[1] == MemoryTag::activation);
  CHECK(storages_seen[0] == x.storage().get());
  CHECK(storages_seen[1] != x.storage().get());
  std::vector<double> expected;
  for (double value : x.to_vector()) {
    const double t = std::tanh(value);
    expected.push_back(3.0 * (1.0 - t * t));
  }
  std::vector<double> got = x.grad().to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-6));
}

TEST_CASE("profile counts one recomputation per checkpointed segment per backward") {
  manual_seed(22);
  auto model = layers({8, 8, 8, 8, 8, 8}, 0.0);  // 10 layers
  Tensor x = input_leaf(3, 8);
  for (int64_t segments : {2, 5, 10}) {
    CAPTURE(segments);
    ScopedCheckpointing scoped({.profile = true});
    gradients(*model, x,
              [&](const Tensor& in) { return checkpoint_sequential(*model, segments, in); });
    CHECK(checkpointing_profile().recompute_count == segments - 1);  // the last runs plainly
    gradients(*model, x,
              [&](const Tensor& in) { return checkpoint_sequential(*model, segments, in); });
    CHECK(checkpointing_profile().recompute_count == 2 * (segments - 1));
    CHECK(checkpointing_profile().recompute_seconds >= 0.0);
    reset_checkpointing_profile();
    CHECK(checkpointing_profile().recompute_count == 0);
    CHECK(checkpointing_profile().recompute_seconds == 0.0);
  }
  ScopedCheckpointing off(CheckpointingOptions{});
  gradients(*model, x, [&](const Tensor& in) { return checkpoint_sequential(*model, 5, in); });
  CHECK(checkpointing_profile().recompute_count == 0);
}

TEST_CASE("contiguous_memory_optimization: saved inputs end to end in one buffer, reused") {
  manual_seed(23);
  const int64_t batch = 4;
  // Unequal widths: the checkpoint inputs weigh 256, 512, 512 and 1024 bytes.
  auto model = layers({16, 32, 32, 64, 8}, 0.0);  // 8 layers
  auto run = [&](size_t begin, size_t end, const Tensor& in) {
    Tensor value = in;
    for (size_t i = begin; i < end; ++i) value = (*(*model)[i])(value);
    return value;
  };
  std::vector<const char*> recomputed_from;  // where each recomputation read its input
  auto piece = [&](size_t begin, size_t end) {
    return [&, begin, end](const Tensor& in) {
      if (autograd::is_grad_enabled()) {
        recomputed_from.push_back(static_cast<const char*>(in.raw_data()));
      }
      return run(begin, end, in);
    };
  };
  auto forward = [&](const Tensor& in) {
    Tensor value = in;
    for (size_t layer = 0; layer < 8; layer += 2)
      value = checkpoint(piece(layer, layer + 2), value);
    return value;
  };
  Tensor x = input_leaf(batch, 16);
  const auto plain = gradients(*model, x, [&](const Tensor& in) { return run(0, 8, in); });
  const std::vector<int64_t> input_bytes{256, 512, 512, 1024};

  SUBCASE("on the device, as activations") {
    ScopedCheckpointing scoped({.partition_activations = true,
                                .contiguous_memory_optimization = true,
                                .number_checkpoints = 4});
    CHECK(gradients(*model, x, forward) == plain);  // buffer of 4 x 256 bytes, two spills
    recomputed_from.clear();
    CHECK(gradients(*model, x, forward) == plain);  // one buffer of 2304 bytes
    // Backward recomputes the last checkpoint first.
    REQUIRE(recomputed_from.size() == 4);
    for (size_t k = 0; k + 1 < 4; ++k) {
      CAPTURE(k);
      CHECK(recomputed_from[3 - (k + 1)] - recomputed_from[3 - k] == input_bytes[k]);
    }
  }
  SUBCASE("on the host, under activation_offload") {
    ScopedCheckpointing scoped({.partition_activations = true,
                                .cpu_checkpointing = true,
                                .contiguous_memory_optimization = true,
                                .number_checkpoints = 4});
    const int64_t offload_before = memory().live(MemoryTag::activation_offload);
    auto forward_live = [&]() {
      MemoryTagGuard activations(MemoryTag::activation);
      Tensor out = forward(x);
      int64_t live = memory().live(MemoryTag::activation_offload) - offload_before;
      sum(out * out).backward();
      model->zero_grad();
      x.set_grad(Tensor());
      return live;
    };
    // First forward: the buffer is sized 4 x 256 bytes by the first checkpoint; 256 + 512 fit,
    // the next 512 and the 1024 go to their own allocations.
    CHECK(forward_live() == 4 * 256 + 512 + 1024);
    // Afterwards it is one buffer of the 2304 bytes the forward needed, kept between forwards.
    CHECK(memory().live(MemoryTag::activation_offload) - offload_before == 4 * 256);
    CHECK(forward_live() == 2304);
    CHECK(forward_live() == 2304);
    CHECK(memory().live(MemoryTag::activation_offload) - offload_before == 2304);
    CHECK(gradients(*model, x, forward) == plain);
    release_contiguous_checkpoint_buffers();
    CHECK(memory().live(MemoryTag::activation_offload) == offload_before);
  }
}

TEST_CASE("configure_checkpointing: contiguous_memory_optimization needs number_checkpoints") {
  CHECK_THROWS_WITH_AS(
      configure_checkpointing(
          {.partition_activations = true, .contiguous_memory_optimization = true}),
      "configure_checkpointing: contiguous_memory_optimization needs number_checkpoints > 0 (the "
      "number of checkpoints the buffer holds), got 0",
      std::invalid_argument);
  CHECK_FALSE(checkpointing_options().contiguous_memory_optimization);
}
