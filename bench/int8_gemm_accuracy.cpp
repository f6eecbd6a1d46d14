// Validation perplexity of a small GPT on Debian's fortunes in f32 and quantized: W8A8 and
// weight-only int8 (targets: within 2% of f32), weight-only int4 (within 5%), with the linear
// layers' weight bytes (targets: 4x and 8x smaller, scales counted). The model is trained here
// for --steps AdamW steps on the byte tokens (every 10th fortune held out), or read from
// --model-file when that file exists (it is written after training otherwise).
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "data/text_corpus.h"
#include "data/text_windows.h"
#include "models/gpt.h"
#include "optim/adam.h"
#include "quant/quantize_model.h"

namespace {

using namespace zt;

const apps::CommandLine kAccuracyCommandLine{
    "bench/int8_gemm_accuracy",
    "Validation perplexity on fortunes of a small GPT in f32, W8A8, weight-only int8 and int4,\n"
    "and the weight bytes of its linear layers.",
    {
        {"fortunes", "DIR", "/usr/share/games/fortunes", "the fortune files"},
        {"model-file", "PATH", "", "trained model to read, or to write after training"},
        {"steps", "N", "300", "training steps when there is no model file"},
        {"n-layer", "N", "4", "transformer blocks"},
        {"n-embd", "N", "128", "model width"},
        {"block-size", "T", "64", "tokens per window"},
        {"batch-size", "B", "16", "windows per training step"},
        {"eval-windows", "N", "256", "validation windows"},
        {"q-groups", "N", "0", "weight groups per layer (0: n_embd, one scale per few rows)"},
    }};

struct Options {
  std::string fortunes, model_file;
  int64_t steps, n_layer, n_embd, block_size, batch_size, eval_windows, q_groups;
};

models::GPTConfig model_config(const Options& options) {
  models::GPTConfig config;
  config.vocab_size = 256;
  config.block_size = options.block_size;
  config.n_layer = options.n_layer;
  config.n_head = 4;
  config.n_embd = options.n_embd;
  return config;
}

Tensor next_token_loss(models::GPT& model, const data::TokenBatch& batch) {
  Tensor logits = model(batch.inputs);
  int64_t rows = batch.inputs.numel();
  return cross_entropy(logits.reshape({rows, logits.size(-1)}), batch.targets.reshape({rows}));
}

void train(models::GPT& model, const std::vector<uint16_t>& tokens, const Options& options) {
  data::TokenWindowSampler windows(
      tokens, {.batch_size = options.batch_size, .block_size = options.block_size, .seed = 1});
  optim::Adam optimizer({{model.parameters(), 2e-3, 0.01}}, {.beta2 = 0.99});
  for (int64_t step = 0; step < options.steps; ++step) {
    Tensor loss = next_token_loss(model, windows.batch(step));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (step % 50 == 0 || step + 1 == options.steps)
      fmt::print("step {:>4}: train loss {:.4f}\n", step, loss.item());
  }
}

// exp(mean cross entropy) over the first eval_windows non-overlapping validation windows.
double perplexity(models::GPT& model, const std::vector<uint16_t>& tokens, const Options& options) {
  autograd::NoGradGuard inference;
  int64_t t = options.block_size, windows = options.eval_windows;
  if (int64_t(tokens.size()) < windows * t + 1)
    throw std::invalid_argument("not enough validation tokens for --eval-windows");
  double total = 0.0;
  for (int64_t first = 0; first < windows; first += 16) {
    int64_t count = std::min<int64_t>(16, windows - first);
    std::vector<int64_t> inputs, targets;
    for (int64_t w = first; w < first + count; ++w)
      for (int64_t i = 0; i < t; ++i) {
        inputs.push_back(tokens[size_t(w * t + i)]);
        targets.push_back(tokens[size_t(w * t + i + 1)]);
      }
    data::TokenBatch batch{from_int64(inputs, {count, t}), from_int64(targets, {count, t})};
    total += next_token_loss(model, batch).item() * double(count);
  }
  return std::exp(total / double(windows));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kAccuracyCommandLine, [&](const apps::Flags& flags) {
        options = {flags.get_string("fortunes"),   flags.get_string("model-file"),
                   flags.get_int("steps", 1),      flags.get_int("n-layer", 1),
                   flags.get_int("n-embd", 4),     flags.get_int("block-size", 2),
                   flags.get_int("batch-size", 1), flags.get_int("eval-windows", 1),
                   flags.get_int("q-groups", 0)};
      });
  if (status) return *status;
  try {
    data::TokenSplits splits =
        data::split_and_encode(data::read_fortune_documents(options.fortunes), 10);
    models::GPTConfig config = model_config(options);
    manual_seed(1);
    auto trained = std::make_shared<models::GPT>(config);
    if (!options.model_file.empty() && std::filesystem::exists(options.model_file)) {
      trained->load(options.model_file);
    } else {
      train(*trained, splits.train, options);
      if (!options.model_file.empty()) trained->save(options.model_file);
    }
    trained->eval();
    double f32_perplexity = perplexity(*trained, splits.validation, options);
    quant::WeightBytes f32_bytes = quant::model_weight_bytes(*trained);
    int64_t groups = options.q_groups > 0 ? options.q_groups : options.n_embd;
    fmt::print("validation: {} windows of {} tokens; q_groups {}\n", options.eval_windows,
               options.block_size, groups);
    fmt::print("{:<26} {:>11} {:>9} {:>8} {:>18} {:>8}\n", "kind", "perplexity", "vs f32", "target",
               "linear weight B", "smaller");
    fmt::print("{:<26} {:>11.4f} {:>9} {:>8} {:>18} {:>8}\n", "f32", f32_perplexity, "", "",
               f32_bytes.linear_weights, "1.00x");
    struct Kind {
      const char* name;
      int bits;
      quant::QuantizationType type;
      bool activations;
      double target;
    };
    const Kind kinds[] = {
        {"W8A8 symmetric", 8, quant::QuantizationType::symmetric, true, 0.02},
        {"int8 weight-only", 8, quant::QuantizationType::symmetric, false, 0.02},
        {"int4 weight-only", 4, quant::QuantizationType::symmetric, false, 0.05},
        {"int4 weight-only asym", 4, quant::QuantizationType::asymmetric, false, 0.05}};
    for (const Kind& kind : kinds) {
      auto model = std::make_shared<models::GPT>(config);  // modules live in shared_ptrs
      model->load_state_dict(trained->state_dict());
      model->eval();
      quant::QuantizationConfig quantization;
      quantization.weight = {true, kind.bits, groups, kind.type};
      quantization.activation.enabled = kind.activations;
      quant::quantize_linear_layers(*model, quantization);
      double value = perplexity(*model, splits.validation, options);
      double relative = value / f32_perplexity - 1.0;
      quant::WeightBytes bytes = quant::model_weight_bytes(*model);
      fmt::print("{:<26} {:>11.4f} {:>+8.2f}% {:>7}% {:>18} {:>7.2f}x  {}\n", kind.name, value,
                 100 * relative, 100 * kind.target, bytes.linear_weights,
                 double(f32_bytes.linear_weights) / double(bytes.linear_weights),
                 std::abs(relative) <= kind.target ? "met" : "NOT met");
    }
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/int8_gemm_accuracy: {}\n", error.what());
    return 1;
  }
  return 0;
}
