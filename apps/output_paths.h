// Output paths checked before the work that fills them, so that a model file, checkpoint folder
// or image that cannot be written is an error before the first training step, not after the
// last. Each check does the first thing the real write will do: a folder is created, and a
// temporary file is created and removed in the folder the output goes to (files are written to
// a temporary name there and renamed). Errors read "<flag> <path>: <reason in words>".
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace zt::apps {
namespace detail {

// Creates and removes a temporary file in `folder`; returns what went wrong, or "".
inline std::string probe_new_file(const std::filesystem::path& folder) {
  std::string probe = (folder / ".zerotrain-write-probe.XXXXXX").string();
  int fd = ::mkstemp(probe.data());
  if (fd < 0) return fmt::format("cannot write in {}: {}", folder.string(), std::strerror(errno));
  ::close(fd);
  if (::unlink(probe.c_str()) != 0) {
    return fmt::format("cannot remove the test file {}: {}", probe, std::strerror(errno));
  }
  return "";
}

}  // namespace detail

// A file to be written at `path`: not a folder, and its folder (which must exist) takes new
// files. `flag` names where the path came from ("--save", "OUT").
inline void check_output_file(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& reason) {
    throw std::runtime_error(fmt::format("{} {}: {}", flag, path, reason));
  };
  if (path.empty()) throw std::runtime_error(fmt::format("{}: expected a file path, got ''", flag));
  std::error_code error;
  if (fs::is_directory(path, error)) fail("is a folder; expected the path of a file");
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  if (std::string problem = detail::probe_new_file(folder); !problem.empty()) fail(problem);
}

// A folder that outputs go into: created (with its parents) if missing, and takes new files.
inline void check_output_folder(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& reason) {
    throw std::runtime_error(fmt::format("{} {}: {}", flag, path, reason));
  };
  if (path.empty()) throw std::runtime_error(fmt::format("{}: expected a folder, got ''", flag));
  std::error_code error;
  if (fs::exists(path, error) && !fs::is_directory(path, error)) fail("exists and is not a folder");
  fs::create_directories(path, error);
  if (error) fail("cannot create the folder: " + error.message());
  if (std::string problem = detail::probe_new_file(path); !problem.empty()) fail(problem);
}

}  // namespace zt::apps
