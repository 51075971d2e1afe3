#include "train/checkpoint_rotation.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dtrain::train {

namespace {

constexpr const char* kIndexFileName = "index.json";

// The step of a "step-<digits>" directory name.
std::optional<int64_t> step_of(const std::string& name) {
  if (name.size() <= 5 || name.compare(0, 5, "step-") != 0) return std::nullopt;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10) return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

struct StepDirectory {
  int64_t step;
  std::filesystem::path path;
  bool complete;
};

// Every step directory under root, newest first.
std::vector<StepDirectory> step_directories(const std::filesystem::path& root) {
  std::vector<StepDirectory> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    std::optional<int64_t> step = step_of(entry.path().filename().string());
    if (!step || !entry.is_directory(error)) continue;
    found.push_back({*step, entry.path(), std::filesystem::exists(entry.path() / kIndexFileName, error)});
  }
  std::sort(found.begin(), found.end(), [](const StepDirectory& a, const StepDirectory& b) { return a.step > b.step; });
  return found;
}

}  // namespace

std::filesystem::path rotated_checkpoint_dir(const std::filesystem::path& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return root / name;
}

std::optional<std::filesystem::path> newest_rotated_checkpoint(const std::filesystem::path& root) {
  for (const StepDirectory& directory : step_directories(root)) {
    if (directory.complete) return directory.path;
  }
  return std::nullopt;
}

void remove_old_rotated_checkpoints(const std::filesystem::path& root, int64_t keep) {
  int64_t complete_seen = 0;
  for (const StepDirectory& directory : step_directories(root)) {
    if (directory.complete) ++complete_seen;
    // Newer than every complete one: a save in progress elsewhere, or a crashed one to leave for now.
    if (complete_seen == 0) continue;
    if (directory.complete && complete_seen <= keep) continue;
    std::error_code error;
    std::filesystem::remove(directory.path / kIndexFileName, error);
    if (!error) std::filesystem::remove_all(directory.path, error);
    if (error) {
      fail("removing the old checkpoint '", directory.path.string(), "' (--keep-checkpoints ", keep,
           ") failed: ", error.message());
    }
  }
}

}  // namespace dtrain::train
