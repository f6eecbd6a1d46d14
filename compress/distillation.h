// Knowledge distillation: a frozen teacher (evaluation mode, parameters that never require a
// gradient, called without recording a graph, so it holds no gradients and no optimizer
// state) and the loss that trains a student towards it:
//   CE(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)),
// the KL term averaged over the batch (T^2 keeps its gradient's scale independent of T).
#pragma once

#include <memory>

#include "core/tensor.h"
#include "nn/module.h"

namespace zt::compress {

struct DistillationOptions {
  double alpha = 1.0;        // weight of the teacher term
  double temperature = 2.0;  // T > 0
};

// The teacher's logits come in detached; gradients flow only into `student_logits` [N, C].
Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                         const Tensor& labels, const DistillationOptions& options);

class Teacher {
 public:
  // Freezes `model` (eval mode, requires_grad off on every parameter).
  explicit Teacher(std::shared_ptr<nn::Module> model);
  // The teacher's outputs for `input`, with no graph recorded.
  Tensor operator()(const Tensor& input);
  nn::Module& model() { return *model_; }

 private:
  std::shared_ptr<nn::Module> model_;
};

}  // namespace zt::compress
