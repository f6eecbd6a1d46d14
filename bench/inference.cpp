// Inference throughput of a GPT-2 model (random weights; speed does not depend on them) on the
// CPU, through the inference engine: per dtype, the weight bytes and the tokens/s of prefill (B
// prompts of --prompt tokens in one ragged step) and of decode (one token per sequence a step,
// after that prefill) at batch 1 and 8; greedy generation of 64, 256 and 1024 tokens with the
// paged KV cache (ms a token stays flat when the cost is linear in the length); and --requests
// mixed requests (prompts and outputs of 8..--max-mixed tokens) under continuous batching and
// under static batches of the same width: tokens/s and whether every request got the same
// tokens. --torch FILE adds PyTorch's batch-1 decode tokens/s (bench/inference_pytorch.py's
// lines "dtype tokens_per_s"). Each figure is the fastest of --repeats runs (on a loaded machine
// the fastest is the one least disturbed).
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/gpt_inference.h"
#include "apps/read_command_line.h"
#include "bench/timing.h"
#include "core/factory.h"
#include "core/generator.h"
#include "inference/paged_kv_cache.h"
#include "inference/ragged_decoder.h"

using namespace zt;

namespace {

// The clock that figures use: wall seconds, or the process's CPU seconds (all its threads), which
// a neighbour's load on a shared machine leaves nearly unchanged when the run has one thread.
bool cpu_clock = false;

double seconds_of(const auto& body) {
  if (!cpu_clock) return zt::bench::seconds_of(body);
  auto now = [] {
    timespec time{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time);
    return double(time.tv_sec) + 1e-9 * double(time.tv_nsec);
  };
  const double start = now();
  body();
  return now() - start;
}

double fastest(const std::vector<double>& seconds) {
  return *std::min_element(seconds.begin(), seconds.end());
}

struct BenchOptions {
  models::GPTConfig config;
  std::vector<std::string> dtypes;
  int64_t prompt = 128, decode = 32, repeats = 3, requests = 32, max_mixed = 128;
  std::string quant = "w8";
  std::string torch_file;
  std::string parts;  // which of dtypes, lengths, batching to run
};

const apps::CommandLine kCommandLine{
    "bench/inference",
    "Inference tokens/s of a GPT-2 model per dtype (prefill, decode at batch 1 and 8), KV-cache\n"
    "generation time at 64, 256 and 1024 tokens, continuous against static batching.",
    {
        {"n-layer", "N", "4", "transformer blocks"},
        {"n-head", "N", "8", "attention heads"},
        {"n-embd", "N", "512", "model width"},
        {"block-size", "T", "1088", "the model's context"},
        {"dtypes", "LIST", "fp32,fp16,bf16", "comma-separated among fp32, fp16, bf16, int8"},
        {"quant", "w8|w4|w8a8", "w8", "int8's quantization"},
        {"prompt", "T", "128", "prefill tokens per sequence"},
        {"decode", "N", "32", "decode steps timed"},
        {"repeats", "N", "3", "runs per figure; the fastest counts"},
        {"requests", "N", "32", "mixed requests for continuous against static batching"},
        {"max-mixed", "N", "128", "longest prompt and output of a mixed request"},
        {"torch", "FILE", "", "PyTorch's decode figures (lines \"dtype tokens_per_s\")", "none"},
        {"parts", "LIST", "dtypes,lengths,batching",
         "what to measure: the dtype table, prefill per dtype (prefill), 16-bit decode with the "
         "KV cache read in place or copied (cache16), the generation lengths, the batching "
         "comparison"},
        {"clock", "wall|cpu", "wall",
         "cpu: the process's CPU seconds (for a loaded machine; run with ZT_NUM_THREADS=1)"},
    }};

BenchOptions read_options(const apps::Flags& flags) {
  BenchOptions options;
  options.config.vocab_size = 256;
  options.config.n_layer = flags.get_int("n-layer", 1);
  options.config.n_head = flags.get_int("n-head", 1);
  options.config.n_embd = flags.get_int("n-embd", 1);
  options.config.block_size = flags.get_int("block-size", 1);
  std::stringstream list(flags.get_string("dtypes"));
  for (std::string dtype; std::getline(list, dtype, ',');) {
    if (dtype != "fp32" && dtype != "fp16" && dtype != "bf16" && dtype != "int8")
      throw apps::FlagError(
          fmt::format("--dtypes: expected fp32, fp16, bf16 or int8, got '{}'", dtype));
    options.dtypes.push_back(dtype);
  }
  options.quant = flags.get_choice("quant");
  options.prompt = flags.get_int("prompt", 1);
  options.decode = flags.get_int("decode", 1);
  options.repeats = flags.get_int("repeats", 1);
  options.requests = flags.get_int("requests", 1);
  options.max_mixed = flags.get_int("max-mixed", 8);
  options.torch_file = flags.get_string("torch");
  cpu_clock = flags.get_choice("clock") == "cpu";
  options.parts = "," + flags.get_string("parts") + ",";
  if (options.prompt + options.decode > options.config.block_size ||
      1024 >= options.config.block_size || 2 * options.max_mixed > options.config.block_size) {
    throw apps::FlagError(
        "--block-size: must hold --prompt + --decode, 1024 + 1 and 2 --max-mixed");
  }
  return options;
}

std::shared_ptr<inference::InferenceEngine> engine_for(const BenchOptions& options,
                                                       const std::string& dtype) {
  manual_seed(1);
  auto model = std::make_shared<models::GPT>(options.config);
  inference::InferenceConfig config =
      apps::serving_config(dtype, dtype == "int8" ? options.quant : "off", 1, 1);
  config.max_out_tokens = options.config.block_size;
  config.max_batch_size = 8;
  return init_inference(model, config);
}

struct PhaseRates {
  double prefill = 0.0, decode = 0.0;  // tokens/s
};

// Prefill of `batch` prompts in one step, then --decode one-token steps: the fastest rates.
// copy_cache: decode through the path that gathers a copy of the context every step, not the
// one that reads the paged cache in place.
PhaseRates phase_rates(inference::InferenceEngine& engine, const BenchOptions& options,
                       int64_t batch, bool copy_cache = false) {
  inference::RaggedDecoder decoder(engine.model());
  decoder.set_cache_read_in_place(!copy_cache);
  const models::GPTConfig& shape = options.config;
  std::vector<double> prefill_seconds, decode_seconds;
  for (int64_t repeat = 0; repeat < options.repeats + 1; ++repeat) {  // the first warms up
    const Tensor weight = engine.model().token_embedding()->weight;   // undefined when quantized
    inference::PagedKVCache cache({.layers = shape.n_layer,
                                   .kv_heads = shape.resolved_n_kv_head(),
                                   .head_dim = shape.head_dim(),
                                   .block_positions = 16,
                                   .blocks = batch * (shape.block_size / 16 + 1)},
                                  weight.defined() ? weight.dtype() : DType::f32, Device::cpu());
    std::vector<inference::RaggedSequence> sequences;
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<int64_t> prompt;
      for (int64_t t = 0; t < options.prompt; ++t) prompt.push_back((b * 31 + t * 7) % 256);
      sequences.push_back({cache.add_sequence(), prompt});
    }
    const double prefill = seconds_of([&] { decoder.step(sequences, cache); });
    for (auto& sequence : sequences) sequence.tokens = {sequence.cache_id % 256};
    const double decode = seconds_of([&] {
      for (int64_t step = 0; step < options.decode; ++step) decoder.step(sequences, cache);
    });
    if (repeat == 0) continue;
    prefill_seconds.push_back(prefill);
    decode_seconds.push_back(decode);
  }
  return {double(batch * options.prompt) / fastest(prefill_seconds),
          double(batch * options.decode) / fastest(decode_seconds)};
}

