// Samples text from a GPT that gpt_train trained: from its model file (--model, gpt_train's
// --save or zero_to_fp32's output) or straight from an engine checkpoint (--checkpoint, joined
// the way zero_to_fp32 joins it). The prompt runs through the model once, filling its KV cache;
// then each new token is one forward step of one token, so N tokens cost N steps whatever the
// length so far. Each token is drawn with temperature, top-k and top-p (apps/gpt_sampling.h) on
// a generator seeded by --seed, so a seed repeats its text. The text goes to stdout, the
// timings to stderr. --dtype, --quant and --tp prepare the model as the inference engine serves
// it (apps/gpt_inference.h): weights cast to fp16 or bf16, or Linear layers quantized; a
// tensor-parallel split is refused for now. Runs without mpirun. Each error (a token outside the
// model's vocabulary, a prompt and length past its context, a file of another model) is one line
// and exit status 1.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "apps/checkpoint_consolidation.h"
#include "apps/cli_flags.h"
#include "apps/gpt_inference.h"
#include "apps/gpt_model_files.h"
#include "apps/gpt_sampling.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/generator.h"
#include "data/text_corpus.h"

using namespace zt;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct GenerateOptions {
  std::string model_path, checkpoint_dir, tag;
  std::string prompt, prompt_tokens;
  int64_t max_new_tokens = 0;
  apps::SamplingOptions sampling;
  uint64_t seed = 0;
  std::string device;
  bool kv_cache = true;
  inference::InferenceConfig serving;  // dtype, quant, tp_size
};

const apps::CommandLine& generate_command_line() {
  static const apps::CommandLine command_line{
      "gpt_generate",
      "Samples text from a GPT trained by gpt_train, with a KV cache: one forward step of one\n"
      "token per new token. Give the model as --model FILE or --checkpoint DIR.",
      {
          {"model", "FILE", "", "a model file: gpt_train --save, or zero_to_fp32's output", "none"},
          {"checkpoint", "DIR", "", "an engine checkpoint folder of gpt_train (--save-dir)",
           "none"},
          {"tag", "TAG", "", "the checkpoint's tag", "the one DIR/latest names"},
          {"prompt", "TEXT", "\\n", "the text to continue (C escapes \\n and \\t are read)"},
          {"prompt-tokens", "IDS", "", "the prompt as token ids, comma-separated", "none"},
          {"max-new-tokens", "N", "256", "tokens to generate"},
          {"temperature", "T", "0.8", "logits are divided by T; 0 is greedy decoding"},
          {"top-k", "K", "0", "sample among the K most probable tokens; 0: all"},
          {"top-p", "P", "1", "sample among the most probable tokens that reach P; 1: all"},
          {"seed", "S", "1", "seed of the draws"},
          {"device", "cpu|cuda", "cpu", "where the model runs (cuda: GPU 0)"},
          {"kv-cache", "on|off", "on",
           "off: each step runs the whole sequence again (to measure what the cache saves)"},
          {"dtype", "fp32|fp16|bf16|int8", "fp32",
           "the weights' dtype (int8: Linear layers quantized as --quant says)"},
          {"quant", "off|w8|w4|w8a8", "off",
           "Linear layers quantized: int8 or int4 weights, or int8 weights and activations"},
          {"quant-groups", "G", "1", "groups of rows, each with its own scale (q_groups)"},
          {"tp", "N", "1", "tensor-parallel ranks (only 1 for now)"},
      }};
  return command_line;
}

