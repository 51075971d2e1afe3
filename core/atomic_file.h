#pragma once
// Writing a file so that a crash at any instant leaves at its path either the complete old file
// or the complete new one, never a mix or a torn write: the bytes go to "<path>.tmp.<pid>",
// which is fsynced, renamed over path, and the directory fsynced (so the rename itself survives
// a power cut). The next commit to the same path removes the temporaries that writers killed
// mid-write left behind (those whose process no longer runs on this host).
//
//   AtomicFileWriter file(path, "save_safetensors: '" + path.string() + "'");
//   file.write(bytes, length);   // any number of times; pwrite to patch what was written
//   file.commit();               // without it, the destructor removes the temporary
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace dtrain {

class AtomicFileWriter {
 public:
  // Creates the temporary; raises a dtrain::Error starting with `where` when it cannot.
  AtomicFileWriter(std::filesystem::path path, std::string where);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t length);
  // Overwrites bytes already written, at offset from the file's start.
  void pwrite(const void* data, size_t length, uint64_t offset);
  uint64_t bytes_written() const { return bytes_written_; }
  // fsync, close, rename over the path, fsync of the directory, then removal of stale
  // temporaries of the path.
  void commit();

  const std::filesystem::path& temporary() const { return temporary_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  std::string where_;
  int fd_ = -1;
  uint64_t bytes_written_ = 0;
  bool committed_ = false;
};

// "<name>.tmp.<pid>", the temporary file name AtomicFileWriter writes name through.
std::string temporary_file_name(const std::string& name, pid_t pid);
// The pid in a temporary's name, if file_name is a temporary of target_name.
std::optional<pid_t> temporary_file_pid(const std::string& file_name, const std::string& target_name);

// fsync of a directory, so the renames and removals in it are durable. Some file systems refuse
// it; the files themselves are safe by then, so that is not an error.
void sync_directory(const std::filesystem::path& directory);

}  // namespace dtrain
