// gpt_train's command line: its flag table (the parser's and --help's one source) and the
// options read from it. The model's shape flags carry GPTConfig's field names (n_layer, n_head,
// n_embd, block_size, as GPT-2's config.json and nanoGPT spell them); the run's flags are
// spelled like mnist_train's. Everything here is checked before MPI starts.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string>

#include "apps/cli_flags.h"
#include "apps/config_doctor_flags.h"
#include "apps/deepspeed_flags.h"
#include "apps/trace_flags.h"
#include "models/gpt_config.h"

namespace zt::apps {

struct GptTrainOptions {
  models::GPTConfig model;
  int64_t steps = 0;      // the schedule's length
  int64_t stop_step = 0;  // where this run stops (--max-steps, else steps)
  int64_t eval_interval = 0, eval_iters = 0, log_interval = 0;
  int64_t batch_size = 0;  // per rank, without --deepspeed_config
  double lr = 0.0;         // the program's optimizer's, and "auto"'s
  std::string optimizer;   // adam, adamw or sgd: where the config has no optimizer block
  double weight_decay = 0.0;
  std::string data_dir, text_dir;
  int64_t validation_every = 10;
  uint64_t seed = 0;
  std::string save_path;         // the trained model (rank 0), "" for none
  std::string save_dir;          // "": no checkpoints
  int64_t save_every = 0;        // 0: at each evaluation
  std::string save_16bit_model;  // engine.save_16bit_model's file (every rank calls), "" for none
  bool resume = false;
  std::string device;
  // --device-memory-mib: each rank's device allocations are refused past it (0: no limit).
  double device_memory_mib = 0.0;
  DeepSpeedArgs deepspeed;
  DoctorOptions doctor;  // --explain-config
  TraceOptions trace;    // --trace DIR, --trace-steps A:B
  // --print-schedule: the pipeline schedule's shape.
  bool print_schedule = false;
  int64_t pipeline_parallel_size = 1, virtual_stages = 1, micro_batches = 4;
  int64_t tensor_parallel_size = 1;  // --tensor-parallel-size
  bool sequence_parallel = false;    // --sequence-parallel
  // --compression-config, --teacher, --distill-* (apps/gpt_compression.h).
  std::string compression_config, teacher;
  double distill_alpha = 1.0, distill_temperature = 2.0;
  std::string load_layers;  // a pipeline layer checkpoint to start from, "" for none
};

inline const CommandLine& gpt_train_command_line() {
  static const CommandLine command_line = [] {
    CommandLine table{
        "gpt_train",
        "Trains a GPT on byte-level text (Debian's fortunes by default) with the ZeroTrain\n"
        "engine, on one process or many (mpirun -np N gpt_train --deepspeed --deepspeed_config\n"
        "configs/gpt_stage3_bf16.json). Without --deepspeed_config: ZeRO stage 0, AdamW,\n"
        "--batch-size windows per rank per step, lr warmed up to --lr and decayed to 0.",
        {
            {"architecture", "gpt2|llama", "gpt2", "the block layout"},
            {"n_layer", "N", "6", "transformer blocks"},
            {"n_head", "N", "6", "attention heads"},
            {"n_embd", "N", "384", "model width"},
            {"block_size", "T", "256", "context: tokens per training window"},
            {"dropout", "P", "0", "dropout of embeddings, attention and residual branches"},
            {"attention-impl", "fused|eager", "fused",
             "dense attention by the fused kernel, or by composed ops that keep the T x T "
             "scores for the backward (PyTorch's eager attention, the baseline of "
             "docs/sparse_attention.md's memory comparison)"},
            {"steps", "N", "2000", "optimizer steps to train (counted from 0, also on --resume)"},
            {"max-steps", "N", "",
             "stop after optimizer step N (the schedule still spans --steps); 0 saves the "
             "initial model",
             "--steps"},
            {"eval-interval", "N", "200", "validation loss every N steps (and after the last)"},
            {"eval-iters", "N", "20", "validation batches per rank per evaluation"},
            {"log-interval", "N", "10", "training loss and tokens/s every N steps"},
            {"batch-size", "N", "16", "windows per rank per step (without --deepspeed_config)"},
            {"lr", "LR", "0.001",
             "the program's optimizer's peak learning rate; \"auto\" in a config takes it"},
            {"data-dir", "DIR", "data/fortunes",
             "where the token file is, prepared there once from --text-dir"},
            {"text-dir", "DIR", "/usr/share/games/fortunes",
             "fortune files ('%' lines between entries) to prepare the token file from"},
            {"validation-every", "N", "10", "hold out one document in N for validation"},
            {"seed", "S", "1", "seed of the initial weights, dropout and data order"},
            {"save", "PATH", "gpt_model.safetensors",
             "the trained model, written by rank 0 (safetensors, f32; gpt_generate --model)"},
            {"save-dir", "DIR", "", "engine checkpoints go in DIR", "none, no checkpoints"},
            {"save-every", "N", "", "checkpoint every N optimizer steps", "at each evaluation"},
            {"save-16bit-model", "PATH", "",
             "the trained weights in the training dtype, whole (engine.save_16bit_model; at "
             "ZeRO stage 3 with stage3_gather_16bit_weights_on_model_save)",
             "none"},
            {"resume", "", "", "continue from the checkpoint that DIR/latest names"},
            {"device", "cpu|cuda", "cpu", "cuda: each rank on GPU (local rank % GPU count)"},
            {"device-memory-mib", "M", "",
             "each rank's device memory: an allocation past M MiB (allocator accounting; "
             "offloaded state not counted) stops the run with the out-of-memory error naming "
             "the limit, as a GPU of that size would",
             "no limit"},
            {"pipeline-parallel-size", "N", "1",
             "pipeline stages: the GPT trains through the pipeline engine (docs/pipeline.md), the "
             "world divided into stages x data replicas"},
            {"tensor-parallel-size", "N", "1",
             "tensor-parallel ranks: each layer split across N ranks (Megatron's layout, "
             "docs/tensor_parallel.md), trained through the pipeline engine; with "
             "--pipeline-parallel-size, a pipeline x tensor x data grid"},
            {"sequence-parallel", "", "",
             "Megatron's sequence parallelism on the tensor axis: the norms and dropout run on "
             "1/N of the tokens (docs/tensor_parallel.md); needs --tensor-parallel-size N > 1 "
             "and a block_size that N divides"},
            {"load-layers", "DIR", "",
             "start a pipeline run from the weights of a layer checkpoint (DIR/global_stepN)",
             "none"},
            {"virtual-stages", "V", "1",
             "model chunks per stage: > 1 interleaves (--print-schedule)"},
            {"micro-batches", "M", "4",
             "micro-batches of the printed schedule; of a pipeline step without "
             "--deepspeed_config"},
            {"print-schedule", "", "",
             "print the pipeline schedule of each stage as a table (docs/pipeline.md) and exit"},
        }};
    for (const FlagSpec& flag : std::vector<FlagSpec>{
             {"compression-config", "FILE", "",
              "a JSON file whose compression_training block compresses the GPT while it trains "
              "(head pruning, QAT, pruning, layer_reduction); the model is then cleaned and "
              "saved smaller next to --save",
              "the ds_config's block, if any"},
             {"teacher", "FILE", "", "distil from this trained GPT (gpt_train --save)",
              "none, no distillation"},
             {"distill-alpha", "A", "1", "weight of the teacher's KL term"},
             {"distill-temperature", "T", "2", "softmax temperature of distillation"}})
      table.flags.push_back(flag);
    for (const FlagSpec& flag : optimizer_flags("adamw", "0.1")) table.flags.push_back(flag);
    for (const FlagSpec& flag : deepspeed_flags()) table.flags.push_back(flag);
    for (const FlagSpec& flag : config_doctor_flags()) table.flags.push_back(flag);
    for (const FlagSpec& flag : trace_flags()) table.flags.push_back(flag);
    return table;
  }();
  return command_line;
}

inline GptTrainOptions read_gpt_train_options(const Flags& flags) {
  GptTrainOptions options;
  options.model.architecture = models::parse_architecture(flags.get_choice("architecture"));
  options.model.vocab_size = 256;  // byte tokens
  options.model.n_layer = flags.get_int("n_layer", 1);
  options.model.n_head = flags.get_int("n_head", 1);
  options.model.n_embd = flags.get_int("n_embd", 1);
  options.model.block_size = flags.get_int("block_size", 1);
  options.model.dropout = flags.get_double("dropout", -std::numeric_limits<double>::infinity());
  if (options.model.dropout < 0.0 || options.model.dropout >= 1.0) {
    throw FlagError(fmt::format("--dropout: expected a number in [0, 1), got '{}'",
                                flags.get_string("dropout")));
  }
  options.model.bias = options.model.architecture == models::Architecture::gpt2;
  options.model.eager_attention = flags.get_choice("attention-impl") == "eager";
  options.model.validate();
  options.steps = flags.get_int("steps", 1);
  options.stop_step = flags.has("max-steps")
                          ? std::min(options.steps, flags.get_int("max-steps", 0))
                          : options.steps;
  options.eval_interval = flags.get_int("eval-interval", 1);
  options.eval_iters = flags.get_int("eval-iters", 1);
  options.log_interval = flags.get_int("log-interval", 1);
  options.batch_size = flags.get_int("batch-size", 1);
  options.lr = flags.get_double("lr", 0.0);
  options.optimizer = flags.get_choice("optimizer");
  options.weight_decay = flags.get_non_negative_double("weight-decay");
  options.data_dir = flags.get_string("data-dir");
  options.text_dir = flags.get_string("text-dir");
  options.validation_every = flags.get_int("validation-every", 2);
  options.seed = uint64_t(flags.get_int("seed", 0));
  options.save_path = flags.get_string("save");
  options.save_dir = flags.get_string("save-dir");
  options.save_16bit_model = flags.get_string("save-16bit-model");
  if (flags.has("save-every")) options.save_every = flags.get_int("save-every", 1);
  options.resume = flags.has("resume");
  options.device = flags.get_choice("device");
  if (flags.has("device-memory-mib"))
    options.device_memory_mib = flags.get_double("device-memory-mib", 0.0);
  for (const char* needs_dir : {"save-every", "resume"}) {
    if (flags.has(needs_dir) && options.save_dir.empty())
      throw FlagError(fmt::format("--{} needs --save-dir DIR", needs_dir));
  }
  options.pipeline_parallel_size = flags.get_int("pipeline-parallel-size", 1);
  options.tensor_parallel_size = flags.get_int("tensor-parallel-size", 1);
  options.sequence_parallel = flags.has("sequence-parallel");
  options.virtual_stages = flags.get_int("virtual-stages", 1);
  options.micro_batches = flags.get_int("micro-batches", 1);
  options.print_schedule = flags.has("print-schedule");
  options.load_layers = flags.get_string("load-layers");
  options.deepspeed = deepspeed_args(flags);
  options.doctor = read_doctor_options(flags);
  options.trace = read_trace_options(flags);
  options.compression_config = flags.get_string("compression-config");
  options.teacher = flags.get_string("teacher");
  options.distill_alpha = flags.get_non_negative_double("distill-alpha");
  options.distill_temperature = flags.get_double("distill-temperature", 0.0);
  if (!(options.distill_temperature > 0.0)) {
    throw FlagError(
        fmt::format("--distill-temperature: expected T > 0, got {}", options.distill_temperature));
  }
  return options;
}

}  // namespace zt::apps
