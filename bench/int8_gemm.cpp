// Prefill throughput of the quantized linear layers against the f32 layer the models use
// (linear(): OpenBLAS sgemm), at GEMM-bound shapes: the four products of a transformer block
// of width --n-embd over --tokens tokens. Each layer's time is the median of --repeats runs,
// the f32 and quantized runs alternating so that load on a shared machine hits both alike.
// Target: W8A8 prefill (quantize the activations, int8 GEMM, rescale) >= 1.8x f32 tokens/s.
#include <fmt/format.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "bench/timing.h"
#include "core/cpu/cpu_int8_gemm.h"
#include "core/factory.h"
#include "core/parallel.h"
#include "quant/quantized_linear.h"

namespace {

using zt::bench::median;
using zt::bench::seconds_of;
using zt::quant::QuantizationType;

const zt::apps::CommandLine kInt8GemmCommandLine{
    "bench/int8_gemm",
    "Prefill tokens/s of a transformer block's four linear layers (qkv, attention output, MLP\n"
    "up, MLP down) in f32, W8A8 and weight-only int8/int4, over --tokens tokens.",
    {
        {"tokens", "N", "512", "tokens in the prefill (batch x sequence)"},
        {"n-embd", "N", "768", "model width (the MLP is 4x wider)"},
        {"repeats", "N", "15", "timed runs per layer and kind (the median is reported)"},
    }};

struct Options {
  int64_t tokens = 512, n_embd = 768, repeats = 15;
};

struct Shape2 {
  const char* name;
  int64_t in, out;
};

// The median seconds of each body over `repeats` alternating runs, after one warm-up each.
std::vector<double> alternating_medians(const std::vector<std::function<void()>>& bodies,
                                        int64_t repeats) {
  for (const auto& body : bodies) body();
  std::vector<std::vector<double>> times(bodies.size());
  for (int64_t r = 0; r < repeats; ++r)
    for (size_t i = 0; i < bodies.size(); ++i) times[i].push_back(seconds_of(bodies[i]));
  std::vector<double> result;
  for (auto& series : times) result.push_back(median(series));
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::optional<int> status = zt::apps::read_command_line(
      argc, argv, kInt8GemmCommandLine, [&](const zt::apps::Flags& flags) {
        options.tokens = flags.get_int("tokens", 1);
        options.n_embd = flags.get_int("n-embd", 1);
        options.repeats = flags.get_int("repeats", 1);
      });
  if (status) return *status;
  zt::autograd::NoGradGuard inference;
  int64_t c = options.n_embd;
  std::vector<Shape2> shapes = {
      {"qkv", c, 3 * c}, {"attn out", c, c}, {"mlp up", c, 4 * c}, {"mlp down", 4 * c, c}};
  const char* kinds[] = {"f32", "W8A8", "int8 w-only", "int4 w-only"};
  fmt::print("threads: {}, tokens: {}, n_embd: {}, int8 GEMM path: {}\n", zt::num_threads(),
             options.tokens, c, zt::cpu::int8_gemm_has_vnni() ? "AVX-512 VNNI" : "portable");
  fmt::print("{:<10} {:>12} {:>12} {:>12} {:>12} {:>10}\n", "layer", "f32 ms", "W8A8 ms",
             "int8 wo ms", "int4 wo ms", "W8A8 x");
  std::vector<double> totals(4, 0.0);
  for (const Shape2& shape : shapes) {
    zt::manual_seed(1);
    zt::Tensor x = zt::randn({options.tokens, shape.in});
    zt::Tensor weight = zt::randn({shape.out, shape.in}, {}).to(zt::DType::f32);
    zt::Tensor bias = zt::randn({shape.out});
    zt::quant::QuantizedLinear w8a8(weight, bias, 8, 1, QuantizationType::symmetric,
                                    QuantizationType::symmetric);
    zt::quant::QuantizedLinear int8(weight, bias, 8, 1, QuantizationType::symmetric, std::nullopt);
    zt::quant::QuantizedLinear int4(weight, bias, 4, shape.out, QuantizationType::symmetric,
                                    std::nullopt);
    std::vector<double> seconds = alternating_medians(
        {[&] { zt::Tensor y = zt::linear(x, weight, bias); }, [&] { zt::Tensor y = w8a8(x); },
         [&] { zt::Tensor y = int8(x); }, [&] { zt::Tensor y = int4(x); }},
        options.repeats);
    for (size_t i = 0; i < 4; ++i) totals[i] += seconds[i];
    fmt::print("{:<10} {:>12.3f} {:>12.3f} {:>12.3f} {:>12.3f} {:>10.2f}\n", shape.name,
               seconds[0] * 1e3, seconds[1] * 1e3, seconds[2] * 1e3, seconds[3] * 1e3,
               seconds[0] / seconds[1]);
  }
  fmt::print("prefill tokens/s through the block's linear layers:\n");
  for (size_t i = 0; i < 4; ++i) {
    fmt::print("  {:<12} {:>12.0f}  ({:.2f}x f32)\n", kinds[i], double(options.tokens) / totals[i],
               totals[0] / totals[i]);
  }
  double speedup = totals[0] / totals[1];
  fmt::print("W8A8 prefill {:.2f}x f32 (target >= 1.80): {}\n", speedup,
             speedup >= 1.8 ? "met" : "not met");
  return 0;
}
