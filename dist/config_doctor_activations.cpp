// See dist/config_doctor_activations.h. The replay follows what autograd keeps: an op's saved
// input and masks live from its forward to its backward; its backward holds the output's
// gradient, the input's gradient and the weight's gradient at once.
#include "dist/config_doctor_activations.h"

#include <algorithm>

namespace zt::dist {

namespace {

int64_t kept_by(const ActivationOp& op) {
  return (op.keeps_input ? op.input_bytes : 0) + op.kept_bytes;
}

struct Replay {
  int64_t micro = 1;
  int64_t peak = 0;
  void at(int64_t per_sample, int64_t fixed = 0) {
    peak = std::max(peak, per_sample * micro + fixed);
  }
};

// Forward then backward of ops [begin, end) over `base` bytes per sample already live; with
// `grad` the forward keeps what backward reads (without, it is a checkpoint's no-grad run);
// `input_in_base`: base already holds the first op's input (a checkpoint's re-run).
int64_t forward_ops(Replay& replay, const std::vector<ActivationOp>& ops, size_t begin, size_t end,
                    int64_t base, bool grad, bool input_in_base = false) {
  int64_t live = base;
  int64_t stage_input = 0;  // held beyond what the ops keep
  for (size_t i = begin; i < end; ++i) {
    const ActivationOp& op = ops[i];
    const bool starts_stage = i == begin || op.stage != ops[i - 1].stage;
    if (starts_stage) stage_input = 0;
    replay.at(live + stage_input + op.input_bytes + op.kept_bytes + op.output_bytes);
    if (grad) live += kept_by(op);
    const bool held_elsewhere = (grad && op.keeps_input) || (i == begin && input_in_base);
    if (starts_stage) stage_input = held_elsewhere ? 0 : op.input_bytes;
  }
  return live;
}

// `rerun_output`: a checkpoint's backward holds its re-run's output (in the place of the
// gradient it was given) until every op of the segment has run backward.
void backward_ops(Replay& replay, const std::vector<ActivationOp>& ops, size_t begin, size_t end,
                  int64_t live, int64_t rerun_output = 0) {
  for (size_t i = end; i-- > begin;) {
    const ActivationOp& op = ops[i];
    int64_t grad_input = op.input_needs_grad ? op.input_bytes : 0;
    int64_t held = i + 1 < end ? rerun_output : 0;
    replay.at(live + held + op.output_bytes + grad_input, op.weight_grad_bytes);
    live -= kept_by(op);
  }
}

}  // namespace

int64_t predict_activation_peak(const std::vector<ActivationOp>& ops, int64_t micro_batch,
                                const ActivationCheckpointing& checkpointing) {
  Replay replay{.micro = micro_batch};
  if (ops.empty()) return 0;
  const int64_t logits = ops.back().output_bytes;
  if (!checkpointing.enabled) {
    int64_t live = forward_ops(replay, ops, 0, ops.size(), 0, true);
    backward_ops(replay, ops, 0, ops.size(), live + logits);
    return replay.peak;
  }
  // Segment boundaries: [starts[s], starts[s + 1]).
  std::vector<size_t> starts;
  for (size_t i = 0; i < ops.size(); ++i)
    if (i == 0 || ops[i].segment != ops[i - 1].segment) starts.push_back(i);
  starts.push_back(ops.size());
  const size_t segments = starts.size() - 1;
  // A segment's input on the device between forward and its backward (none when the checkpoint
  // moved it to the host).
  auto held = [&](size_t s) {
    return checkpointing.cpu_checkpointing ? int64_t(0) : ops[starts[s]].input_bytes;
  };
  int64_t checkpoints = 0;
  for (size_t s = 0; s < segments; ++s) {
    forward_ops(replay, ops, starts[s], starts[s + 1], checkpoints, false);
    checkpoints += held(s);
  }
  for (size_t s = segments; s-- > 0;) {
    checkpoints -= held(s);
    // The re-run holds the segment's input (copied back from the host) as its first op's
    // saved input; its last op's backward holds the gradient of the segment's output.
    int64_t base = checkpoints + logits;
    int64_t input_copy = ops[starts[s]].keeps_input ? 0 : ops[starts[s]].input_bytes;
    int64_t live =
        forward_ops(replay, ops, starts[s], starts[s + 1], base + input_copy, true, true);
    backward_ops(replay, ops, starts[s], starts[s + 1], live, ops[starts[s + 1] - 1].output_bytes);
  }
  return replay.peak;
}

std::vector<ActivationOp> mnist_cnn_activations(const MnistCnnShape& shape, int64_t element_bytes,
                                                int64_t segments) {
  const int64_t b = element_bytes;
  const int64_t conv1_out = shape.conv1 * 26 * 26, conv2_out = shape.conv2 * 24 * 24;
  const int64_t pooled = shape.conv2 * 12 * 12;
  // Images arrive in f32: the engine's cast to a 2-byte model dtype is an activation, the f32
  // images the caller's own.
  const int64_t images = element_bytes == 4 ? 0 : 28 * 28 * b;
  std::vector<ActivationOp> ops = {
      {"conv1", images, conv1_out * b, true, 0, false, (9 * shape.conv1 + shape.conv1) * b, 0},
      {"relu1", conv1_out * b, conv1_out * b, true, 0, true, 0, 0},
      {"conv2", conv1_out * b, conv2_out * b, true, 0, true,
       (9 * shape.conv1 * shape.conv2 + shape.conv2) * b, 1},
      {"relu2", conv2_out * b, conv2_out * b, true, 0, true, 0, 1},
      // Max-pooling keeps i64 indices, dropout a byte mask.
      {"pool", conv2_out * b, pooled * b, false, pooled * 8, true, 0, 2},
      {"dropout1", pooled * b, pooled * b, false, pooled, true, 0, 2},
      {"fc1", pooled * b, shape.fc1 * b, true, 0, true, (pooled * shape.fc1 + shape.fc1) * b, 3},
      {"relu3", shape.fc1 * b, shape.fc1 * b, true, 0, true, 0, 3},
      {"dropout2", shape.fc1 * b, shape.fc1 * b, false, shape.fc1, true, 0, 3},
      {"fc2", shape.fc1 * b, 10 * b, true, 0, true, (shape.fc1 * 10 + 10) * b, 4}};
  // run_stages: min(segments, 5) groups of 5 / groups stages, the last taking the remainder.
  const int64_t groups = std::min<int64_t>(std::max<int64_t>(segments, 1), 5);
  const int64_t per_group = 5 / groups;
  for (ActivationOp& op : ops) {
    op.stage = op.segment;
    op.segment = int(std::min(op.segment / per_group, groups - 1));
  }
  return ops;
}

}  // namespace zt::dist
