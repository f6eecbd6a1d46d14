// The flops profiler against counts written out by hand from the architectures: the MNIST CNN
// (two 3x3 convolutions, two linears) and a small GPT-2 (per layer c_attn, c_proj, c_fc,
// c_proj and the attention products, then the head). MACs and FLOPs must equal exactly.
#include <doctest/doctest.h>

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

TEST_CASE("flops profiler: a GPT-2's MACs equal B*T*(L*12*C^2 + C*V) + L*2*B*T^2*C") {
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
  observe::FlopsProfiler::ModuleProfile totals = profiler.totals();
  CHECK(totals.macs == macs);
  CHECK(totals.flops == 2 * macs);
  std::string report = profiler.report({.step = 1, .world_size = 1, .batch_size_per_gpu = batch});
  CHECK(report.find("fwd MACs per GPU:") != std::string::npos);
  CHECK(report.find("(attn): GPT2Attention") != std::string::npos);
}
