// Partitioned construction (dist/partitioned_init.h).
#include "dist/partitioned_init.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "core/partitioned_values.h"

namespace zt::dist {
namespace {

// Every rank cuts its slice from its own draw, so the draws must be the same stream: the
// default generators' (seed, offset) are gathered and compared (16 bytes a rank, once).
void check_generators_agree(comm::Communicator& data_parallel) {
  comm::Communicator& host = data_parallel.host_communicator();
  const Generator& generator = default_generator();
  std::vector<int64_t> mine{int64_t(generator.seed()), int64_t(generator.offset())};
  Tensor local = from_int64(mine, {2});
  Tensor all = zeros({int64_t(host.size()) * 2}, {.dtype = DType::i64, .tag = MemoryTag::comm});
  host.all_gather(local, all);
  const int64_t* states = all.data_ptr<int64_t>();
  for (int rank = 1; rank < host.size(); ++rank) {
    if (states[2 * rank] == states[0] && states[2 * rank + 1] == states[1]) continue;
    throw std::invalid_argument(fmt::format(
        "PartitionedInit: the ranks' default generators differ (rank 0: seed {} offset {}; rank "
        "{}: seed {} offset {}): every rank draws its slice of the same values, so call "
        "zt::manual_seed with one seed on every rank before building the model",
        uint64_t(states[0]), uint64_t(states[1]), rank, uint64_t(states[2 * rank]),
        uint64_t(states[2 * rank + 1])));
  }
}

void check_member(const std::string& name, const Tensor& parameter, const Tensor& first) {
  if (!is_floating(parameter.dtype())) {
    throw std::invalid_argument(fmt::format("PartitionedInit: parameter {} is {}, not floating",
                                            name, dtype_name(parameter.dtype())));
  }
  if (parameter.dtype() != first.dtype() || parameter.device() != first.device()) {
    throw std::invalid_argument(fmt::format(
        "PartitionedInit: parameter {} is {} on {}, but its module's others are {} on {}: one "
        "flat group holds one dtype on one device",
        name, dtype_name(parameter.dtype()), parameter.device().str(), dtype_name(first.dtype()),
        first.device().str()));
  }
}

std::string joined(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

PartitionedInit::PartitionedInit(comm::Communicator& data_parallel, const Config& config)
    : world_size_(data_parallel.size()), rank_(data_parallel.rank()) {
  const ZeroConfig& zero = config.zero_optimization;
  if (zero.stage != 3) {
    throw std::invalid_argument(fmt::format(
        "PartitionedInit: {}: zero_optimization.stage is {}; partitioned construction needs "
        "stage 3 (parameters partitioned)",
        config.source_name, zero.stage));
  }
  persistence_threshold_ = zero.stage3_param_persistence_threshold;
  model_persistence_threshold_ = zero.stage3_model_persistence_threshold;
  slices_in_host_memory_ = zero.offload_param.enabled();
  check_generators_agree(data_parallel);
  open();
}

PartitionedInit::PartitionedInit(comm::Communicator& data_parallel, const ZeroConfig& zero)
    : world_size_(data_parallel.size()),
      rank_(data_parallel.rank()),
      persistence_threshold_(zero.stage3_param_persistence_threshold),
      model_persistence_threshold_(zero.stage3_model_persistence_threshold),
      slices_in_host_memory_(zero.offload_param.enabled()) {
  check_generators_agree(data_parallel);
  open();
}

PartitionedInit::PartitionedInit(int world_size, int rank, int64_t persistence_threshold)
    : world_size_(world_size), rank_(rank), persistence_threshold_(persistence_threshold) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw std::invalid_argument(fmt::format(
        "PartitionedInit: rank {} of world size {}: expected 0 <= rank < world size >= 1", rank,
        world_size));
  }
  open();
}

void PartitionedInit::open() {
  if (nn::construction_observer() != nullptr) {
    throw std::logic_error(
        "PartitionedInit: another construction scope is open on this thread; scopes do not "
        "nest");
  }
  previous_ = nn::set_construction_observer(this);
  open_ = true;
}

PartitionedInit::~PartitionedInit() {
  if (!open_) return;
  try {
    close();
  } catch (...) {
    // The roots' own parameters stay whole; the engine partitions them as it would anyway.
    nn::set_construction_observer(previous_);
  }
}

void PartitionedInit::close() {
  if (!open_) return;
  open_ = false;
  nn::set_construction_observer(previous_);
  std::vector<nn::Module*> roots = pending_;
  pending_.clear();
  for (nn::Module* root : roots) finish_module(*root, "", nullptr);
  // The names a user sees in errors: dotted from each outermost module.
  for (nn::Module* parent : parents_) {
    if (children_.contains(parent)) continue;
    for (auto& [name, parameter] : parent->named_parameters()) {
      if (!is_partitioned(parameter)) continue;
      PartitionedValues& values = *parameter.impl()->partitioned;
      values.name = name;
      if (values.offset == 0) {
        size_t dot = name.rfind('.');
        values.group->module_name = dot == std::string::npos ? "" : name.substr(0, dot);
      }
    }
  }
}

void PartitionedInit::parameter_registered(nn::Module& module, const std::string& name,
                                           const Tensor& parameter) {
  if (finished_.contains(&module) && !planned_already(parameter)) {
    throw std::logic_error(fmt::format(
        "PartitionedInit: {} registered parameter '{}' after its parent registered it; inside "
        "a partitioned construction scope a module's parameters are partitioned when its "
        "parent adopts it, so register them in its constructor",
        module.type_name(), name));
  }
  if (std::find(pending_.begin(), pending_.end(), &module) == pending_.end() &&
      !finished_.contains(&module))
    pending_.push_back(&module);
}

void PartitionedInit::child_registered(nn::Module& parent, const std::string& name,
                                       nn::Module& child) {
  parents_.insert(&parent);
  children_.insert(&child);
  if (finished_.contains(&child)) return;  // one module under two parents: cut once
  std::erase(pending_, &child);
  finish_module(child, name, &parent);
}

void PartitionedInit::module_destroyed(const nn::Module& module) noexcept {
  std::erase(pending_, &module);
  finished_.erase(&module);
  parents_.erase(const_cast<nn::Module*>(&module));
  children_.erase(&module);
}

bool PartitionedInit::planned_already(const Tensor& parameter) const {
  if (is_partitioned(parameter)) return true;
  auto kept = kept_whole_.find(parameter.impl());
  return kept != kept_whole_.end() && kept->second.lock().get() == parameter.impl();
}

void PartitionedInit::finish_module(nn::Module& module, const std::string& module_name,
                                    const nn::Module* parent) {
  finished_.insert(&module);
  NamedTensors parent_own = parent ? parent->named_parameters(false) : NamedTensors{};
  auto parent_registered = [&parent_own](const Tensor& parameter) {
    return std::any_of(parent_own.begin(), parent_own.end(),
                       [&](const auto& entry) { return entry.second.is_same(parameter); });
  };
  NamedTensors members;
  int64_t numel = 0;
  for (auto& [name, parameter] : module.named_parameters(false)) {
    if (planned_already(parameter) || parent_registered(parameter)) continue;
    std::string full_name = joined(module_name, name);
    if (!members.empty())
      check_member(full_name, parameter, members.front().second);
    else
      check_member(full_name, parameter, parameter);
    members.emplace_back(full_name, parameter);
    numel += parameter.numel();
  }
  if (members.empty()) return;
  if (numel <= persistence_threshold_ &&
      numel <= model_persistence_threshold_ - kept_whole_numel_) {
    kept_whole_numel_ += numel;
    for (auto& [name, parameter] : members) kept_whole_[parameter.impl()] = parameter.impl_ptr();
    ++groups_kept_whole_;
    return;
  }
  autograd::NoGradGuard no_grad;
  const DType dtype = members.front().second.dtype();
  const Device device = members.front().second.device();
  auto group = std::make_shared<PartitionedGroup>();
  group->numel = numel;
  group->world_size = world_size_;
  group->rank = rank_;
  group->padded_numel = (numel + world_size_ - 1) / world_size_ * world_size_;
  group->module_name = module_name;
  // With offload_param the engine keeps the slices in host memory: build them there, so a
  // model larger than the device can be built at all.
  const MemoryTag tag =
      slices_in_host_memory_ && device.is_cpu() ? MemoryTag::param_offload : MemoryTag::param;
  group->owned = zeros({group->slice_numel()}, {.dtype = dtype, .device = device, .tag = tag});
  int64_t offset = 0;
  for (auto& [name, parameter] : members) {
    auto values = std::make_shared<PartitionedValues>();
    values->group = group;
    values->offset = offset;
    values->numel = parameter.numel();
    values->name = name;
    Tensor part = values->owned_part();
    if (part.numel() > 0) {
      Tensor flat = ops::reshape(parameter, {values->numel});
      ops::copy_(part, ops::narrow(flat, 0, values->owned_first(), part.numel()));
    }
    offset += values->numel;
    make_partitioned(parameter, std::move(values), dtype, device);
  }
  ++groups_partitioned_;
}

}  // namespace zt::dist
