// The module tracer's hooks: forward spans from a start-time stack per module, backward spans
// from one gradient hook per tensor on the outputs and inputs of each call.
#include "observe/module_tracer.h"

#include <fmt/format.h>

#include "autograd/grad_mode.h"
#include "observe/trace_recorder.h"

namespace zt::observe {

namespace {

void add_span(const std::string& name, std::string_view category, double start_us, double end_us) {
  TraceRecorder::instance().add(TraceEvent{.name = name,
                                           .category = std::string(category),
                                           .track = TraceTrack::compute,
                                           .start_us = start_us,
                                           .duration_us = end_us - start_us});
}

void end_span(ModuleTracer::BackwardSpan& span, double now_us) {
  if (span.ended || span.start_us < 0) return;
  span.ended = true;
  add_span(span.name, "backward", span.start_us, now_us);
}

}  // namespace

ModuleTracer::ModuleTracer(nn::Module& model) {
  for (auto& [name, module] : model.named_modules()) {
    auto traced = std::make_unique<Traced>();
    traced->module = module.get();
    traced->name = fmt::format("{} ({})", name.empty() ? "model" : name, module->type_name());
    Traced* raw = traced.get();
    raw->hook_handles.push_back(module->register_forward_hook(
        [this, raw](nn::Module&, const nn::TensorList& inputs, const nn::TensorList& outputs) {
          if (TraceRecorder::recording() && !raw->forward_starts.empty())
            leave(*raw, inputs, outputs);
        }));
    traced_.push_back(std::move(traced));
  }
}

void ModuleTracer::register_pre_hooks() {
  for (auto& traced : traced_) {
    Traced* raw = traced.get();
    raw->hook_handles.push_back(
        raw->module->register_forward_pre_hook([raw](nn::Module&, const nn::TensorList&) {
          if (TraceRecorder::recording())
            raw->forward_starts.push_back(TraceRecorder::instance().now_us());
        }));
  }
}

ModuleTracer::~ModuleTracer() {
  for (auto& traced : traced_) {
    for (int64_t handle : traced->hook_handles) traced->module->remove_hook(handle);
  }
}

ModuleTracer::TensorEvents& ModuleTracer::events_of(const Tensor& tensor) {
  Hooked& hooked = hooked_tensors_[tensor.impl()];
  if (hooked.events) return *hooked.events;
  hooked.tensor = tensor;
  auto events = hooked.events = std::make_shared<TensorEvents>();
  tensor.register_hook([events](const Tensor&) {
    double now_us = TraceRecorder::instance().now_us();
    for (auto& span : events->ends) end_span(*span, now_us);
    for (auto& span : events->starts) {
      if (span->start_us < 0) span->start_us = now_us;
    }
    return Tensor();
  });
  return *events;
}

void ModuleTracer::leave(Traced& traced, const nn::TensorList& inputs,
                         const nn::TensorList& outputs) {
  double start_us = traced.forward_starts.back();
  traced.forward_starts.pop_back();
  add_span(traced.name, "forward", start_us, TraceRecorder::instance().now_us());
  if (!autograd::is_grad_enabled()) return;
  auto span = std::make_shared<BackwardSpan>(BackwardSpan{.name = traced.name});
  bool any_output = false;
  for (const Tensor& output : outputs) {
    if (!output.defined() || !output.requires_grad()) continue;
    any_output = true;
    events_of(output).starts.push_back(span);
  }
  if (!any_output) return;
  bool any_input = false;
  for (const Tensor& input : inputs) {
    if (!input.defined() || !input.requires_grad()) continue;
    any_input = true;
    events_of(input).ends.push_back(span);
  }
  if (!any_input) open_backward_.push_back(span);
}

void ModuleTracer::end_backward() {
  // In the order their forwards ended, innermost first: each ends a moment before the modules
  // that enclose it, so the spans nest.
  for (auto& span : open_backward_) end_span(*span, TraceRecorder::instance().now_us());
  open_backward_.clear();
  hooked_tensors_.clear();
}

}  // namespace zt::observe