// "\n" and "\t" as typed on a command line become the characters.
std::string unescaped(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 'n' || text[i + 1] == 't')) {
      out.push_back(text[++i] == 'n' ? '\n' : '\t');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

GenerateOptions read_generate_options(const apps::Flags& flags) {
  GenerateOptions options;
  options.model_path = flags.get_string("model");
  options.checkpoint_dir = flags.get_string("checkpoint");
  if (options.model_path.empty() == options.checkpoint_dir.empty())
    throw apps::FlagError("give the model as exactly one of --model FILE and --checkpoint DIR");
  options.tag = flags.get_string("tag");
  options.prompt = unescaped(flags.get_string("prompt"));
  options.prompt_tokens = flags.get_string("prompt-tokens");
  if (flags.has("prompt") && flags.has("prompt-tokens"))
    throw apps::FlagError("give the prompt as one of --prompt and --prompt-tokens");
  options.max_new_tokens = flags.get_int("max-new-tokens", 1);
  options.sampling.temperature =
      flags.get_double("temperature", -std::numeric_limits<double>::infinity());
  if (options.sampling.temperature < 0.0) {
    throw apps::FlagError(fmt::format("--temperature: expected a number >= 0, got '{}'",
                                      flags.get_string("temperature")));
  }
  options.sampling.top_k = flags.get_int("top-k", 0);
  options.sampling.top_p = flags.get_double("top-p", 0.0);
  if (options.sampling.top_p > 1.0) {
    throw apps::FlagError(
        fmt::format("--top-p: expected a number in (0, 1], got '{}'", flags.get_string("top-p")));
  }
  options.seed = uint64_t(flags.get_int("seed", 0));
  options.device = flags.get_choice("device");
  options.kv_cache = flags.get_choice("kv-cache") == "on";
  options.serving = apps::serving_config(flags.get_choice("dtype"), flags.get_choice("quant"),
                                         flags.get_int("quant-groups", 1), flags.get_int("tp", 1));
  return options;
}

std::shared_ptr<models::GPT> load_model(const GenerateOptions& options) {
  if (!options.model_path.empty()) {
    SafetensorsContents contents = load_safetensors(options.model_path);
    return apps::load_gpt(contents.metadata, contents.tensors, options.model_path);
  }
  dist::ConsolidatedCheckpoint checkpoint =
      dist::read_checkpoint(dist::resolve_tag_dir(options.checkpoint_dir, options.tag));
  return apps::load_gpt(apps::consolidated_metadata(checkpoint),
                        apps::fp32_model_tensors(checkpoint),
                        dist::model_states_file(checkpoint.tag_dir));
}

// The prompt as token ids, each checked against the model's vocabulary.
std::vector<int64_t> prompt_tokens(const GenerateOptions& options, int64_t vocab_size) {
  std::vector<int64_t> tokens;
  std::string flag = options.prompt_tokens.empty() ? "--prompt" : "--prompt-tokens";
  if (options.prompt_tokens.empty()) {
    for (uint16_t byte : data::encode_bytes(options.prompt)) tokens.push_back(byte);
  } else {
    size_t begin = 0;
    while (begin <= options.prompt_tokens.size()) {
      size_t end = std::min(options.prompt_tokens.find(',', begin), options.prompt_tokens.size());
      std::string text = options.prompt_tokens.substr(begin, end - begin);
      char* parsed_end = nullptr;
      long long value = std::strtoll(text.c_str(), &parsed_end, 10);
      if (text.empty() || *parsed_end != '\0' || value < 0) {
        throw apps::FlagError(fmt::format(
            "--prompt-tokens: expected comma-separated token ids >= 0, got '{}'", text));
      }
      tokens.push_back(value);
      begin = end + 1;
    }
  }
  if (tokens.empty())
    throw apps::FlagError(flag + ": the prompt is empty; give one token at least");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size) {
      throw apps::FlagError(fmt::format(
          "{}: {} {} at position {} is outside the model's vocabulary 0..{}", flag,
          options.prompt_tokens.empty() ? "byte" : "token", tokens[i], i, vocab_size - 1));
    }
  }
  return tokens;
}

// The logits of the last position of [1, T, vocab], as doubles on the host.
std::vector<double> last_logits(const Tensor& logits) {
  return logits.select(1, logits.size(1) - 1).reshape({logits.size(-1)}).to_vector();
}

struct Generation {
  std::vector<uint16_t> tokens;
  double prompt_seconds = 0.0;        // the prompt's forward, which fills the cache
  std::vector<double> token_seconds;  // each new token: its draw and its one-token forward
};

