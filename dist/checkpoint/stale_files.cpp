#include "dist/checkpoint/stale_files.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <string_view>
#include <system_error>

#include "core/crash_test_switch.h"
#include "core/error.h"

namespace dtrain::dist {

namespace {

bool all_of_kind(std::string_view text, bool (*accepts)(char)) {
  return !text.empty() && std::all_of(text.begin(), text.end(), accepts);
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// Strips a ".tmp.<pid>" ending, if there is one.
std::string_view without_temporary_suffix(std::string_view name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string_view::npos || !all_of_kind(name.substr(at + 5), is_digit)) return name;
  return name.substr(0, at);
}

bool is_shard_name(std::string_view name) {
  // "rank-" 5 digits "-of-" 5 digits [ "." 16 hex digits ] ".safetensors"
  constexpr std::string_view kSuffix = ".safetensors";
  if (name.size() < 19 + kSuffix.size() || name.substr(0, 5) != "rank-" || name.substr(10, 4) != "-of-" ||
      !all_of_kind(name.substr(5, 5), is_digit) || !all_of_kind(name.substr(14, 5), is_digit) ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  std::string_view middle = name.substr(19, name.size() - 19 - kSuffix.size());
  return middle.empty() || (middle.size() == 17 && middle[0] == '.' && all_of_kind(middle.substr(1), is_hex_digit));
}

}  // namespace

bool is_sharded_checkpoint_file_name(const std::string& file_name) {
  std::string_view name = without_temporary_suffix(file_name);
  return name == kCheckpointIndexFileName || is_shard_name(name);
}

std::vector<std::filesystem::path> stale_checkpoint_files(const std::filesystem::path& dir,
                                                          const CheckpointIndex& kept) {
  std::set<std::string> named{kCheckpointIndexFileName};
  for (const IndexedFile& file : kept.files) named.insert(file.name);
  std::vector<std::filesystem::path> stale;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (named.count(name) == 0 && is_sharded_checkpoint_file_name(name) && !entry.is_directory(error)) {
      stale.push_back(entry.path());
    }
  }
  if (error) fail("listing the sharded checkpoint directory '", dir.string(), "' failed: ", error.message());
  std::sort(stale.begin(), stale.end());
  return stale;
}

void remove_stale_checkpoint_files(const std::filesystem::path& dir, const CheckpointIndex& kept) {
  for (const std::filesystem::path& file : stale_checkpoint_files(dir, kept)) {
    if (::unlink(file.c_str()) != 0) {
      if (errno == ENOENT) continue;
      fail("removing '", file.string(), "', a file of an earlier save that the new index does not name, failed: ",
           std::strerror(errno));
    }
    checkpoint_file_operation("remove", file);
  }
}

}  // namespace dtrain::dist
