// One trial of bench/offload.sh: does a GPT-2-like model of a given width train a few steps at
// ZeRO stage 3 under a per-rank DEVICE limit, with the offload that --offload names (none;
// optimizer_cpu: offload_optimizer cpu; cpu: offload_optimizer and offload_param cpu; nvme: both
// swapped to --nvme-path)? The limit holds from before construction: the model is built inside
// PartitionedInit, so no rank ever holds it whole. Success: rank 0 prints two lines
//   fit <offload> <width> <parameters> <construction peak> <device peak> <host peak> <step s>
//   peaks rank <r>: <tag> <MiB> ...
// for the rank whose device bytes peaked highest (bytes; device: what the limit holds, host:
// the host-resident tags of offloaded state and swap buffers; step s: the mean of the steps
// after the first). Running out of device memory throws OutOfMemoryError on some rank, and
// comm::run_distributed_main ends the whole job non-zero with the allocator's live bytes by tag.
// Flags: `offload --help`.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "dist/initialize.h"
#include "dist/partitioned_init.h"
#include "models/gpt.h"

using namespace zt;

namespace {

const apps::CommandLine kOffloadCommandLine{
    "bench/offload",
    "One trial of bench/offload.sh: does a GPT-2-like model of this width train at ZeRO stage 3\n"
    "with this offload under a per-rank device limit? Prints \"fit ...\" if it does.\n"
    "optimizer_cpu: offload_optimizer cpu; cpu, nvme: offload_optimizer and offload_param.",
    {
        {"offload", "none|optimizer_cpu|cpu|nvme", "none", "what is offloaded (see above)"},
        {"precision", "fp32|bf16", "fp32", "training precision (bf16: mixed, fp32 masters)"},
        {"width", "W", "64", "n_embd (a multiple of 8)"},
        {"layers", "L", "8", "transformer blocks"},
        {"batch", "B", "2", "sequences per rank per step"},
        {"limit-mib", "M", "64", "device memory limit per rank in MiB, from construction on"},
        {"steps", "K", "2", "training steps"},
        {"nvme-path", "DIR", "/tmp", "the folder nvme offload swaps to"},
        {"checkpoint", "none|layers|cpu", "none",
         "activation checkpointing of every block (cpu: the checkpoints in host memory)"},
    }};

constexpr int64_t kSequenceLength = 32;
constexpr int64_t kVocabulary = 256;

// nvme: every parameter slice in swap files (max_in_cpu 0) and the optimizer state swapped one
// sub-group of 2^20 elements at a time, so that host memory holds buffers, not the model.
std::string offload_blocks(const std::string& offload, const std::string& nvme_path) {
  if (offload == "none") return "";
  if (offload == "optimizer_cpu") return R"(, "offload_optimizer": {"device": "cpu"})";
  if (offload == "cpu")
    return R"(, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"})";
  return fmt::format(R"(, "sub_group_size": 1048576,
      "offload_optimizer": {{"device": "nvme", "nvme_path": "{0}"}},
      "offload_param": {{"device": "nvme", "nvme_path": "{0}", "max_in_cpu": 0}})",
                     nvme_path);
}

// Stage 3, threshold 0 (every module partitioned, so the measurement is of ZeRO itself),
// prefetch off and overlap off (buffers in flight would hold memory longer).
// checkpoint cpu: DeepSpeed's cpu_checkpointing (which its rules tie to partition_activations),
// each block's saved input in host memory under activation_offload.
std::string checkpointing_block(const std::string& checkpoint) {
  if (checkpoint != "cpu") return "";
  return R"("activation_checkpointing": {"partition_activations": true, "cpu_checkpointing": true},)";
}

dist::Config trial_config(const std::string& offload, const std::string& precision,
                          const std::string& nvme_path, const std::string& checkpoint,
                          int64_t batch, int world) {
  std::string text = fmt::format(R"({{
      "train_micro_batch_size_per_gpu": {}, "steps_per_print": 0, "bf16": {{"enabled": {}}}, {}
      "optimizer": {{"type": "Adam", "params": {{"lr": 0.001}}}},
      "zero_optimization": {{"stage": 3, "overlap_comm": false,
                            "stage3_param_persistence_threshold": 0,
                            "stage3_prefetch_bucket_size": 0{}}}
    }})",
                                 batch, precision == "bf16", checkpointing_block(checkpoint),
                                 offload_blocks(offload, nvme_path));
  return dist::parse_config(text, "offload_bench", world, nullptr);
}

models::GPTConfig model_config(int64_t width, int64_t layers) {
  models::GPTConfig config;
  config.vocab_size = kVocabulary;
  config.block_size = kSequenceLength;
  config.n_layer = layers;
  config.n_head = 4;
  config.n_embd = width;
  return config;
}

