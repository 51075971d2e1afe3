#include "dist/checkpoint/sharded_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>

#include "core/error.h"
#include "core/ops/factory.h"
#include "core/safetensors.h"
#include "dist/checkpoint/block_checksum.h"
#include "dist/checkpoint/rank_agreement.h"

namespace dtrain::dist {

namespace {

std::string range_text(int64_t begin, int64_t end) { return detail::concat("[", begin, ", ", end, ")"); }

// A file opened for reading, closed on scope exit.
class ReadOnlyFile {
 public:
  ReadOnlyFile(const std::filesystem::path& path, const std::string& where) : where_(where) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(where_, ": cannot open it for reading: ", std::strerror(errno));
  }
  ~ReadOnlyFile() { ::close(fd_); }
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

  void read_at(uint64_t offset, char* destination, uint64_t length) const {
    while (length > 0) {
      ssize_t got = ::pread(fd_, destination, length, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(where_, ": read failed: ", std::strerror(errno));
      if (got == 0) fail(where_, ": the file ended early (did it change while being read?)");
      destination += got;
      offset += static_cast<uint64_t>(got);
      length -= static_cast<uint64_t>(got);
    }
  }

 private:
  std::string where_;
  int fd_ = -1;
};

}  // namespace

// A shard file whose header was read and found to belong to this checkpoint.
struct ShardedCheckpoint::CheckedShard {
  std::filesystem::path path;
  ShardMetadata metadata;
  std::map<std::string, uint64_t> data_offset;  // tensor name -> where its fragment's bytes start in the file
};

struct ShardedCheckpoint::ShardCache {
  std::mutex mutex;
  std::map<int, CheckedShard> shards;
};

ShardedCheckpoint::CheckedShard ShardedCheckpoint::check_shard(const CheckpointIndex& index,
                                                               const std::filesystem::path& dir, int rank) {
  CheckedShard shard;
  const IndexedFile& file = index.files[static_cast<size_t>(rank)];
  shard.path = dir / file.name;
  const std::string where = "shard file '" + shard.path.string() + "'";
  std::error_code error;
  if (!std::filesystem::exists(shard.path, error)) {
    fail(where, " does not exist (rank ", rank, " of the ", index.world_size, " ranks that saved step ", index.step,
         " wrote it; the index '", (dir / kCheckpointIndexFileName).string(), "' lists it)");
  }
  const uint64_t size = std::filesystem::file_size(shard.path, error);
  if (error) fail(where, ": cannot read its size: ", error.message());
  const std::string size_note = detail::concat(where, " is ", size, " bytes, but it was ", file.bytes,
                                               " bytes when saved (truncated, or changed since)");
  SafetensorsHeader header;
  try {
    header = read_safetensors_header(shard.path);
  } catch (const Error& raised) {
    if (size != file.bytes) fail(size_note, ": ", error_text(raised));
    throw;
  }
  shard.metadata = decode_shard_metadata(header.metadata, shard.path);
  if (shard.metadata.save_id != index.save_id || shard.metadata.step != index.step) {
    fail(where, " belongs to another save: it holds step ", shard.metadata.step, " (save id ", shard.metadata.save_id,
         "), but the index '", (dir / kCheckpointIndexFileName).string(), "' is of step ", index.step, " (save id ",
         index.save_id, "): a shard left over or copied from another checkpoint");
  }
  if (shard.metadata.rank != rank || shard.metadata.world_size != index.world_size) {
    fail(where, ": it is the shard of rank ", shard.metadata.rank, " of ", shard.metadata.world_size,
         ", expected rank ", rank, " of ", index.world_size);
  }
  if (size != file.bytes) fail(size_note);

  std::map<std::string, const SafetensorsEntry*> entries;
  for (const SafetensorsEntry& entry : header.entries) entries.emplace(entry.name, &entry);
  for (const auto& [name, tensor] : index.tensors) {
    for (const IndexedFragment& fragment : tensor.fragments) {
      if (fragment.rank != rank) continue;
      auto found = entries.find(name);
      const Shape expected{fragment.end - fragment.begin};
      if (found == entries.end()) {
        fail(where, ": tensor '", name, "' elements ", range_text(fragment.begin, fragment.end),
             " should be in it (says the index), but it has no such tensor");
      }
      if (found->second->dtype != tensor.dtype || found->second->shape != expected) {
        fail(where, ": tensor '", name, "' is ", found->second->shape, " ", found->second->dtype,
             " in it, but the index says ", expected, " ", tensor.dtype, " (elements ",
             range_text(fragment.begin, fragment.end), ")");
      }
      shard.data_offset[name] = header.buffer_offset + found->second->begin;
    }
  }
  return shard;
}

ShardedCheckpoint ShardedCheckpoint::open(const std::filesystem::path& dir, ProcessGroup* group) {
  ShardedCheckpoint checkpoint;
  checkpoint.dir_ = dir;
  checkpoint.cache_ = std::make_shared<ShardCache>();
  auto body = [&] {
    checkpoint.index_ = read_index(dir);
    checkpoint.training_state_ = checkpoint.index_.training_state;
    if (group != nullptr && group->size() == checkpoint.index_.world_size && group->rank() != 0) {
      const CheckedShard& own = checkpoint.shard(group->rank(), "reading this rank's training state");
      checkpoint.training_state_ = own.metadata.training_state;
    }
    checkpoint.training_state_.verified = true;  // every read is checked against the block checksums
  };
  if (group == nullptr) {
    body();
  } else {
    agree_on_errors(group, "ShardedCheckpoint::open", body);
  }
  return checkpoint;
}

std::vector<std::string> ShardedCheckpoint::names() const {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : index_.tensors) names.push_back(name);
  return names;
}

