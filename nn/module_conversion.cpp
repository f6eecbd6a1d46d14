// Module::to: every parameter and buffer converted in place (dtype or device), so that every
// handle to them (the registry's, the subclass's members, an optimizer's) sees the new tensor.
#include "nn/module.h"

#include <fmt/format.h>

#include <functional>
#include <set>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/view.h"
#include "core/partitioned_values.h"

namespace zt::nn {

namespace {

// Replaces what `target`'s impl holds with `source`'s data, so that every handle to the impl
// (the registry's and the subclass member) sees the new values, dtype and storage.
void replace_in_place(const Tensor& target, const Tensor& source) {
  TensorImpl& impl = *target.impl();
  impl.storage = source.storage();
  impl.sizes = source.sizes();
  impl.strides = source.strides();
  impl.offset = source.storage_offset();
  impl.dtype = source.dtype();
}

// Replaces, in place, every parameter and buffer of `module` that `convert` returns another
// tensor for (it returns its argument to keep one), allocating under the tensor's own memory
// tag; a replaced parameter's gradient is dropped.
void convert_in_place(Module& module, const std::function<Tensor(const Tensor&)>& convert) {
  autograd::NoGradGuard no_grad;
  // A partitioned parameter's values are its group's slice: the slice is converted (once for
  // the group's several parameters) and the parameter takes the new dtype and device.
  std::set<PartitionedGroup*> converted_groups;
  auto replace_partitioned = [&](const Tensor& param) {
    PartitionedGroup& group = *param.impl()->partitioned->group;
    if (converted_groups.insert(&group).second) {
      // Slices built for parameter offload stay host memory (param_offload) through a dtype
      // conversion on the host; anything else is a device parameter.
      const bool host_slice =
          group.owned.device().is_cpu() && group.owned.storage()->tag() == MemoryTag::param_offload;
      Tensor converted = [&] {
        MemoryTagGuard same_tag(host_slice ? MemoryTag::param_offload : MemoryTag::param);
        return convert(group.owned);
      }();
      if (host_slice && !converted.device().is_cpu()) {
        Tensor on_device = empty(
            converted.sizes(),
            {.dtype = converted.dtype(), .device = converted.device(), .tag = MemoryTag::param});
        ops::copy_(on_device, converted);
        converted = on_device;
      }
      group.owned = converted;
    }
    if (group.owned.dtype() == param.dtype() && group.owned.device() == param.device()) return;
    param.set_grad(Tensor());
    make_partitioned(param, param.impl()->partitioned, group.owned.dtype(), group.owned.device());
  };
  auto replace = [&](const Tensor& tensor, bool is_param) {
    if (is_param && is_partitioned(tensor)) return replace_partitioned(tensor);
    MemoryTagGuard same_tag(tensor.storage()->tag());
    Tensor converted = convert(tensor);
    if (converted.impl() == tensor.impl()) return;
    if (is_param) tensor.set_grad(Tensor());
    replace_in_place(tensor, converted);
  };
  for (auto& [name, param] : module.named_parameters()) replace(param, true);
  for (auto& [name, buffer] : module.named_buffers()) replace(buffer, false);
}
}  // namespace

void Module::to(DType dtype) {
  if (!is_floating(dtype)) {
    throw std::invalid_argument(
        fmt::format("{}.to: {} is not a floating dtype", type_name(), dtype_name(dtype)));
  }
  convert_in_place(*this, [dtype](const Tensor& tensor) {
    return is_floating(tensor.dtype()) ? ops::to_dtype(tensor, dtype) : tensor;
  });
}

void Module::to(Device device) {
  convert_in_place(*this,
                   [device](const Tensor& tensor) { return ops::to_device(tensor, device); });
}

}  // namespace zt::nn
