// The CSV monitor's files.
#include "observe/csv_monitor.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace zt::observe {

CsvMonitor::CsvMonitor(const MonitorConfig& config) {
  namespace fs = std::filesystem;
  fs::path base =
      config.output_path.empty() ? fs::path("csv_monitor") : fs::path(config.output_path);
  folder_ = (base / config.job_name).string();
  std::error_code error;
  fs::create_directories(folder_, error);
  if (error || !fs::is_directory(folder_))
    throw std::runtime_error(fmt::format("csv_monitor: cannot make the folder {} ({})", folder_,
                                         error ? error.message() : "not a folder"));
}

std::string CsvMonitor::file_of(const std::string& name) const {
  std::string file = name;
  for (char& c : file) {
    if (c == '/' || c == ' ') c = '_';
  }
  return (std::filesystem::path(folder_) / (file + ".csv")).string();
}

void CsvMonitor::write_event(const std::string& name, double value, int64_t x) {
  rows_[name].emplace_back(x, value);
}

void CsvMonitor::flush() {
  for (const auto& [name, rows] : rows_) {
    if (flushed_rows_[name] == rows.size()) continue;
    std::string path = file_of(name);
    std::string temporary = path + ".tmp";
    {
      std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
      file << "step," << name.substr(name.rfind('/') + 1) << "\n";
      for (const auto& [x, value] : rows) file << fmt::format("{},{}\n", x, value);
      if (!file.flush())
        throw std::runtime_error(fmt::format("csv_monitor: cannot write {}", temporary));
    }
    std::filesystem::rename(temporary, path);
    flushed_rows_[name] = rows.size();
  }
}

}  // namespace zt::observe
