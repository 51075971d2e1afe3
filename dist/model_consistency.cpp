#include "dist/model_consistency.h"

#include <algorithm>
#include <cstdint>
#include <sstream>

#include "core/allocator.h"
#include "core/ops/factory.h"

namespace dtrain::dist {
namespace {

uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char character : text) {
    hash ^= character;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

Tensor all_gather_int64(ProcessGroup& group, const std::vector<int64_t>& values) {
  MemoryTagScope tag(MemoryTag::Communication);
  Tensor input = from_vector(values);
  Tensor output = empty({static_cast<int64_t>(values.size()) * group.size()}, {.dtype = kInt64});
  group.all_gather(input, output)->wait();
  return output;
}

// Every rank's description, gathered to every rank: lengths first, then the text padded to the
// longest (one int32 per character: the collectives move numbers, not bytes).
std::vector<std::string> all_gather_text(ProcessGroup& group, const std::string& text) {
  std::vector<int64_t> lengths = all_gather_int64(group, {static_cast<int64_t>(text.size())}).to_vector<int64_t>();
  int64_t longest = std::max<int64_t>(1, *std::max_element(lengths.begin(), lengths.end()));
  std::vector<int32_t> padded(static_cast<size_t>(longest), 0);
  for (size_t i = 0; i < text.size(); ++i) padded[i] = static_cast<unsigned char>(text[i]);
  MemoryTagScope tag(MemoryTag::Communication);
  Tensor input = from_vector(padded);
  Tensor output = empty({longest * group.size()}, {.dtype = kInt32});
  group.all_gather(input, output)->wait();
  std::vector<int32_t> all = output.to_vector<int32_t>();
  std::vector<std::string> texts;
  for (int rank = 0; rank < group.size(); ++rank) {
    std::string decoded;
    for (int64_t i = 0; i < lengths[static_cast<size_t>(rank)]; ++i) {
      decoded.push_back(static_cast<char>(all[static_cast<size_t>(rank * longest + i)]));
    }
    texts.push_back(std::move(decoded));
  }
  return texts;
}

}  // namespace

std::string describe_tensor(const NamedTensor& tensor) {
  std::ostringstream stream;
  stream << "'" << tensor.first << "' " << tensor.second.shape() << " " << tensor.second.dtype();
  return stream.str();
}

void check_same_tensors_on_all_ranks(ProcessGroup& group, const std::vector<NamedTensor>& tensors, const char* who) {
  if (group.size() == 1) return;
  std::string description;
  for (const NamedTensor& tensor : tensors) description += describe_tensor(tensor) + "\n";
  std::vector<int64_t> fingerprint = {static_cast<int64_t>(fnv1a(description)), static_cast<int64_t>(tensors.size())};
  std::vector<int64_t> fingerprints = all_gather_int64(group, fingerprint).to_vector<int64_t>();
  bool all_agree = true;
  for (int rank = 1; rank < group.size(); ++rank) {
    all_agree = all_agree && fingerprints[2 * rank] == fingerprints[0] && fingerprints[2 * rank + 1] == fingerprints[1];
  }
  if (all_agree) return;

  // Every rank reaches this point (they all saw the same fingerprints) and builds the same
  // message from the same gathered descriptions.
  std::vector<std::string> texts = all_gather_text(group, description);
  std::vector<std::string> reference = split_lines(texts[0]);
  for (int rank = 1; rank < group.size(); ++rank) {
    std::vector<std::string> other = split_lines(texts[static_cast<size_t>(rank)]);
    if (other == reference) continue;
    size_t index = 0;
    while (index < reference.size() && index < other.size() && reference[index] == other[index]) ++index;
    auto entry = [](const std::vector<std::string>& list, size_t position) {
      return position < list.size() ? list[position] : std::string("nothing (its model has only ") +
                                                           std::to_string(list.size()) + " tensors)";
    };
    fail(who, ": every rank must build the same model, but tensor #", index, " is ", entry(reference, index),
         " on rank 0 and ", entry(other, index), " on rank ", rank, " (rank 0 has ", reference.size(),
         " tensors, rank ", rank, " has ", other.size(), ")");
  }
  // Equal descriptions with different fingerprints cannot happen; say so rather than pass.
  fail(who, ": the ranks' model fingerprints differ although their descriptions agree");
}

}  // namespace dtrain::dist