const IndexedTensor& ShardedCheckpoint::tensor(const std::string& name) const {
  auto found = index_.tensors.find(name);
  if (found == index_.tensors.end()) {
    fail("sharded checkpoint '", dir_.string(), "': it has no tensor '", name, "' (its index lists ",
         index_.tensors.size(), " tensors)");
  }
  return found->second;
}

bool ShardedCheckpoint::contains(const std::string& name) const { return index_.tensors.count(name) != 0; }
Shape ShardedCheckpoint::shape(const std::string& name) const { return tensor(name).shape; }
DType ShardedCheckpoint::dtype(const std::string& name) const { return tensor(name).dtype; }

const ShardedCheckpoint::CheckedShard& ShardedCheckpoint::shard(int rank, const std::string& context) const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  auto found = cache_->shards.find(rank);
  if (found != cache_->shards.end()) return found->second;
  try {
    CheckedShard checked = check_shard(index_, dir_, rank);
    return cache_->shards.emplace(rank, std::move(checked)).first->second;
  } catch (const Error& raised) {
    fail("sharded checkpoint '", dir_.string(), "': ", context, ": ", error_text(raised));
  }
}

void ShardedCheckpoint::read_fragment(const std::string& name, const IndexedFragment& fragment, DType dtype,
                                      int64_t begin, int64_t end, char* destination) const {
  const std::string context = "reading tensor '" + name + "' elements " + range_text(begin, end);
  const CheckedShard& file = shard(fragment.rank, context);
  const uint64_t element_bytes = dtype_size(dtype);
  const uint64_t block_bytes = index_.checksum_block_bytes;
  const uint64_t run_bytes = static_cast<uint64_t>(fragment.end - fragment.begin) * element_bytes;
  const uint64_t want_begin = static_cast<uint64_t>(begin - fragment.begin) * element_bytes;
  const uint64_t want_end = static_cast<uint64_t>(end - fragment.begin) * element_bytes;
  const uint64_t data_offset = file.data_offset.at(name);
  const std::string where =
      "sharded checkpoint '" + dir_.string() + "': " + context + ": shard file '" + file.path.string() + "'";
  ReadOnlyFile input(file.path, where);

  // Whole checksum blocks: those inside the wanted bytes are read in place, the (at most two)
  // that stick out at either end through a scratch block.
  std::vector<char> scratch;
  for (uint64_t block = want_begin / block_bytes; block * block_bytes < want_end; ++block) {
    const uint64_t block_begin = block * block_bytes;
    const uint64_t block_end = std::min(block_begin + block_bytes, run_bytes);
    const bool inside = block_begin >= want_begin && block_end <= want_end;
    if (!inside && scratch.empty()) scratch.resize(block_bytes);
    char* target = inside ? destination + (block_begin - want_begin) : scratch.data();
    input.read_at(data_offset + block_begin, target, block_end - block_begin);
    if (crc32_of(target, block_end - block_begin) != fragment.checksums[block]) {
      fail(where, ": elements ",
           range_text(fragment.begin + static_cast<int64_t>(block_begin / element_bytes),
                      fragment.begin + static_cast<int64_t>((block_end + element_bytes - 1) / element_bytes)),
           " of tensor '", name, "' (file bytes ",
           range_text(static_cast<int64_t>(data_offset + block_begin), static_cast<int64_t>(data_offset + block_end)),
           ") do not match their saved CRC-32: the file is corrupted");
    }
    if (!inside) {
      const uint64_t copy_begin = std::max(block_begin, want_begin);
      const uint64_t copy_end = std::min(block_end, want_end);
      std::memcpy(destination + (copy_begin - want_begin), scratch.data() + (copy_begin - block_begin),
                  copy_end - copy_begin);
    }
  }
}

