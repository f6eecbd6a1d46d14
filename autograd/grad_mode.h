// Grad mode: whether differentiable ops record the graph. Thread-local, on by default.
// The backward engine turns it off while it runs, so backward functions record nothing;
// activation checkpointing turns it back on to re-run a forward inside backward.
#pragma once

namespace zt::autograd {

bool is_grad_enabled();
void set_grad_enabled(bool enabled);

// Sets grad mode for a scope and restores the previous mode when the scope ends.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// Records nothing in its scope, like torch.no_grad().
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

}  // namespace zt::autograd

namespace zt {
// The grad-mode names users reach for, as in the PyTorch C++ frontend.
using autograd::is_grad_enabled;
using autograd::NoGradGuard;
}  // namespace zt
