// Validation perplexity of a GPT that gpt_train trained, per serving dtype: the held-out
// fortunes (every --validation-every-th document, as gpt_train holds them out) through the model
// as the inference engine prepares it for each of --dtypes (fp32, fp16, bf16, int8 with
// --quant), one table line each: weight bytes, perplexity, its ratio to the first dtype's, and
// the seconds it took. Each error is one line and exit status 1.
#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/gpt_inference.h"
#include "apps/read_command_line.h"
#include "data/text_corpus.h"
#include "inference/perplexity.h"

using namespace zt;

namespace {

struct EvalOptions {
  std::string model_path;
  std::vector<std::string> dtypes;
  std::string quant;
  int64_t quant_groups = 1;
  std::string text_dir;
  int64_t validation_every = 10;
  int64_t max_tokens = 0;
  int64_t context = 0;  // 0: the model's block_size
};

const apps::CommandLine& eval_command_line() {
  static const apps::CommandLine command_line{
      "gpt_eval",
      "Reports a GPT's validation perplexity on the held-out fortunes for each serving dtype.",
      {
          {"model", "FILE", "", "a model file: gpt_train --save, or zero_to_fp32's output"},
          {"dtypes", "LIST", "fp32,fp16,bf16", "comma-separated among fp32, fp16, bf16, int8"},
          {"quant", "off|w8|w4|w8a8", "off", "how int8 quantizes the Linear layers (off: w8)"},
          {"quant-groups", "G", "1", "groups of rows, each with its own scale (q_groups)"},
          {"text-dir", "DIR", "/usr/share/games/fortunes", "fortune files, as gpt_train reads"},
          {"validation-every", "N", "10", "the held-out documents: one in N, as gpt_train's"},
          {"max-tokens", "N", "32768", "validation tokens evaluated (from the start)"},
          {"context", "T", "", "tokens per window", "the model's block_size"},
      }};
  return command_line;
}

EvalOptions read_eval_options(const apps::Flags& flags) {
  EvalOptions options;
  options.model_path = flags.get_string("model");
  if (options.model_path.empty()) throw apps::FlagError("--model FILE: the model to evaluate");
  std::stringstream list(flags.get_string("dtypes"));
  for (std::string dtype; std::getline(list, dtype, ',');) {
    if (dtype != "fp32" && dtype != "fp16" && dtype != "bf16" && dtype != "int8") {
      throw apps::FlagError(
          fmt::format("--dtypes: expected fp32, fp16, bf16 or int8, got '{}'", dtype));
    }
    options.dtypes.push_back(dtype);
  }
  if (options.dtypes.empty()) throw apps::FlagError("--dtypes: expected one dtype at least");
  options.quant = flags.get_choice("quant");
  options.quant_groups = flags.get_int("quant-groups", 1);
  options.text_dir = flags.get_string("text-dir");
  options.validation_every = flags.get_int("validation-every", 2);
  options.max_tokens = flags.get_int("max-tokens", 2);
  options.context = flags.has("context") ? flags.get_int("context", 1) : 0;
  return options;
}

int evaluate(const EvalOptions& options) {
  data::TokenSplits splits = data::split_and_encode(data::read_fortune_documents(options.text_dir),
                                                    options.validation_every);
  std::vector<int64_t> tokens(splits.validation.begin(), splits.validation.end());
  if (int64_t(tokens.size()) > options.max_tokens) tokens.resize(size_t(options.max_tokens));
  fmt::print("{}: {} validation tokens of {} ({} documents held out)\n", options.model_path,
             tokens.size(), splits.validation.size(), splits.validation_documents);
  fmt::print("{:<6} {:>12} {:>11} {:>9} {:>8}\n", "dtype", "weight bytes", "perplexity", "vs first",
             "seconds");
  double first = 0.0;
  for (const std::string& dtype : options.dtypes) {
    inference::InferenceConfig config = apps::serving_config(
        dtype, dtype == "int8" ? options.quant : "off", options.quant_groups, 1);
    config.checkpoint = options.model_path;
    std::shared_ptr<inference::InferenceEngine> engine = init_inference(config);
    const int64_t context =
        options.context > 0 ? options.context : engine->model().config().block_size;
    const auto start = std::chrono::steady_clock::now();
    const double value = inference::perplexity(engine->model(), tokens, context);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (first == 0.0) first = value;
    fmt::print("{:<6} {:>12} {:>11.4f} {:>9.5f} {:>8.2f}\n", dtype, engine->weight_bytes(), value,
               value / first, seconds);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  EvalOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, eval_command_line(),
      [&](const apps::Flags& flags) { options = read_eval_options(flags); });
  if (status) return *status;
  try {
    return evaluate(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "gpt_eval: {}\n", error.what());
    return 1;
  }
}
