// Serves a GPT that gpt_train trained to many prompts at once: one prompt a line from --prompts
// FILE or stdin (C escapes \n and \t read), all given to the inference engine, which batches
// them continuously (requests join and leave the running batch at every step, their KV cache in
// blocks freed as each finishes). Each result is printed as soon as its request finishes:
// "INDEX<TAB>PROMPT+COMPLETION" with newlines and tabs written as \n and \t; the throughput goes
// to stderr. Request i draws with seed --seed + i. Each error is one line and exit status 1.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/gpt_inference.h"
#include "apps/read_command_line.h"
#include "data/text_corpus.h"
#include "inference/inference_config.h"

using namespace zt;

namespace {

struct ServeOptions {
  std::string prompts_path;  // "-": stdin
  int64_t max_new_tokens = 0;
  inference::SamplingOptions sampling;
  uint64_t seed = 0;
  inference::InferenceConfig serving;
  inference::Batching batching = inference::Batching::continuous;
};

const apps::CommandLine& serve_command_line() {
  static const apps::CommandLine command_line{
      "gpt_serve",
      "Generates continuations of many prompts with continuous batching, printing each as its\n"
      "request finishes. Give the model as --model FILE, --checkpoint DIR or a --config whose\n"
      "\"checkpoint\" names it.",
      {
          {"model", "FILE", "", "a model file: gpt_train --save, or zero_to_fp32's output", "none"},
          {"checkpoint", "DIR", "", "an engine checkpoint folder of gpt_train (--save-dir)",
           "none"},
          {"config", "FILE", "",
           "an inference config (DeepSpeed's init_inference keys; docs/inference.md)",
           "none: the flags below"},
          {"prompts", "FILE", "-", "one prompt a line; - reads stdin"},
          {"max-new-tokens", "N", "64", "tokens to generate per prompt"},
          {"temperature", "T", "0", "logits are divided by T; 0 is greedy decoding"},
          {"top-k", "K", "0", "sample among the K most probable tokens; 0: all"},
          {"top-p", "P", "1", "sample among the most probable tokens that reach P; 1: all"},
          {"seed", "S", "1", "request i draws with seed S + i"},
          {"dtype", "fp32|fp16|bf16|int8", "fp32", "the weights' dtype (without --config)"},
          {"quant", "off|w8|w4|w8a8", "off", "Linear layers quantized (without --config)"},
          {"quant-groups", "G", "1", "groups of rows, each with its own scale (without --config)"},
          {"tp", "N", "1", "tensor-parallel ranks (only 1 for now; without --config)"},
          {"max-batch", "N", "8", "sequences in the running batch (without --config)"},
          {"batching", "continuous|static", "continuous",
           "static: batches of --max-batch that start together and end with their longest"},
      }};
  return command_line;
}

std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else
      out.push_back(c);
  }
  return out;
}

ServeOptions read_serve_options(const apps::Flags& flags) {
  ServeOptions options;
  const std::string model = flags.get_string("model"), checkpoint = flags.get_string("checkpoint");
  if (!model.empty() && !checkpoint.empty())
    throw apps::FlagError("give the model as one of --model FILE and --checkpoint DIR");
  if (flags.has("config")) {
    options.serving = inference::load_inference_config(flags.get_string("config"));
  } else {
    options.serving =
        apps::serving_config(flags.get_choice("dtype"), flags.get_choice("quant"),
                             flags.get_int("quant-groups", 1), flags.get_int("tp", 1));
    options.serving.max_batch_size = flags.get_int("max-batch", 1);
  }
  if (!model.empty() || !checkpoint.empty()) options.serving.checkpoint = model + checkpoint;
  if (options.serving.checkpoint.empty()) {
    throw apps::FlagError(
        "give the model as --model FILE, --checkpoint DIR or a --config with \"checkpoint\"");
  }
  options.prompts_path = flags.get_string("prompts");
  options.max_new_tokens = flags.get_int("max-new-tokens", 1);
  options.sampling.temperature = flags.get_non_negative_double("temperature");
  options.sampling.top_k = flags.get_int("top-k", 0);
  options.sampling.top_p = flags.get_double("top-p", 0.0);
  if (options.sampling.top_p > 1.0) {
    throw apps::FlagError(
        fmt::format("--top-p: expected a number in (0, 1], got '{}'", flags.get_string("top-p")));
  }
  options.seed = uint64_t(flags.get_int("seed", 0));
  options.batching = flags.get_choice("batching") == "static" ? inference::Batching::static_batches
                                                              : inference::Batching::continuous;
  return options;
}

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) throw std::runtime_error(fmt::format("--prompts {}: cannot open", path));
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) prompts.push_back(apps::unescaped(line));
  }
  if (prompts.empty()) {
    throw std::runtime_error(
        fmt::format("--prompts {}: no prompts (one a line, empty lines skipped)",
                    path == "-" ? "stdin" : path));
  }
  return prompts;
}

int serve(const ServeOptions& options) {
  std::shared_ptr<inference::InferenceEngine> engine = init_inference(options.serving);
  const std::vector<std::string> prompts = read_prompts(options.prompts_path);
  std::vector<inference::GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    inference::GenerationRequest request{.max_new_tokens = options.max_new_tokens,
                                         .sampling = options.sampling,
                                         .seed = options.seed + i};
    for (uint16_t byte : data::encode_bytes(prompts[i])) request.prompt.push_back(byte);
    requests.push_back(request);
  }
  std::vector<std::vector<uint16_t>> text(requests.size());
  const auto start = std::chrono::steady_clock::now();
  engine->generate(
      requests,
      [&](size_t request, int64_t token, bool last) {
        text[request].push_back(uint16_t(token));
        if (!last) return;
        fmt::print("{}\t{}\n", request,
                   escaped(prompts[request] + data::decode_bytes(text[request])));
        std::fflush(stdout);
      },
      options.batching);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t tokens = int64_t(requests.size()) * options.max_new_tokens;
  fmt::print(stderr, "{} requests, {} new tokens in {:.3f} s ({:.0f} tokens/s, {} steps, {})\n",
             requests.size(), tokens, seconds, double(tokens) / seconds, engine->last_steps(),
             engine->config().dtype);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServeOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, serve_command_line(),
      [&](const apps::Flags& flags) { options = read_serve_options(flags); });
  if (status) return *status;
  try {
    return serve(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "gpt_serve: {}\n", error.what());
    return 1;
  }
}
