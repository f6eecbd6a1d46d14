// The flops profiler against counts written out by hand from the architectures: the MNIST CNN
// (two 3x3 convolutions, two linears) and a small GPT-2 (per layer c_attn, c_proj, c_fc,
// c_proj and the attention products, then the head). MACs and FLOPs must equal exactly.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "apps/mnist_common.h"
#include "core/factory.h"
#include "models/gpt.h"
#include "observe/flops_profiler.h"

using namespace zt;

namespace {

observe::FlopsProfilerConfig profiler_config() {
  observe::FlopsProfilerConfig config;
  config.enabled = true;
  return config;
}

}  // namespace

TEST_CASE("flops profiler: the MNIST CNN's MACs and FLOPs equal the analytic counts") {
  auto cnn = apps::make_mnist_model("cnn");
  observe::FlopsProfiler profiler(profiler_config(), *cnn);
  const int64_t batch = 3;
  profiler.start();
  (*cnn)(randn({batch, 1, 28, 28}));
  profiler.stop();
  // conv1: 26x26x32 outputs of 1x3x3; conv2: 24x24x64 outputs of 32x3x3; fc1 9216x128; fc2 128x10.
  const int64_t conv1_outputs = 26 * 26 * 32, conv2_outputs = 24 * 24 * 64;
  const int64_t macs = batch * (conv1_outputs * 9 + conv2_outputs * 32 * 9 + 9216 * 128 + 128 * 10);
  const int64_t flops = 2 * macs + batch * (conv1_outputs + conv2_outputs);  // + conv biases
  observe::FlopsProfiler::ModuleProfile totals = profiler.totals();
  CHECK(totals.macs == macs);
  CHECK(totals.flops == flops);
  CHECK(totals.params == 32 * 9 + 32 + 64 * 288 + 64 + 9216 * 128 + 128 + 128 * 10 + 10);
  // Each module's own share: conv2 holds 32x9 MACs per output.
  for (const auto& profile : profiler.profiles()) {
    if (profile.name == "conv2") CHECK(profile.macs == batch * conv2_outputs * 288);
    if (profile.name == "fc1") CHECK(profile.calls == 1);
  }
  // Not profiling: nothing more is counted.
  (*cnn)(randn({batch, 1, 28, 28}));
  CHECK(profiler.totals().macs == macs);
}

TEST_CASE(
    "flops profiler: a GPT-2's MACs equal B*T*(L*12*C^2 + C*V) + L*2*B*T^2*C, its FLOPs 2 per MAC "
    "plus LayerNorm, GELU, softmax and residual adds") {
  models::GPTConfig config;
  config.vocab_size = 50;
  config.block_size = 16;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 32;
  auto gpt = std::make_shared<models::GPT>(config);
  const int64_t batch = 2, time = 12, layers = 2, width = 32, vocab = 50;
  std::vector<int64_t> ids(size_t(batch * time));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i * 7 % 50);
  observe::FlopsProfiler profiler(profiler_config(), *gpt);
  profiler.start();
  (*gpt)(from_int64(ids, {batch, time}));
  profiler.stop();
  // Per token and layer: c_attn C x 3C, attn.c_proj C x C, mlp.c_fc C x 4C, mlp.c_proj 4C x C;
  // the head C x V; the attention scores and weighted sums 2 x T x C per token and layer.
  const int64_t tokens = batch * time;
  const int64_t macs = tokens * (layers * 12 * width * width + width * vocab) +
                       layers * 2 * batch * time * time * width;
  // FLOPs: 2 per MAC; per layer two LayerNorms (5 per element), the GELU of the 4C-wide MLP, the
  // softmax of the H x T x T scores, two residual adds; the final LayerNorm.
  const int64_t heads = 4;
  const int64_t elementwise = layers * (2 * 5 * tokens * width + tokens * 4 * width +
                                        batch * heads * time * time + 2 * tokens * width) +
                              5 * tokens * width;
  observe::FlopsProfiler::ModuleProfile totals = profiler.totals();
  CHECK(totals.macs == macs);
  CHECK(totals.flops == 2 * macs + elementwise);
  std::string report = profiler.report({.step = 1, .world_size = 1, .batch_size_per_gpu = batch});
  CHECK(report.find("fwd MACs per GPU:") != std::string::npos);
  CHECK(report.find("(attn): GPT2Attention") != std::string::npos);
}

// The latency column accounts for the forward: the model's latency is the measured time of its
// forward calls, and the modules the model calls directly (the embeddings, each block, the final
// norm, the head) add up to it, the rest (the embedding sum, dropout) within 10%.
TEST_CASE("flops profiler: a GPT-2's latency column sums to within 10% of the measured forward") {
  models::GPTConfig config;
  config.vocab_size = 64;
  config.block_size = 64;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 64;
  auto gpt = std::make_shared<models::GPT>(config);
  const int64_t batch = 4, time = 64;
  std::vector<int64_t> ids(size_t(batch * time));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i * 7 % 64);
  Tensor tokens = from_int64(ids, {batch, time});
  (*gpt)(tokens);  // warm up: first-touch allocations
  observe::FlopsProfiler profiler(profiler_config(), *gpt);
  profiler.start();
  auto start = std::chrono::steady_clock::now();
  for (int call = 0; call < 3; ++call) (*gpt)(tokens);
  double measured = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  profiler.stop();
  std::vector<observe::FlopsProfiler::ModuleProfile> profiles = profiler.profiles();
  const auto& model = profiles.front();
  CHECK(model.calls == 3);
  CHECK(model.latency_seconds <= measured);
  CHECK(model.latency_seconds >= 0.9 * measured);
  // The outermost called modules below the model: no called ancestor but the model.
  auto called_ancestor = [&](const std::string& name) {
    for (const auto& other : profiles) {
      if (other.depth > 0 && other.calls > 0 && name.size() > other.name.size() &&
          name.starts_with(other.name + "."))
        return true;
    }
    return false;
  };
  double children = 0;
  int outermost = 0;
  for (const auto& profile : profiles) {
    if (profile.depth == 0 || profile.calls == 0 || called_ancestor(profile.name)) continue;
    children += profile.latency_seconds;
    ++outermost;
  }
  CHECK(outermost == 2 + 2 + 1 + 1);  // wte, wpe, h.0, h.1, ln_f, lm_head
  CHECK(children <= model.latency_seconds);
  CHECK(children >= 0.9 * model.latency_seconds);
}