std::map<std::string, double> read_torch(const std::string& path) {
  std::map<std::string, double> rates;
  if (path.empty()) return rates;
  std::ifstream file(path);
  if (!file) throw std::runtime_error(fmt::format("--torch: cannot open {}", path));
  std::string dtype;
  double rate = 0.0;
  for (std::string line; std::getline(file, line);) {
    std::istringstream fields(line);
    if (line.empty() || line[0] == '#') continue;
    if (fields >> dtype >> rate) rates[dtype] = rate;
  }
  return rates;
}

void print_dtype_table(const BenchOptions& options) {
  const std::map<std::string, double> torch = read_torch(options.torch_file);
  fmt::print("{:<6} {:>13} {:>16} {:>16} {:>15} {:>15}{}\n", "dtype", "weight bytes",
             "prefill b1 tok/s", "prefill b8 tok/s", "decode b1 tok/s", "decode b8 tok/s",
             torch.empty() ? "" : "  torch decode b1 tok/s (ours/torch)");
  for (const std::string& dtype : options.dtypes) {
    auto engine = engine_for(options, dtype);
    const PhaseRates one = phase_rates(*engine, options, 1),
                     eight = phase_rates(*engine, options, 8);
    fmt::print("{:<6} {:>13} {:>16.0f} {:>16.0f} {:>15.0f} {:>15.0f}", dtype,
               engine->weight_bytes(), one.prefill, eight.prefill, one.decode, eight.decode);
    auto found = torch.find(dtype);
    if (found != torch.end())
      fmt::print("  {:.0f} ({:.2f}x)", found->second, one.decode / found->second);
    fmt::print("\n");
  }
}