// Rank 0 prints the rank whose device bytes peaked highest (the one the limit binds first), then
// that rank's peak of each allocator tag (each tag's own peak, so they need not coincide).
void report(comm::MpiRuntime& runtime, const std::string& offload, int64_t width,
            int64_t parameters, int64_t construction_peak, double step_seconds,
            const MemoryStats& stats) {
  constexpr size_t kFields = 4 + kMemoryTagCount;
  std::array<double, kFields> mine{double(construction_peak), double(stats.device_peak_bytes),
                                   double(stats.total_peak_bytes - stats.device_peak_bytes),
                                   step_seconds};
  for (size_t tag = 0; tag < kMemoryTagCount; ++tag) mine[4 + tag] = double(stats.peak_bytes[tag]);
  Tensor local = from_values(mine, {int64_t(kFields)}, {.dtype = DType::f64});
  Tensor gathered = empty({runtime.size() * int64_t(kFields)}, {.dtype = DType::f64});
  runtime.world().all_gather(local, gathered);
  if (runtime.rank() != 0) return;
  std::vector<double> all = gathered.to_vector();
  size_t highest = 0;
  for (size_t r = 1; r < size_t(runtime.size()); ++r)
    if (all[r * kFields + 1] > all[highest * kFields + 1]) highest = r;
  const double* row = &all[highest * kFields];
  fmt::print("fit {} {} {} {} {} {} {:.3f}\n", offload, width, parameters, int64_t(row[0]),
             int64_t(row[1]), int64_t(row[2]), row[3]);
  std::string peaks = fmt::format("peaks rank {}:", highest);
  for (size_t tag = 0; tag < kMemoryTagCount; ++tag)
    if (row[4 + tag] > 0)
      peaks += fmt::format(" {} {:.1f}", memory_tag_name(MemoryTag(tag)), row[4 + tag] / 1048576);
  fmt::print("{} (MiB)\n", peaks);
}

struct TrialOptions {
  std::string offload, precision, nvme_path, checkpoint;
  int64_t width, layers, batch, limit_mib, steps;
};

int run_trial(comm::MpiRuntime& runtime, const TrialOptions& options) {
  // A config the engine refuses throws its one-line error, and the job ends non-zero.
  dist::Config config = trial_config(options.offload, options.precision, options.nvme_path,
                                     options.checkpoint, options.batch, runtime.size());
  MemoryAccounting& accounting = cpu_allocator().accounting();
  accounting.reset_peak();
  accounting.set_limit(options.limit_mib << 20);
  manual_seed(7);
  std::shared_ptr<models::GPT> model;
  {
    dist::PartitionedInit scope(runtime.world(), config);
    model = std::make_shared<models::GPT>(model_config(options.width, options.layers));
  }
  model->set_gradient_checkpointing(options.checkpoint != "none");
  const int64_t construction_peak = accounting.stats().device_peak_bytes;
  const int64_t parameters = model->num_parameters();
  Initialized initialized = initialize(runtime, config, model);
  dist::Engine& engine = *initialized.engine;
  std::vector<int64_t> stream(size_t(options.batch * (kSequenceLength + 1)));
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int64_t((i * 7 + 3) % kVocabulary);
  Tensor all = from_int64(stream, {options.batch, kSequenceLength + 1});
  Tensor tokens = ops::contiguous(ops::narrow(all, 1, 0, kSequenceLength));
  Tensor targets = ops::contiguous(ops::narrow(all, 1, 1, kSequenceLength));
  // The first step records the module order and makes the optimizer state: the step time is the
  // mean of the later ones (of the only one when --steps is 1).
  auto timed_from = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < options.steps; ++step) {
    if (step == 1) timed_from = std::chrono::steady_clock::now();
    Tensor logits = engine.forward(tokens);
    engine.backward(cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1})));
    engine.step();
  }
  const std::chrono::duration<double> timed = std::chrono::steady_clock::now() - timed_from;
  const double step_seconds = timed.count() / double(std::max<int64_t>(1, options.steps - 1));
  accounting.set_limit(0);  // the report allocates a little
  report(runtime, options.offload, options.width, parameters, construction_peak, step_seconds,
         accounting.stats());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  TrialOptions options{};
  std::optional<int> status =
      apps::read_command_line(argc, argv, kOffloadCommandLine, [&](const apps::Flags& flags) {
        options = {flags.get_choice("offload"),   flags.get_choice("precision"),
                   flags.get_string("nvme-path"), flags.get_choice("checkpoint"),
                   flags.get_int("width", 8),     flags.get_int("layers", 1),
                   flags.get_int("batch", 1),     flags.get_int("limit-mib", 1),
                   flags.get_int("steps", 1)};
      });
  if (status) return *status;
  return comm::run_distributed_main(
      argc, argv, [&](comm::MpiRuntime& runtime) { return run_trial(runtime, options); });
}
