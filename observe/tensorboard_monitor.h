// TensorboardMonitor: DeepSpeed's tensorboard monitor. One TensorBoard event file,
// OUTPUT_PATH/JOB_NAME/events.out.tfevents.SECONDS.HOST.PID.N (output_path "" puts it in JOB_NAME,
// as DeepSpeed's os.path.join does): TFRecord framing (length, masked CRC-32C of the length, the
// Event message, masked CRC-32C of the message) around protobuf Events, the file version first,
// then one scalar summary per logged value at step x. Rank 0 writes; the records are kept and
// the file rewritten under a temporary name and renamed at every flush.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "observe/observe_config.h"
#include "observe/scalar_monitor.h"

namespace zt::observe {

class TensorboardMonitor : public ScalarMonitor {
 public:
  // Makes the folder; std::runtime_error naming it when it cannot.
  explicit TensorboardMonitor(const MonitorConfig& config);

  void write_event(const std::string& name, double value, int64_t x) override;
  void flush() override;
  const std::string& path() const { return path_; }

 private:
  std::string path_, temporary_path_;
  std::string records_;  // every framed record so far
  size_t flushed_bytes_ = 0;
};

// One TFRecord: the 8-byte little-endian length, its masked CRC-32C, `payload`, its masked
// CRC-32C.
std::string tfrecord_frame(std::string_view payload);

}  // namespace zt::observe