// Prefill alone at batch 1, the dtypes measured in turn within each repeat (so a change in the
// machine's load lands on all of them alike), the fastest of --repeats runs each: with a wide
// model and a long prompt the GEMMs are most of the work, which is where int8 pays.
void print_prefill_comparison(const BenchOptions& options) {
  std::vector<std::shared_ptr<inference::InferenceEngine>> engines;
  for (const std::string& dtype : options.dtypes) engines.push_back(engine_for(options, dtype));
  const models::GPTConfig& shape = options.config;
  std::vector<double> best(engines.size(), 1e30);
  for (int64_t repeat = 0; repeat < options.repeats + 1; ++repeat) {  // the first warms up
    for (size_t e = 0; e < engines.size(); ++e) {
      inference::RaggedDecoder decoder(engines[e]->model());
      const Tensor table = engines[e]->model().token_embedding()->weight;  // undefined: quantized
      inference::PagedKVCache cache({.layers = shape.n_layer,
                                     .kv_heads = shape.resolved_n_kv_head(),
                                     .head_dim = shape.head_dim(),
                                     .block_positions = 16,
                                     .blocks = shape.block_size / 16 + 1},
                                    table.defined() ? table.dtype() : DType::f32, Device::cpu());
      std::vector<int64_t> prompt;
      for (int64_t t = 0; t < options.prompt; ++t) prompt.push_back((t * 7) % 256);
      std::vector<inference::RaggedSequence> sequences{{cache.add_sequence(), prompt}};
      const double taken = seconds_of([&] { decoder.step(sequences, cache); });
      if (repeat > 0) best[e] = std::min(best[e], taken);
    }
  }
  fmt::print("\nprefill of one prompt of {} tokens, fastest of {}:\n", options.prompt,
             options.repeats);
  for (size_t e = 0; e < engines.size(); ++e) {
    fmt::print("  {:<6} {:>9.0f} tokens/s  {:.2f}x {}\n", options.dtypes[e],
               double(options.prompt) / best[e], best[0] / best[e], options.dtypes[0]);
  }
}

// Batch-1 decode of the 16-bit dtypes after a --prompt-token prompt, their KV cache read in
// place against gathered (copied) every step, one after the other within each dtype.
void print_cache_reads(const BenchOptions& options) {
  fmt::print("\nbatch-1 decode after a prompt of {} tokens, 16-bit KV cache:\n", options.prompt);
  fmt::print("{:<6} {:>22} {:>20} {:>8}\n", "dtype", "gathered copy tok/s", "in place tok/s",
             "ratio");
  for (const std::string dtype : {"fp16", "bf16"}) {
    auto engine = engine_for(options, dtype);
    const double copied = phase_rates(*engine, options, 1, true).decode;
    const double in_place = phase_rates(*engine, options, 1).decode;
    fmt::print("{:<6} {:>22.0f} {:>20.0f} {:>7.2f}x\n", dtype, copied, in_place, in_place / copied);
  }
}

