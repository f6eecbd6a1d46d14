// CsvMonitor: DeepSpeed's csv_monitor. Each event name ("Train/Samples/train_loss") has its
// own file, OUTPUT_PATH/JOB_NAME/Train_Samples_train_loss.csv, with the header
// "step,train_loss" and one row "x,value" per logged value (x: global samples, as DeepSpeed's
// engine logs them). Rank 0 writes; rows are kept and each file rewritten under a temporary
// name and renamed at every flush, so a reader never sees half a row.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "observe/observe_config.h"
#include "observe/scalar_monitor.h"

namespace zt::observe {

class CsvMonitor : public ScalarMonitor {
 public:
  // Makes OUTPUT_PATH/JOB_NAME (output_path "" means "csv_monitor", as DeepSpeed's default
  // folder); std::runtime_error naming the folder when it cannot.
  explicit CsvMonitor(const MonitorConfig& config);

  void write_event(const std::string& name, double value, int64_t x) override;
  void flush() override;
  const std::string& folder() const { return folder_; }
  // The file of an event name: '/' and ' ' become '_'.
  std::string file_of(const std::string& name) const;

 private:
  std::string folder_;
  std::map<std::string, std::vector<std::pair<int64_t, double>>> rows_;
  std::map<std::string, size_t> flushed_rows_;
};

}  // namespace zt::observe