Tensor ShardedCheckpoint::read(const std::string& name, int64_t begin, int64_t end) const {
  const IndexedTensor& saved = tensor(name);
  if (begin < 0 || end < begin || end > saved.shape.numel()) {
    fail("sharded checkpoint '", dir_.string(), "': elements ", range_text(begin, end), " of tensor '", name,
         "' are outside it: it is ", saved.shape, " (", saved.shape.numel(), " elements)");
  }
  Tensor result = empty({end - begin}, {.dtype = saved.dtype});
  if (end == begin) return result;
  char* bytes = static_cast<char*>(result.data());
  const uint64_t element_bytes = dtype_size(saved.dtype);
  for (const IndexedFragment& fragment : saved.fragments) {
    const int64_t low = std::max(begin, fragment.begin);
    const int64_t high = std::min(end, fragment.end);
    if (low >= high) continue;
    read_fragment(name, fragment, saved.dtype, low, high, bytes + static_cast<uint64_t>(low - begin) * element_bytes);
  }
  if (saved.dtype == kBool) {
    // C++ bool must hold 0 or 1; another writer may have stored any non-zero byte as true.
    for (int64_t i = 0; i < end - begin; ++i) bytes[i] = bytes[i] != 0 ? 1 : 0;
  }
  return result;
}

Tensor ShardedCheckpoint::read(const std::string& name) const {
  const IndexedTensor& saved = tensor(name);
  return read(name, 0, saved.shape.numel()).view(saved.shape);
}

std::vector<std::filesystem::path> ShardedCheckpoint::files_for(const std::string& name, int64_t begin,
                                                                int64_t end) const {
  std::vector<std::filesystem::path> files;
  for (const IndexedFragment& fragment : tensor(name).fragments) {
    if (std::max(begin, fragment.begin) < std::min(end, fragment.end)) {
      files.push_back(dir_ / index_.files[static_cast<size_t>(fragment.rank)].name);
    }
  }
  return files;
}

void ShardedCheckpoint::verify() const {
  for (const auto& [name, saved] : index_.tensors) {
    for (const IndexedFragment& fragment : saved.fragments) {
      // One fragment at a time, so memory stays at the largest fragment.
      Tensor scratch = empty({fragment.end - fragment.begin}, {.dtype = saved.dtype});
      read_fragment(name, fragment, saved.dtype, fragment.begin, fragment.end, static_cast<char*>(scratch.data()));
    }
  }
}

}  // namespace dtrain::dist
