#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

#include "core/crash_test_switch.h"
#include "core/error.h"

namespace dtrain {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

std::filesystem::path directory_of(const std::filesystem::path& path) {
  std::filesystem::path directory = path.parent_path();
  return directory.empty() ? std::filesystem::path(".") : directory;
}

// Whether a process of that id runs on this host (EPERM: it runs, as another user).
bool process_runs(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Removes what writers of path that no longer run left behind.
void remove_stale_temporaries(const std::filesystem::path& path, const std::string& where) {
  const std::string target = path.filename().string();
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory_of(path), error)) {
    const std::optional<pid_t> pid = temporary_file_pid(entry.path().filename().string(), target);
    if (!pid || *pid == ::getpid() || process_runs(*pid)) continue;
    if (::unlink(entry.path().c_str()) != 0) {
      if (errno == ENOENT) continue;  // another writer removed it first
      fail(where, ": the file is written, but removing the stale temporary '", entry.path().string(),
           "' left by a crashed save failed: ", errno_text(errno));
    }
    checkpoint_file_operation("remove", entry.path());
  }
}

}  // namespace

std::string temporary_file_name(const std::string& name, pid_t pid) {
  return name + ".tmp." + std::to_string(pid);
}

std::optional<pid_t> temporary_file_pid(const std::string& file_name, const std::string& target_name) {
  const std::string prefix = target_name + ".tmp.";
  if (file_name.size() <= prefix.size() || file_name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const char* digits = file_name.data() + prefix.size();
  const char* end = file_name.data() + file_name.size();
  pid_t pid = 0;
  auto [stop, failure] = std::from_chars(digits, end, pid);
  if (failure != std::errc() || stop != end || pid <= 0) return std::nullopt;
  return pid;
}

void sync_directory(const std::filesystem::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (synced) checkpoint_file_operation("fsync", directory);
}

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path, std::string where)
    : path_(std::move(path)), where_(std::move(where)) {
  temporary_ = path_;
  temporary_.replace_filename(temporary_file_name(path_.filename().string(), ::getpid()));
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(where_, ": cannot create the temporary file '", temporary_.string(), "': ", errno_text(errno));
  checkpoint_file_operation("create", temporary_);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temporary_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t length) {
  const char* bytes = static_cast<const char*>(data);
  while (length > 0) {
    const ssize_t written = ::write(fd_, bytes, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail(where_, ": writing '", temporary_.string(), "' failed: ", errno_text(errno));
    }
    bytes += written;
    length -= static_cast<size_t>(written);
    bytes_written_ += static_cast<uint64_t>(written);
  }
}

void AtomicFileWriter::pwrite(const void* data, size_t length, uint64_t offset) {
  const char* bytes = static_cast<const char*>(data);
  while (length > 0) {
    const ssize_t written = ::pwrite(fd_, bytes, length, static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      fail(where_, ": writing '", temporary_.string(), "' failed: ", errno_text(errno));
    }
    bytes += written;
    offset += static_cast<uint64_t>(written);
    length -= static_cast<size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  checkpoint_file_operation("write", temporary_);  // every byte handed to the kernel
  if (::fsync(fd_) != 0) fail(where_, ": fsync of '", temporary_.string(), "' failed: ", errno_text(errno));
  checkpoint_file_operation("fsync", temporary_);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail(where_, ": closing '", temporary_.string(), "' failed: ", errno_text(errno));
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    fail(where_, ": renaming '", temporary_.string(), "' over it failed: ", errno_text(errno));
  }
  committed_ = true;
  checkpoint_file_operation("rename", path_);
  sync_directory(directory_of(path_));
  remove_stale_temporaries(path_, where_);
}

}  // namespace dtrain
