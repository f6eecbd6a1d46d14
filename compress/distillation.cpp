// The distillation loss from the autograd ops (log_softmax, softmax, sum), and the frozen
// teacher.
#include "compress/distillation.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "dist/zero/frozen_stage3.h"

namespace zt::compress {

Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                         const Tensor& labels, const DistillationOptions& options) {
  if (!(options.temperature > 0.0) || !(options.alpha >= 0.0)) {
    throw std::invalid_argument(
        fmt::format("distillation: expected temperature > 0 and alpha >= 0, got T={} alpha={}",
                    options.temperature, options.alpha));
  }
  if (student_logits.sizes() != teacher_logits.sizes() || student_logits.dim() != 2) {
    throw std::invalid_argument(
        fmt::format("distillation: student logits {} and teacher logits {} must both be [N, C]",
                    shape_str(student_logits.sizes()), shape_str(teacher_logits.sizes())));
  }
  const double t = options.temperature;
  Tensor teacher = teacher_logits.detach();
  Tensor teacher_log_probs = log_softmax(div(teacher, t), 1);
  Tensor teacher_probs = exp(teacher_log_probs);
  Tensor student_log_probs = log_softmax(div(student_logits, t), 1);
  // KL(p_t || p_s) = sum p_t (log p_t - log p_s), averaged over the batch.
  Tensor kl = div(sum(mul(teacher_probs, sub(teacher_log_probs, student_log_probs))),
                  double(student_logits.size(0)));
  return add(cross_entropy(student_logits, labels), mul(kl, options.alpha * t * t));
}

Teacher::Teacher(std::shared_ptr<nn::Module> model) : model_(std::move(model)) {
  if (!model_) throw std::invalid_argument("Teacher: no model");
  model_->eval();
  for (const Tensor& parameter : model_->parameters()) parameter.set_requires_grad(false);
}

Teacher::~Teacher() = default;
Teacher::Teacher(Teacher&&) noexcept = default;
Teacher& Teacher::operator=(Teacher&&) noexcept = default;

void Teacher::partition_stage3(const dist::ZeroConfig& zero, comm::Communicator& data_parallel) {
  if (frozen_) throw std::logic_error("Teacher: already partitioned");
  frozen_ = std::make_unique<dist::FrozenStage3Model>(model_, zero, data_parallel);
}

Tensor Teacher::operator()(const Tensor& input) {
  if (frozen_) return frozen_->forward(input);
  NoGradGuard no_grad;
  return (*model_)(input).detach();
}

int64_t Teacher::resident_parameter_numel() const {
  if (frozen_) return frozen_->resident_parameter_numel();
  return model_->num_parameters();
}

}  // namespace zt::compress
