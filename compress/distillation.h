// Knowledge distillation: a frozen teacher (evaluation mode, parameters that never require a
// gradient, called without recording a graph, so it holds no gradients and no optimizer
// state) and the loss that trains a student towards it:
//   CE(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)),
// the KL term averaged over the batch (T^2 keeps its gradient's scale independent of T).
// Next to a stage-3 student the teacher is partitioned the same way (dist/zero/frozen_stage3.h).
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "core/tensor.h"
#include "dist/config.h"
#include "nn/module.h"

namespace zt::dist {
class FrozenStage3Model;
}

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
  ~Teacher();
  Teacher(Teacher&&) noexcept;
  Teacher& operator=(Teacher&&) noexcept;
  // Keeps 1/N of the teacher's parameters on each of `data_parallel`'s ranks, as ZeRO stage 3
  // with `zero`'s thresholds; every later call is then collective over those ranks. Move the
  // model to its device first. `zero` and `data_parallel` must outlive the teacher.
  void partition_stage3(const dist::ZeroConfig& zero, comm::Communicator& data_parallel);
  bool partitioned() const { return frozen_ != nullptr; }
  // The teacher's outputs for `input`, with no graph recorded.
  Tensor operator()(const Tensor& input);
  // Whole until partition_stage3; afterwards its parameters are there only during a call.
  nn::Module& model() { return *model_; }
  // Parameter elements this rank holds between calls.
  int64_t resident_parameter_numel() const;

 private:
  std::shared_ptr<nn::Module> model_;
  std::unique_ptr<dist::FrozenStage3Model> frozen_;
};

}  // namespace zt::compress