// The prompt through the model once, then one token a step through the KV cache (without it,
// every step runs the whole sequence so far).
Generation sample(models::GPT& model, const std::vector<int64_t>& prompt,
                  const GenerateOptions& options, Device device) {
  NoGradGuard no_grad;
  Generator generator(options.seed);
  models::KVCache cache;
  models::KVCache* cache_used = options.kv_cache ? &cache : nullptr;
  std::vector<int64_t> sequence = prompt;
  Generation generation;
  auto start = Clock::now();
  Tensor logits =
      model.forward(from_int64(prompt, {1, int64_t(prompt.size())}).to(device), cache_used);
  generation.prompt_seconds = seconds_since(start);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto step_start = Clock::now();
    std::vector<double> probabilities =
        apps::sampling_probabilities(last_logits(logits), options.sampling);
    Tensor weights =
        from_values(probabilities, {int64_t(probabilities.size())}, {.dtype = DType::f64});
    int64_t token = int64_t(multinomial(weights, 1, false, &generator).item());
    generation.tokens.push_back(uint16_t(token));
    if (step + 1 < options.max_new_tokens) {
      sequence.push_back(token);
      std::vector<int64_t> fed = options.kv_cache ? std::vector<int64_t>{token} : sequence;
      logits = model.forward(from_int64(fed, {1, int64_t(fed.size())}).to(device), cache_used);
    }
    generation.token_seconds.push_back(seconds_since(step_start));
  }
  return generation;
}

// Milliseconds a token over the first and the second half: equal halves show a cost linear in
// the number of tokens (without a cache the second half would cost about three times the first).
void print_timings(size_t prompt_length, const Generation& generation) {
  const std::vector<double>& seconds = generation.token_seconds;
  size_t half = seconds.size() / 2;
  auto milliseconds_a_token = [&](size_t begin, size_t end) {
    double sum = 0.0;
    for (size_t i = begin; i < end; ++i) sum += seconds[i];
    return end > begin ? 1000.0 * sum / double(end - begin) : 0.0;
  };
  double total = 0.0;
  for (double step : seconds) total += step;
  fmt::print(stderr,
             "generated {} tokens in {:.3f} s: {:.2f} ms a token (first half {:.2f} ms, second "
             "half {:.2f} ms); prompt of {} tokens in {:.2f} ms\n",
             seconds.size(), total, milliseconds_a_token(0, seconds.size()),
             milliseconds_a_token(0, half), milliseconds_a_token(half, seconds.size()),
             prompt_length, 1000.0 * generation.prompt_seconds);
}

int generate(const GenerateOptions& options) {
  std::shared_ptr<models::GPT> model = apps::served_model(load_model(options), options.serving);
  const models::GPTConfig& config = model->config();
  std::vector<int64_t> prompt = prompt_tokens(options, config.vocab_size);
  int64_t total = int64_t(prompt.size()) + options.max_new_tokens;
  if (total > config.block_size) {
    throw apps::FlagError(fmt::format(
        "the prompt's {} tokens + --max-new-tokens {} = {} pass the model's context of {} "
        "tokens (block_size)",
        prompt.size(), options.max_new_tokens, total, config.block_size));
  }
  Device device = options.device == "cuda" ? Device::cuda(0) : Device::cpu();
  if (device.is_cuda() && cuda_device_count() == 0)
    throw apps::FlagError("--device cuda: no CUDA device is visible");
  model->to(device);
  Generation generation = sample(*model, prompt, options, device);
  std::string prompt_text = options.prompt_tokens.empty() ? options.prompt : "";
  fmt::print("{}{}\n", prompt_text, data::decode_bytes(generation.tokens));
  std::fflush(stdout);
  print_timings(prompt.size(), generation);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  GenerateOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, generate_command_line(),
      [&](const apps::Flags& flags) { options = read_generate_options(flags); });
  if (status) return *status;
  try {
    return generate(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "gpt_generate: {}\n", error.what());
    return 1;
  }
}
