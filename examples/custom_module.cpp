// docs/modules.md's example: the Classifier of classifier.h built, printed, hooked and trained
// with plain autograd and Adam. Exits 1 unless Affine computes what zt::linear does, every
// module's pre-hook fired on every call (children are called through operator()), and the
// trained model classifies 95% of held-out points.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>

#include "autograd/functions.h"
#include "core/factory.h"
#include "examples/blobs.h"
#include "examples/classifier.h"
#include "optim/adam.h"

int main() {
  zt::manual_seed(0);
  auto model = std::make_shared<examples::Classifier>(8, 32, 4);
  fmt::print("{}\n", model->repr());
  for (const auto& [name, parameter] : model->named_parameters())
    fmt::print("  {} {}\n", name, zt::shape_str(parameter.sizes()));

  // A pre-hook on every module, counting its calls: ZeRO stage 3 gathers a module's
  // parameters in such a hook, so it must fire for every child.
  std::map<std::string, int> calls;
  for (const auto& [name, module] : model->named_modules()) {
    module->register_forward_pre_hook(
        [&calls, name = name](zt::nn::Module&, const zt::nn::TensorList&) { ++calls[name]; });
  }

  zt::optim::Adam adam(zt::optim::single_group(model->parameters(), 0.01));
  for (int step = 0; step < 30; ++step) {
    examples::Blobs batch = examples::make_blobs(64, 8, 4, 100 + step);
    zt::nn::TensorList outputs = (*model)(batch.points, batch.labels);  // (logits, loss)
    adam.zero_grad();
    outputs[1].backward();
    adam.step();
  }
  examples::Blobs test = examples::make_blobs(512, 8, 4, 7);
  zt::Tensor logits = (*model)(test.points, zt::Tensor())[0];  // no targets: loss is None
  double accuracy = examples::accuracy(logits, test);

  zt::Tensor x = zt::randn({3, 8});
  double affine_error =
      zt::amax(zt::abs((*model->embed)(x)-zt::linear(x, model->embed->weight, model->embed->bias)))
          .item();
  bool every_call_hooked = calls.size() == 6;
  for (const auto& [name, count] : calls) {
    fmt::print("  {:<12} called {} times\n", name.empty() ? "(model)" : name, count);
    every_call_hooked = every_call_hooked && count == (name == "embed" ? 32 : 31);
  }
  fmt::print("Affine vs zt::linear: {:.1e}; test accuracy {:.1f}%\n", affine_error, 100 * accuracy);
  return affine_error <= 1e-6 && every_call_hooked && accuracy >= 0.95 ? 0 : 1;
}
