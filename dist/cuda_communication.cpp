#include "dist/cuda_communication.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "core/allocator.h"
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/ops/factory.h"
#include "dist/init.h"
#include "dist/nccl_library.h"
#include "dist/staged_backend.h"

namespace dtrain::dist {

CudaCommunication cuda_communication_from_environment() {
  const char* value = std::getenv("DTRAIN_CUDA_COMMUNICATION");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "auto") == 0) return CudaCommunication::Auto;
  if (std::strcmp(value, "nccl") == 0) return CudaCommunication::Nccl;
  if (std::strcmp(value, "staged") == 0) return CudaCommunication::Staged;
  fail("DTRAIN_CUDA_COMMUNICATION: expected auto, nccl or staged, got '", value, "'");
}

CudaCommunicationChoice choose_cuda_communication(const std::vector<RankPlacement>& ranks, CudaCommunication requested) {
  CudaCommunicationChoice choice;
  if (requested == CudaCommunication::Staged) {
    choice.reason = "DTRAIN_CUDA_COMMUNICATION=staged";
    return choice;
  }
  for (size_t rank = 0; rank < ranks.size() && choice.reason.empty(); ++rank) {
    if (!ranks[rank].nccl_loadable) choice.reason = dtrain::detail::concat("rank ", rank, " of the group cannot load NCCL");
  }
  std::map<std::pair<int64_t, int64_t>, size_t> first_rank_on;
  for (size_t rank = 0; rank < ranks.size() && choice.reason.empty(); ++rank) {
    auto [found, inserted] = first_rank_on.emplace(std::make_pair(ranks[rank].node, ranks[rank].device), rank);
    if (!inserted) {
      choice.reason = dtrain::detail::concat("ranks ", found->second, " and ", rank, " of the group share cuda:", ranks[rank].device,
                                     " on node ", ranks[rank].node, " (NCCL needs one GPU per rank)");
    }
  }
  if (!choice.reason.empty() && requested == CudaCommunication::Nccl) {
    fail("DTRAIN_CUDA_COMMUNICATION=nccl, but NCCL cannot carry this group's CUDA tensors: ", choice.reason);
  }
  choice.use_nccl = choice.reason.empty();
  return choice;
}

bool nccl_available(std::string* reason) { return detail::nccl_library_available(reason); }

std::unique_ptr<CommunicationBackend> create_cuda_backend(ProcessGroup& group, Device device) {
  const CudaCommunication requested = cuda_communication_from_environment();
  std::string why_not;
  const bool loadable = requested != CudaCommunication::Staged && detail::nccl_library_available(&why_not);
  const int64_t node = is_initialized() ? node_index() : 0;

  std::vector<RankPlacement> placements(group.size());
  {
    MemoryTagScope communication(MemoryTag::Communication);
    Tensor mine = from_vector<int64_t>({node, device.index, loadable ? 1 : 0});
    Tensor all = empty({3 * static_cast<int64_t>(group.size())}, {.dtype = kInt64});
    group.backend_for(Device::cpu()).all_gather(mine, all)->wait();
    const std::vector<int64_t> values = all.to_vector<int64_t>();
    for (int rank = 0; rank < group.size(); ++rank) {
      placements[rank] = {values[3 * rank], values[3 * rank + 1], values[3 * rank + 2] != 0};
    }
  }
  CudaCommunicationChoice choice;
  try {
    choice = choose_cuda_communication(placements, requested);
  } catch (const Error& error) {
    if (!loadable && requested == CudaCommunication::Nccl) fail(error.what(), "; on this rank: ", why_not);
    throw;
  }
  if (choice.use_nccl) return create_nccl_backend(group, device);
  return std::make_unique<StagedBackend>(group.backend_for(Device::cpu()));
}

std::unique_ptr<CommunicationBackend> create_nccl_backend(ProcessGroup& group, Device device) {
  if (!device.is_cuda()) fail("create_nccl_backend: expected a CUDA device, got ", device);
  // Read before the first collective below: a bad value raises on every rank (the environment is
  // the job's), before any rank waits for another.
  const double timeout_seconds = nccl_timeout_seconds_from_environment();
  // 16 words of unique id and a word that says whether rank 0 made one (else every rank raises).
  constexpr int64_t kIdWords = sizeof(detail::NcclUniqueId) / sizeof(int64_t);
  static_assert(sizeof(detail::NcclUniqueId) % sizeof(int64_t) == 0);
  std::vector<int64_t> words(kIdWords + 1, 0);
  std::string failure;
  if (group.rank() == 0) {
    try {
      detail::NcclUniqueId id = detail::nccl_library().new_unique_id();
      std::memcpy(words.data(), id.bytes.data(), sizeof(id.bytes));
      words[kIdWords] = 1;
    } catch (const Error& error) {
      failure = error.what();
    }
  }
  {
    MemoryTagScope communication(MemoryTag::Communication);
    Tensor message = from_vector(words);
    group.backend_for(Device::cpu()).broadcast(message, 0)->wait();
    words = message.to_vector<int64_t>();
  }
  if (words[kIdWords] != 1) {
    fail("create_nccl_backend: group rank 0 could not make an NCCL unique id", failure.empty() ? "" : ": ", failure,
         " (", group.str(), ")");
  }
  detail::NcclUniqueId id;
  std::memcpy(id.bytes.data(), words.data(), sizeof(id.bytes));
  detail::NcclBackendOptions options;
  options.size = group.size();
  options.rank = group.rank();
  options.device = device.index;
  options.injected_delay_microseconds = injected_delay_microseconds();
  options.timeout_seconds = timeout_seconds;
  return detail::nccl_library().create_backend(id, options);
}

double nccl_timeout_seconds_from_environment() {
  const char* value = std::getenv("DTRAIN_NCCL_TIMEOUT_SECONDS");
  if (value == nullptr || *value == '\0') return 600.0;
  char* end = nullptr;
  const double seconds = std::strtod(value, &end);
  if (end == value || *end != '\0' || !std::isfinite(seconds) || seconds <= 0) {
    fail("DTRAIN_NCCL_TIMEOUT_SECONDS: expected a number of seconds > 0 (how long an NCCL collective may stay "
         "pending before its communicator is aborted), got '",
         value, "'");
  }
  return seconds;
}

int64_t injected_delay_microseconds() {
  static const int64_t microseconds = [] {
    const char* value = std::getenv("DTRAIN_TEST_INJECT_DELAYS_US");
    if (value == nullptr || *value == '\0') return int64_t{0};
    char* end = nullptr;
    long long parsed = std::strtoll(value, &end, 10);
    if (end == value || *end != '\0' || parsed < 0) {
      fail("DTRAIN_TEST_INJECT_DELAYS_US: expected a whole number of microseconds >= 0, got '", value, "'");
    }
    return static_cast<int64_t>(parsed);
  }();
  return microseconds;
}

void inject_delay_after_forward(const Tensor& output) {
  const int64_t microseconds = injected_delay_microseconds();
  if (microseconds == 0 || !output.defined() || !output.device().is_cuda()) return;
  if (!detail::nccl_library_available()) return;  // the staged path copies synchronously: nothing to race
  detail::nccl_library().delay_stream(output.device().index, cuda::current_stream(output.device()), microseconds);
}

}  // namespace dtrain::dist
