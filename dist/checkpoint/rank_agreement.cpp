#include "dist/checkpoint/rank_agreement.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops/factory.h"

namespace dtrain::dist {

namespace {

// The words a text travels in: the collectives move numbers, not bytes, so 8 bytes per int64.
constexpr int64_t kBytesPerWord = 8;

// A message as raised on its rank, without the "dtrain [rank 3]: " that Error put in front:
// the agreed error names the rank itself.
std::string without_error_prefix(const std::string& message) {
  const std::string plain = "dtrain: ";
  if (message.rfind(plain, 0) == 0) return message.substr(plain.size());
  if (message.rfind("dtrain [", 0) == 0) {
    size_t close = message.find("]: ");
    if (close != std::string::npos) return message.substr(close + 3);
  }
  return message;
}

}  // namespace

std::string error_text(const std::exception& error) { return without_error_prefix(error.what()); }

namespace {

std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) text += (i ? ", " : "") + std::to_string(ranks[i]);
  return text;
}

}  // namespace

std::vector<int64_t> all_gather_int64(ProcessGroup* group, int64_t value) {
  if (group == nullptr) return {value};
  MemoryTagScope tag(MemoryTag::Communication);
  Tensor input = from_vector(std::vector<int64_t>{value});
  Tensor output = empty({group->size()}, {.dtype = kInt64});
  group->all_gather(input, output)->wait();
  return output.to_vector<int64_t>();
}

std::vector<std::string> all_gather_text(ProcessGroup* group, const std::string& text) {
  if (group == nullptr) return {text};
  std::vector<int64_t> lengths = all_gather_int64(group, static_cast<int64_t>(text.size()));
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  const int64_t words = std::max<int64_t>(1, (longest + kBytesPerWord - 1) / kBytesPerWord);
  MemoryTagScope tag(MemoryTag::Communication);
  Tensor input = zeros({words}, {.dtype = kInt64});
  if (!text.empty()) std::memcpy(input.data(), text.data(), text.size());
  Tensor output = empty({words * group->size()}, {.dtype = kInt64});
  group->all_gather(input, output)->wait();
  const char* bytes = static_cast<const char*>(output.data());
  std::vector<std::string> texts;
  for (int rank = 0; rank < group->size(); ++rank) {
    texts.emplace_back(bytes + rank * words * kBytesPerWord, static_cast<size_t>(lengths[static_cast<size_t>(rank)]));
  }
  return texts;
}

void raise_if_any_rank_failed(ProcessGroup* group, const std::string& what, const std::string& error) {
  if (group == nullptr || group->size() == 1) {
    if (!error.empty()) fail(what, ": ", without_error_prefix(error));
    return;
  }
  // The flag first: in the usual case (no failure) only one int64 per rank travels.
  std::vector<int64_t> failed = all_gather_int64(group, error.empty() ? 0 : 1);
  if (std::all_of(failed.begin(), failed.end(), [](int64_t flag) { return flag == 0; })) return;
  std::vector<std::string> messages = all_gather_text(group, without_error_prefix(error));

  // Ranks with the same message are named together (every rank missing the same index file).
  std::vector<std::pair<std::string, std::vector<int>>> distinct;
  for (int rank = 0; rank < group->size(); ++rank) {
    if (failed[static_cast<size_t>(rank)] == 0) continue;
    const std::string& message = messages[static_cast<size_t>(rank)];
    auto same =
        std::find_if(distinct.begin(), distinct.end(), [&](const auto& entry) { return entry.first == message; });
    if (same == distinct.end()) {
      distinct.push_back({message, {rank}});
    } else {
      same->second.push_back(rank);
    }
  }
  std::string text;
  for (const auto& [message, ranks] : distinct)
    text += (text.empty() ? "" : "; and on ") + rank_list(ranks) + ": " + message;
  fail(what, " failed on ", text, " (", group->size(), group->size() == 1 ? " rank" : " ranks", " took part)");
}

void agree_on_errors(ProcessGroup* group, const std::string& what, const std::function<void()>& body) {
  std::string error;
  try {
    body();
  } catch (const std::exception& raised) {
    error = error_text(raised);
    if (error.empty()) error = "an exception without a message";
  }
  raise_if_any_rank_failed(group, what, error);
}

}  // namespace dtrain::dist
