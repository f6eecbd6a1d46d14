// Host staging of device tensors (see host_staging.h).
#include "comm/host_staging.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "comm/mpi_runtime.h"
#include "core/allocator.h"
#include "core/ops/view.h"
#include "core/storage.h"

namespace zt::comm {
namespace {

// Pinned memory for copies of device tensors (the copies are DMA, with no bounce buffer in the
// driver); pageable when none is registered, and for host tensors (staged only by tests).
Storage staging_storage(size_t bytes, Device staged_from) {
  Allocator* pinned = pinned_host_allocator();
  bool use_pinned = pinned != nullptr && staged_from.is_cuda();
  return std::make_shared<StorageImpl>(bytes, use_pinned ? *pinned : cpu_allocator(),
                                       MemoryTag::comm);
}

// A tensor laid out like `like`, at element `offset` of host `storage`.
Tensor host_view(const Storage& storage, const Tensor& like, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage;
  impl->sizes = like.sizes();
  impl->strides = like.strides();
  impl->offset = offset;
  impl->dtype = like.dtype();
  return Tensor(std::move(impl));
}

bool reads(StagedAccess access) {
  return access != StagedAccess::writes;
}
bool writes(StagedAccess access) {
  return access != StagedAccess::reads;
}

// Copies the results back once the host call has completed; holds the staging until then.
class StagedWork final : public Work {
 public:
  StagedWork(std::unique_ptr<Work> host_work, HostStaging staging)
      : host_work_(std::move(host_work)), staging_(std::move(staging)) {}
  ~StagedWork() override {
    if (!staging_) return;
    try {
      wait();
    } catch (const std::exception& error) {  // a destructor can't throw; the group is unusable
      abort_distributed_job(
          fmt::format("{} (in an unfinished Work being destroyed)", error.what()));
    }
  }

  void wait() override {
    if (!staging_) return;
    host_work_->wait();
    finish();
  }

  bool test() override {
    if (!staging_) return true;
    if (!host_work_->test()) return false;
    finish();
    return true;
  }

 private:
  void finish() {
    HostStaging staging = std::move(*staging_);
    staging_.reset();  // done, even when the copy back throws
    staging.copy_back();
  }

  std::unique_ptr<Work> host_work_;
  std::optional<HostStaging> staging_;  // empty once the results are back on the device
};

}  // namespace

HostStaging::HostStaging(std::initializer_list<StagedTensor> tensors) {
  for (const StagedTensor& staged : tensors) {
    device_tensors_.push_back(staged.device_tensor);
    accesses_.push_back(staged.access);
  }
  // Tensors over one device storage (and of one dtype, so that element offsets carry over)
  // share a host buffer spanning all of them: leader[i] is the first tensor of i's group.
  size_t count = device_tensors_.size();
  std::vector<size_t> leader(count);
  std::vector<int64_t> span_begin(count), span_end(count);  // in elements, for leaders
  for (size_t i = 0; i < count; ++i) {
    const Tensor& tensor = device_tensors_[i];
    leader[i] = i;
    for (size_t j = 0; j < i; ++j) {
      if (device_tensors_[j].storage() == tensor.storage() &&
          device_tensors_[j].dtype() == tensor.dtype()) {
        leader[i] = leader[j];
        break;
      }
    }
    size_t group = leader[i];
    int64_t begin = tensor.storage_offset(), end = begin + tensor.numel();
    span_begin[group] = group == i ? begin : std::min(span_begin[group], begin);
    span_end[group] = group == i ? end : std::max(span_end[group], end);
  }
  std::vector<Storage> group_storage(count);
  for (size_t i = 0; i < count; ++i) {
    if (leader[i] != i) continue;
    group_storage[i] =
        staging_storage(size_t(span_end[i] - span_begin[i]) * device_tensors_[i].element_size(),
                        device_tensors_[i].device());
  }
  for (size_t i = 0; i < count; ++i) {
    size_t group = leader[i];
    host_tensors_.push_back(host_view(group_storage[group], device_tensors_[i],
                                      device_tensors_[i].storage_offset() - span_begin[group]));
  }
  for (size_t i = 0; i < count; ++i) {
    if (reads(accesses_[i])) ops::copy_(host_tensors_[i], device_tensors_[i]);
  }
}

void HostStaging::copy_back() const {
  for (size_t i = 0; i < device_tensors_.size(); ++i) {
    if (writes(accesses_[i])) ops::copy_(device_tensors_[i], host_tensors_[i]);
  }
}

void run_on_host(std::initializer_list<StagedTensor> tensors,
                 const std::function<void(const HostStaging&)>& host_call) {
  HostStaging staging(tensors);
  host_call(staging);
  staging.copy_back();
}

std::unique_ptr<Work> run_async_on_host(
    std::initializer_list<StagedTensor> tensors,
    const std::function<std::unique_ptr<Work>(const HostStaging&)>& host_call) {
  HostStaging staging(tensors);
  std::unique_ptr<Work> host_work = host_call(staging);
  return std::make_unique<StagedWork>(std::move(host_work), std::move(staging));
}

}  // namespace zt::comm
