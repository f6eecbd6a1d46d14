// The output checks that run before training: a writable target passes and leaves nothing
// behind, a folder output is created, and every unwritable path fails with the flag, the path
// and the reason in words.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "apps/output_paths.h"
#include "tests/io/temp_dir.h"

using namespace zt;
namespace fs = std::filesystem;

namespace {

std::string error_of(void (*check)(const std::string&, const std::string&), const std::string& flag,
                     const std::string& path) {
  try {
    check(flag, path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "(no error)";
}

size_t entries_in(const fs::path& folder) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(folder)) ++count;
  return count;
}

}  // namespace

TEST_CASE("a writable output passes, and the probe leaves nothing behind") {
  testing::TempDir dir;
  apps::check_output_file("--save", dir.file("model.safetensors"));
  apps::check_output_folder("--save-dir", dir.file("ckpt/run1"));
  CHECK(fs::is_directory(dir.file("ckpt/run1")));
  CHECK(entries_in(dir.path()) == 1);  // ckpt only
  CHECK(entries_in(dir.file("ckpt/run1")) == 0);
  CHECK_FALSE(fs::exists(dir.file("model.safetensors")));
}

TEST_CASE("an output in a folder that takes no files fails with the flag, path and reason") {
  testing::TempDir dir;
  // /proc takes no new files, for root too.
  CHECK(error_of(apps::check_output_file, "--save", "/proc/nope.safetensors")
            .starts_with("--save /proc/nope.safetensors: cannot write in /proc: "));
  CHECK(error_of(apps::check_output_folder, "--save-dir", "/proc/ckpt")
            .starts_with("--save-dir /proc/ckpt: cannot create the folder: "));
  CHECK(error_of(apps::check_output_file, "--png", dir.file("missing/out.png")) ==
        "--png " + dir.file("missing/out.png") + ": cannot write in " + dir.file("missing") +
            ": No such file or directory");
  if (::geteuid() != 0) {  // root writes in a read-only folder regardless of its mode
    fs::create_directory(dir.file("read_only"));
    ::chmod(dir.file("read_only").c_str(), 0555);
    CHECK(error_of(apps::check_output_file, "--save", dir.file("read_only/m.safetensors")) ==
          "--save " + dir.file("read_only/m.safetensors") + ": cannot write in " +
              dir.file("read_only") + ": Permission denied");
    ::chmod(dir.file("read_only").c_str(), 0755);
  }
}

TEST_CASE("an output of the wrong kind is named as such") {
  testing::TempDir dir;
  testing::write_bytes(dir.file("a_file"), "x");
  CHECK(error_of(apps::check_output_file, "--save", dir.path().string()) ==
        "--save " + dir.path().string() + ": is a folder; expected the path of a file");
  CHECK(error_of(apps::check_output_folder, "--save-dir", dir.file("a_file")) ==
        "--save-dir " + dir.file("a_file") + ": exists and is not a folder");
  CHECK(error_of(apps::check_output_folder, "--save-dir", dir.file("a_file/sub"))
            .starts_with("--save-dir " + dir.file("a_file/sub") + ": cannot create the folder: "));
  CHECK(error_of(apps::check_output_file, "--save", "") == "--save: expected a file path, got ''");
}
