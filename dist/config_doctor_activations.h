// The config doctor's activation prediction: a model told as the ops its forward runs (bytes per
// sample each keeps for backward, from the layer shapes), replayed forward then backward to find
// the peak of the allocator's `activation` bytes, with and without activation checkpointing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zt::dist {

// One op of the forward, in bytes per sample unless said otherwise.
struct ActivationOp {
  std::string name;
  int64_t input_bytes = 0;  // its gradient, made in backward, is as large
  int64_t output_bytes = 0;
  bool keeps_input = false;       // backward reads the input, so forward keeps it
  int64_t kept_bytes = 0;         // kept beyond the input: dropout masks, pooling indices
  bool input_needs_grad = true;   // false for the first op (images need no gradient)
  int64_t weight_grad_bytes = 0;  // fixed: the weight's gradient, made whole in activation
                                  // memory before the engine's reducer takes it
  int segment = 0;                // the checkpointed segment it runs in
  // The model's forward step it runs in (run_stages' stage): the step's input stays alive,
  // held by the caller, until the step's last op returns, even where no op keeps it.
  int stage = 0;
};

struct ActivationCheckpointing {
  bool enabled = false;            // each segment keeps only its input and re-runs in backward
  bool cpu_checkpointing = false;  // those inputs wait in host memory (not device bytes)
};

// The most device bytes the `activation` tag holds during one forward and backward of
// `micro_batch` samples: the logits stay until the loss's backward ends.
int64_t predict_activation_peak(const std::vector<ActivationOp>& ops, int64_t micro_batch,
                                const ActivationCheckpointing& checkpointing);

// PyTorch's MNIST CNN (apps/mnist_common.h) of the given widths in elements of
// `element_bytes` (inputs arrive in f32 and are cast when the model is not), its five stages
// run in `segments` checkpointed groups as run_stages splits them (0: none).
struct MnistCnnShape {
  int64_t conv1 = 32, conv2 = 64, fc1 = 128;
};
std::vector<ActivationOp> mnist_cnn_activations(const MnistCnnShape& shape, int64_t element_bytes,
                                                int64_t segments);

}  // namespace zt::dist