void print_generation_lengths(const BenchOptions& options) {
  auto engine = engine_for(options, "fp32");
  fmt::print("\ngreedy generation with the paged KV cache (fp32, batch 1, prompt of 1 token):\n");
  fmt::print("{:>7} {:>10} {:>12}\n", "tokens", "seconds", "ms a token");
  for (int64_t tokens : {64, 256, 1024}) {
    std::vector<double> seconds;
    for (int64_t repeat = 0; repeat < options.repeats; ++repeat) {
      seconds.push_back(
          seconds_of([&] { engine->generate({{.prompt = {1}, .max_new_tokens = tokens}}); }));
    }
    const double taken = fastest(seconds);
    fmt::print("{:>7} {:>10.3f} {:>12.3f}\n", tokens, taken, 1e3 * taken / double(tokens));
  }
}

void print_batching(const BenchOptions& options) {
  auto engine = engine_for(options, "fp32");
  std::mt19937 lengths(11);
  std::uniform_int_distribution<int64_t> length(8, options.max_mixed);
  std::vector<inference::GenerationRequest> requests;
  int64_t new_tokens = 0;
  for (int64_t i = 0; i < options.requests; ++i) {
    inference::GenerationRequest request;
    const int64_t prompt_length = length(lengths);
    for (int64_t t = 0; t < prompt_length; ++t) request.prompt.push_back((i + t * 5) % 256);
    request.max_new_tokens = length(lengths);
    new_tokens += request.max_new_tokens;
    requests.push_back(request);
  }
  std::vector<double> continuous_seconds, static_seconds;
  std::vector<inference::Completion> continuous, batched;
  int64_t continuous_steps = 0, static_steps = 0;
  for (int64_t repeat = 0; repeat < options.repeats; ++repeat) {
    continuous_seconds.push_back(seconds_of([&] { continuous = engine->generate(requests); }));
    continuous_steps = engine->last_steps();
    static_seconds.push_back(seconds_of(
        [&] { batched = engine->generate(requests, {}, inference::Batching::static_batches); }));
    static_steps = engine->last_steps();
  }
  bool same = true;
  for (size_t i = 0; i < requests.size(); ++i)
    same = same && continuous[i].tokens == batched[i].tokens;
  const double continuous_rate = double(new_tokens) / fastest(continuous_seconds);
  const double static_rate = double(new_tokens) / fastest(static_seconds);
  fmt::print(
      "\n{} requests (prompts and outputs of 8..{} tokens, {} new tokens), batch width 8, fp32:\n",
      requests.size(), options.max_mixed, new_tokens);
  fmt::print("  continuous batching: {:.0f} tokens/s ({} steps)\n", continuous_rate,
             continuous_steps);
  fmt::print("  static batches:      {:.0f} tokens/s ({} steps)\n", static_rate, static_steps);
  fmt::print("  continuous / static: {:.2f}x; identical tokens per request: {}\n",
             continuous_rate / static_rate, same ? "yes" : "NO");
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, kCommandLine, [&](const apps::Flags& flags) { options = read_options(flags); });
  if (status) return *status;
  try {
    fmt::print(
        "GPT-2 {} layers, {} heads, width {}, context {}, byte vocabulary; prompt {}, {} decode "
        "steps; fastest of {}; {} clock\n",
        options.config.n_layer, options.config.n_head, options.config.n_embd,
        options.config.block_size, options.prompt, options.decode, options.repeats,
        cpu_clock ? "cpu" : "wall");
    auto wanted = [&](const char* part) {
      return options.parts.find(fmt::format(",{},", part)) != std::string::npos;
    };
    if (wanted("dtypes")) print_dtype_table(options);
    if (wanted("prefill")) print_prefill_comparison(options);
    if (wanted("cache16")) print_cache_reads(options);
    if (wanted("lengths")) print_generation_lengths(options);
    if (wanted("batching")) print_batching(options);
    return 0;
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/inference: {}\n", error.what());
    return 1;
  }
}
