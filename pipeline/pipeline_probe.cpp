// PipelineEngine::probe_shapes: every virtual stage runs its layers once, in order, on zeros
// shaped like what the previous one produced, so that a stage whose layers cannot take the
// previous stage's outputs is found at build time with one line on every rank, instead of
// failing (or hanging the others) in the first batch.
#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "pipeline/pipeline_engine.h"
#include "pipeline/stage_transfer.h"

namespace zt::pipeline {

namespace {
constexpr int kProbeTag = 2048;
constexpr int64_t kMessageBytes = 1024;
}  // namespace

void PipelineEngine::probe_shapes(const Tensor& probe_input) {
  const int total = shape_.virtual_stages();
  std::string problem;
  int failed_at = total;
  module_->eval();  // no dropout draws
  PendingSends pending;
  for (int vs = 0; vs < total; ++vs) {
    const StageChunk at = stage_chunk_of(shape_, vs);
    if (at.stage != stage_) continue;
    const int previous = vs > 0 ? stage_chunk_of(shape_, vs - 1).stage : -1;
    const int following = vs + 1 < total ? stage_chunk_of(shape_, vs + 1).stage : -1;
    TransferHeader outgoing{.status = 1};
    Tensor input = probe_input;
    TransferHeader incoming;
    if (vs > 0) {
      incoming = recv_header(*control_, previous, kProbeTag);
      if (incoming.status == 0) input = zeros(incoming.sizes, {.dtype = incoming.dtype});
    }
    if (incoming.status == 0) {
      try {
        NoGradGuard no_grad;
        Tensor output = module_->forward_chunk(at.chunk, input);
        outgoing = {.status = 0, .dtype = output.dtype(), .sizes = output.sizes()};
      } catch (const std::exception& error) {
        std::vector<int> layers = module_->chunk_layers(at.chunk);
        problem = fmt::format(
            "pipeline: stage {} (layers {}-{}, the first a {}) cannot take {}, {} {}: {}", stage_,
            layers.front(), layers.back(), module_->specs()[size_t(layers.front())].type_name,
            vs == 0 ? "the first layer's input" : fmt::format("the output of stage {}", previous),
            dtype_name(input.dtype()), shape_str(input.sizes()), error.what());
        failed_at = vs;
      }
    }
    if (following >= 0) send_header(*control_, outgoing, following, kProbeTag, pending);
  }
  wait_all(pending);
  module_->train();
  Tensor first_failure = full({1}, double(failed_at), {.dtype = DType::i64});
  control_->all_reduce(first_failure, comm::ReduceOperation::min);
  const int first = int(first_failure.item());
  if (first == total) return;
  Tensor message = zeros({kMessageBytes}, {.dtype = DType::u8});
  if (first == failed_at)
    std::memcpy(message.data_ptr<uint8_t>(), problem.data(),
                std::min(problem.size(), size_t(kMessageBytes - 1)));
  control_->broadcast(message, stage_chunk_of(shape_, first).stage);
  throw std::invalid_argument(
      std::string(reinterpret_cast<const char*>(message.data_ptr<uint8_t>())));
}

}  // namespace zt::pipeline
