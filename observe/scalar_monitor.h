// ScalarMonitor: what the engine's monitors (csv_monitor, tensorboard) have in common, as
// DeepSpeed's Monitor: named scalar events at an x (global samples), written out at flush.
#pragma once

#include <cstdint>
#include <string>

namespace zt::observe {

class ScalarMonitor {
 public:
  virtual ~ScalarMonitor() = default;
  // Keeps `value` of the event `name` ("Train/Samples/train_loss") at `x`.
  virtual void write_event(const std::string& name, double value, int64_t x) = 0;
  // Writes what was kept to the monitor's files (a temporary name, then renamed);
  // std::runtime_error naming the file when it cannot.
  virtual void flush() = 0;
};

}  // namespace zt::observe
