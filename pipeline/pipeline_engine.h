// PipelineEngine: DeepSpeed's pipeline engine. Each rank of the grid runs one stage of one data
// replica: it builds its PipelineModule, wraps it in a ZeRO engine over its data group (stages
// 0, 1 and 2) and runs train_batch(): the schedule's instruction list for its stage, whose
// micro-batches are the config's gradient_accumulation_steps. Activations go to the next
// stage and gradients back by asynchronous sends and receives posted ahead (each RecvActivation
// and RecvGrad waits for its posted receive); at the end of the batch the tied layers'
// gradients are summed between the stages that hold them, then the data-parallel reduction
// (once per batch, also at stage 2, which DeepSpeed refuses with pipelining) and the update.
// The loss of each micro-batch is divided by the micro-batch count (DeepSpeed's averaging), so
// a step equals one process's step on the whole global batch.
// With a tensor axis (grid.shape().tensor > 1, config.tensor_parallel_size the same), the specs
// are tensor-parallel layers (gpt_layer_specs(config, grid.tensor_group())): the ranks of a
// tensor group run the same stage in step, each on its shards, the ZeRO engine gets the tensor
// group, and each tensor rank sends its (replicated) activations to the same tensor rank of the
// next stage. With pipe_partitioned (grad_partitioned), DeepSpeed's defaults, it sends only its
// 1/tp slice of each activation (gradient) and the receivers all-gather the slices over their
// tensor group (pipeline/partitioned_transfer.h); without, each sends the whole tensor.
// fp16 (with loss scaling) and bf16 train the stages in 16 bits with fp32 masters, as the
// engine does; gradient_clipping clips by the norm over every stage and tensor shard, each
// parameter counted once (a tied copy once), and an fp16 overflow skips the step on every
// stage. Not supported (refused at construction with one line): ZeRO stage 3.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "dist/config.h"
#include "dist/engine.h"
#include "pipeline/pipeline_module.h"
#include "pipeline/schedule.h"

namespace zt::pipeline {

struct MicroBatch {
  Tensor inputs;  // read on the first stage
  Tensor labels;  // read on the last stage
};
// Called once per micro-batch on the stages that load it (first and last), in order.
using MicroBatchSource = std::function<MicroBatch()>;
// The last stage's loss of one micro-batch: (outputs, labels) -> a scalar.
using LossFunction = std::function<Tensor(const Tensor& outputs, const Tensor& labels)>;

// One executed instruction of the last batch, for the bubble measurement.
struct InstructionTiming {
  Instruction instruction;
  double start_seconds = 0.0, end_seconds = 0.0;  // since the batch began
};

class PipelineEngine {
 public:
  // Collective over grid.world(). config.world_size is the data-parallel size; its pipeline
  // block gives the partition method, the checkpoint interval and the schedule, and its stages
  // (when not "auto") must be the grid's pipeline size. `probe_input`: an input of the first
  // layer (one micro-batch or smaller) that every stage's layers are run on once, under no
  // grad, to check that each stage's outputs fit the next stage's layers. Throws
  // std::invalid_argument with one line, the same on every rank, when they do not, or for
  // more virtual stages than layers; std::invalid_argument for a refused config.
  // `whole_model_weights`: when given, each stage starts from its part of them (names of the
  // whole model, LayerSpec::state_prefix; a tensor rank takes its shards), as a model built on
  // one process would.
  PipelineEngine(const dist::Config& config, const LayerSpecs& specs, LossFunction loss,
                 const Tensor& probe_input, comm::ProcessGrid& grid,
                 const NamedTensors* whole_model_weights = nullptr);
  ~PipelineEngine();

  // One optimizer step over gradient_accumulation_steps micro-batches from `next` (every rank
  // calls it; the first and last stages read from `next`). Returns the batch's mean loss over
  // its micro-batches and the data-parallel replicas, on every rank.
  double train_batch(const MicroBatchSource& next);
  // The same forward passes without gradients or update: the mean loss.
  double eval_batch(const MicroBatchSource& next);

  // The model's weights as one file per layer (pipeline/layer_checkpoint.h): the first
  // data-parallel replica of each stage writes its layers. Collective over the world.
  void save_layer_checkpoint(const std::string& dir);
  // Every rank reads its stage's layers; a file that is missing or does not fit on any rank
  // is a std::runtime_error on every rank (naming it where it failed). Collective.
  void load_layer_checkpoint(const std::string& dir);

  // This stage's weights whole (shards joined over the tensor group) under the whole model's
  // names, in host memory. Collective over the tensor group.
  NamedTensors whole_model_weights();

  int stage() const { return stage_; }
  int stages() const { return shape_.stages; }
  const ScheduleShape& schedule_shape() const { return shape_; }
  PipelineModule& module() { return *module_; }
  dist::Engine& engine() { return *engine_; }
  // Activations and gradients between stages (data-carrying sends and receives only).
  comm::Communicator& pipeline_communicator() { return grid_.pipeline_group(); }
  // The stages holding a tied key's copies, which sum their gradients once a batch.
  comm::Communicator& tied_communicator(const std::string& key) { return *tied_groups_.at(key); }
  const std::vector<InstructionTiming>& last_timeline() const { return timeline_; }

 private:
  struct Buffers;
  void check_config(const dist::Config& config) const;
  void probe_shapes(const Tensor& probe_input);
  void make_tied_groups();
  std::set<std::string> tied_copies_counted_elsewhere() const;
  void synchronize_tied_parameters();
  void reduce_tied_gradients();
  Tensor gather_slices(const Tensor& slice, const Shape& sizes);
  void post_activation_receives(const std::vector<Instruction>& list, Buffers& buffers);
  double run_schedule(const std::vector<Instruction>& list, const MicroBatchSource& next,
                      bool training);
  void execute(const Instruction& instruction, Buffers& buffers, const MicroBatchSource& next,
               bool training);
  int peer_rank(const Instruction& instruction) const;
  int peer_chunk(const Instruction& instruction) const;
  void agree_or_throw(const std::string& problem, const std::string& what);

  comm::ProcessGrid& grid_;
  ScheduleShape shape_;
  int stage_ = 0;
  LossFunction loss_;
  std::shared_ptr<PipelineModule> module_;
  std::unique_ptr<comm::Communicator> control_;       // headers, losses (pipeline group)
  std::unique_ptr<comm::Communicator> data_control_;  // losses over the data group
  std::map<std::string, std::unique_ptr<comm::Communicator>> tied_groups_;  // by tied key
  std::unique_ptr<dist::Engine> engine_;
  std::vector<InstructionTiming> timeline_;
  // Slices per boundary activation and gradient: the tensor size with pipe_partitioned and
  // grad_partitioned, else 1.
  int activation_parts_ = 1, grad_parts_ = 1;
};

}  // namespace zt::pipeline
