#include "dist/checkpoint/sharded_save.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <random>
#include <string>
#include <system_error>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "dist/checkpoint/checkpoint_index.h"
#include "dist/checkpoint/rank_agreement.h"
#include "dist/checkpoint/stale_files.h"

namespace dtrain::dist {

namespace {

// A fragment ready to be written: its data as a contiguous CPU tensor and its block checksums.
struct PreparedFragment {
  const TensorFragment* fragment;
  Tensor host;
  std::vector<uint32_t> checksums;
};

std::string range_text(int64_t begin, int64_t end) { return detail::concat("[", begin, ", ", end, ")"); }

std::vector<PreparedFragment> prepare_fragments(const std::vector<TensorFragment>& fragments, uint64_t block_bytes) {
  std::vector<PreparedFragment> prepared;
  std::map<std::string, int64_t> seen;  // name -> its begin, for the duplicate message
  NoGradGuard no_grad;
  for (const TensorFragment& fragment : fragments) {
    const std::string context = "fragment '" + fragment.name + "'";
    if (fragment.name.empty()) fail("a fragment has an empty name");
    if (fragment.name == "__metadata__") fail(context, ": the name is reserved by safetensors");
    if (!fragment.data.defined()) fail(context, ": expected data, got an undefined tensor");
    if (fragment.data.dim() != 1) fail(context, ": expected 1-D data, got shape ", fragment.data.shape());
    if (fragment.begin < 0 || fragment.end() > fragment.shape.numel()) {
      fail(context, ": elements ", range_text(fragment.begin, fragment.end()), " are outside the tensor's shape ",
           fragment.shape, " (", fragment.shape.numel(), " elements)");
    }
    auto [earlier, inserted] = seen.emplace(fragment.name, fragment.begin);
    if (!inserted) {
      fail(context, ": given twice by this rank (elements from ", earlier->second, " and from ", fragment.begin,
           "); a rank holds at most one run of each tensor");
    }
    Tensor host = fragment.data;
    if (!host.device().is_cpu()) host = host.to(Device::cpu());
    if (!host.is_contiguous()) host = host.contiguous();
    std::vector<uint32_t> checksums =
        block_checksums(host.numel() > 0 ? host.data() : nullptr, host.nbytes(), block_bytes);
    prepared.push_back({&fragment, std::move(host), std::move(checksums)});
  }
  return prepared;
}

// What this rank holds, for every rank to plan the index from: {"save_id", "step", "fragments":
// [{"name", "dtype", "shape", "begin", "end", "crc32"}]}.
std::string describe_layout(const std::vector<PreparedFragment>& prepared, int64_t step, const std::string& save_id) {
  JsonValue fragments = JsonValue::array();
  for (const PreparedFragment& entry : prepared) {
    JsonValue shape = JsonValue::array();
    for (int64_t size : entry.fragment->shape) shape.push_back(JsonValue::number(size));
    JsonValue checksums = JsonValue::array();
    for (uint32_t checksum : entry.checksums) checksums.push_back(JsonValue::number(checksum));
    fragments.push_back(JsonValue::object({{"name", JsonValue::string(entry.fragment->name)},
                                           {"dtype", JsonValue::string(safetensors_dtype_name(entry.host.dtype()))},
                                           {"shape", std::move(shape)},
                                           {"begin", JsonValue::number(entry.fragment->begin)},
                                           {"end", JsonValue::number(entry.fragment->end())},
                                           {"crc32", std::move(checksums)}}));
  }
  return write_json(JsonValue::object({{"save_id", JsonValue::string(save_id)},
                                       {"step", JsonValue::number(step)},
                                       {"fragments", std::move(fragments)}}));
}

std::string describe(const IndexedTensor& tensor) {
  return detail::concat(tensor.shape, " ", dtype_name(tensor.dtype));
}

// The index every rank's layout adds up to. Every rank computes it from the same gathered
// layouts, so a bad combination raises the same error on every rank.
CheckpointIndex plan_index(const std::vector<std::string>& layouts, uint64_t block_bytes) {
  CheckpointIndex index;
  index.world_size = static_cast<int>(layouts.size());
  index.checksum_block_bytes = block_bytes;
  std::map<std::string, int> declared_by;  // tensor -> the first rank that had a fragment of it
  for (int rank = 0; rank < index.world_size; ++rank) {
    JsonValue layout = parse_json(layouts[static_cast<size_t>(rank)]);
    const int64_t step = layout.find("step")->as_int64();
    if (rank == 0) {
      index.save_id = layout.find("save_id")->as_string();
      index.step = step;
    } else if (step != index.step) {
      fail("rank ", rank, " saves step ", step, " but rank 0 saves step ", index.step,
           " (every rank must pass the same TrainingState::step)");
    }
    index.files.push_back({shard_file_name(rank, index.world_size, index.save_id), 0});
    for (const JsonValue& entry : layout.find("fragments")->as_array()) {
      const std::string& name = entry.find("name")->as_string();
      IndexedTensor described;
      described.dtype = dtype_from_safetensors_name(entry.find("dtype")->as_string(), "fragment '" + name + "'");
      for (const JsonValue& size : entry.find("shape")->as_array()) described.shape.push_back(size.as_int64());
      auto [known, inserted] = index.tensors.emplace(name, described);
      if (inserted) {
        declared_by[name] = rank;
      } else if (known->second.shape != described.shape || known->second.dtype != described.dtype) {
        fail("tensor '", name, "' is ", describe(known->second), " on rank ", declared_by[name], " but ",
             describe(described), " on rank ", rank, " (the ranks' fragments must describe the same whole tensor)");
      }
      IndexedFragment fragment{rank, entry.find("begin")->as_int64(), entry.find("end")->as_int64(), {}};
      if (fragment.begin == fragment.end) continue;  // holds nothing; it only declared the tensor
      for (const JsonValue& checksum : entry.find("crc32")->as_array()) {
        fragment.checksums.push_back(static_cast<uint32_t>(checksum.as_uint64()));
      }
      known->second.fragments.push_back(std::move(fragment));
    }
  }
  for (auto& [name, tensor] : index.tensors) {
    std::sort(tensor.fragments.begin(), tensor.fragments.end(),
              [](const IndexedFragment& a, const IndexedFragment& b) { return a.begin < b.begin; });
    int64_t covered = 0;
    const IndexedFragment* previous = nullptr;
    for (const IndexedFragment& fragment : tensor.fragments) {
      if (fragment.begin < covered) {
        fail("tensor '", name, "': rank ", fragment.rank, "'s elements ", range_text(fragment.begin, fragment.end),
             " overlap rank ", previous->rank, "'s ", range_text(previous->begin, previous->end),
             " (each element must be saved by one rank: pass a tensor that every rank holds from one rank only)");
      }
      if (fragment.begin > covered) {
        fail("tensor '", name, "' ", tensor.shape, ": elements ", range_text(covered, fragment.begin),
             " are held by no rank (the ranks' fragments must cover every element)");
      }
      covered = fragment.end;
      previous = &fragment;
    }
    if (covered != tensor.shape.numel()) {
      fail("tensor '", name, "' ", tensor.shape, ": elements ", range_text(covered, tensor.shape.numel()),
           " are held by no rank (the ranks' fragments must cover every element)");
    }
  }
  return index;
}

// 16 hex digits that tell one save's files from another's (same step or not).
std::string new_save_id() {
  std::random_device device;
  uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  bits ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
  bits ^= static_cast<uint64_t>(::getpid()) << 17;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

std::string fragments_json(const std::vector<PreparedFragment>& prepared) {
  JsonValue fragments = JsonValue::object();
  for (const PreparedFragment& entry : prepared) {
    JsonValue shape = JsonValue::array();
    for (int64_t size : entry.fragment->shape) shape.push_back(JsonValue::number(size));
    fragments.add(entry.fragment->name, JsonValue::object({{"shape", std::move(shape)},
                                                           {"begin", JsonValue::number(entry.fragment->begin)}}));
  }
  return write_json(fragments);
}

}  // namespace

void save_sharded_checkpoint(const std::filesystem::path& dir, const std::vector<TensorFragment>& fragments,
                             const train::TrainingState& state, ProcessGroup* group,
                             const ShardedSaveOptions& options) {
  const std::string what = "save_sharded_checkpoint('" + dir.string() + "')";
  const int rank = group ? group->rank() : 0;

  // 1. Each rank checks its fragments and readies the directory.
  std::vector<PreparedFragment> prepared;
  std::string layout;
  std::string error;
  try {
    if (options.checksum_block_bytes == 0 || options.checksum_block_bytes > (uint64_t{1} << 32)) {
      fail("checksum_block_bytes must be 1 to 2^32, got ", options.checksum_block_bytes);
    }
    prepared = prepare_fragments(fragments, options.checksum_block_bytes);
    std::error_code failure;
    std::filesystem::create_directories(dir, failure);
    if (!std::filesystem::is_directory(dir)) {
      fail("cannot create the directory '", dir.string(), "'", failure ? ": " + failure.message() : std::string());
    }
    layout = describe_layout(prepared, state.step, rank == 0 ? new_save_id() : std::string());
  } catch (const std::exception& raised) {
    error = error_text(raised);
  }
  raise_if_any_rank_failed(group, what, error);

  // 2. Every rank plans the same index from everyone's layout (so a bad combination raises on
  //    every rank alike).
  CheckpointIndex index;
  try {
    index = plan_index(all_gather_text(group, layout), options.checksum_block_bytes);
  } catch (const Error& raised) {
    fail(what, ": ", error_text(raised));
  }

  // 3. Each rank writes its shard file under this save's own name (durably: fsync, rename, fsync
  //    of the directory). No file of the checkpoint in dir so far is touched: it stays loadable.
  int64_t shard_bytes = 0;
  try {
    const std::filesystem::path shard_path = dir / index.files[static_cast<size_t>(rank)].name;
    std::map<std::string, Tensor> tensors;
    for (const PreparedFragment& entry : prepared) {
      if (entry.host.numel() > 0) tensors.emplace(entry.fragment->name, entry.host);
    }
    ShardMetadata shard{index.save_id, index.step, rank, index.world_size, state};
    // The index's block checksums cover these bytes; whole-tensor ones would be read by no one.
    save_safetensors(shard_path, tensors, encode_shard_metadata(shard, fragments_json(prepared)),
                     {.checksums = false});
    shard_bytes = static_cast<int64_t>(std::filesystem::file_size(shard_path));
  } catch (const std::exception& raised) {
    error = error_text(raised);
  }
  raise_if_any_rank_failed(group, what, error);
  std::vector<int64_t> sizes = all_gather_int64(group, shard_bytes);

  // 4. Every shard is on disk: rank 0 renames the new index over the old one — the instant the
  //    new checkpoint replaces the old — and only then removes the old checkpoint's files and
  //    what crashed saves left behind. No rank returns before.
  if (rank == 0) {
    try {
      for (int r = 0; r < index.world_size; ++r)
        index.files[static_cast<size_t>(r)].bytes = static_cast<uint64_t>(sizes[static_cast<size_t>(r)]);
      index.training_state = state;
      write_index(dir, index);
    } catch (const std::exception& raised) {
      error = error_text(raised);
    }
    if (error.empty()) {
      try {
        remove_stale_checkpoint_files(dir, index);
      } catch (const std::exception& raised) {
        error = detail::concat("step ", index.step, " is saved, but ", error_text(raised));
      }
    }
  }
  raise_if_any_rank_failed(group, what, error);
}

}  // namespace dtrain::dist
