#include "dist/model_consistency.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

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

namespace {

// Whether every rank passed the same lines: one all-gather of a hash and a count. When they do
// not, every rank gets every rank's lines (all ranks reach that point together, having seen the
// same fingerprints), to build the same message.
std::optional<std::vector<std::vector<std::string>>> lines_unless_all_agree(ProcessGroup& group,
                                                                             const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  std::vector<int64_t> fingerprint = {static_cast<int64_t>(fnv1a(text)), static_cast<int64_t>(lines.size())};
  std::vector<int64_t> fingerprints = all_gather_int64(group, fingerprint).to_vector<int64_t>();
  bool all_agree = true;
  for (int rank = 1; rank < group.size(); ++rank) {
    all_agree = all_agree && fingerprints[2 * rank] == fingerprints[0] && fingerprints[2 * rank + 1] == fingerprints[1];
  }
  if (all_agree) return std::nullopt;
  std::vector<std::vector<std::string>> all;
  for (const std::string& rank_text : all_gather_text(group, text)) all.push_back(split_lines(rank_text));
  return all;
}

// The first position where two lists differ (the shorter one's length when one extends the other).
size_t first_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t index = 0;
  while (index < a.size() && index < b.size() && a[index] == b[index]) ++index;
  return index;
}

// The lowest rank whose lines differ from rank 0's, both lists, and the first position where.
struct LineDisagreement {
  std::vector<std::string> reference;  // rank 0's
  std::vector<std::string> other;      // rank's
  int rank = 0;
  size_t index = 0;
};

// None when every rank passed the same lines. Raises `impossible` when the fingerprints differ
// but the lines do not (a hash collision cannot make equal lines differ; say so rather than pass).
std::optional<LineDisagreement> first_disagreement(ProcessGroup& group, const std::vector<std::string>& lines,
                                                   const char* who, const char* impossible) {
  auto all = lines_unless_all_agree(group, lines);
  if (!all) return std::nullopt;
  for (int rank = 1; rank < group.size(); ++rank) {
    std::vector<std::string>& other = (*all)[static_cast<size_t>(rank)];
    if (other == (*all)[0]) continue;
    const size_t index = first_difference((*all)[0], other);
    return LineDisagreement{std::move((*all)[0]), std::move(other), rank, index};
  }
  fail(who, impossible);
}

// Settings travel as "name=value" lines: a newline inside either would split one.
std::string setting_line(const std::string& name, const std::string& value) {
  std::string line = name + "=" + value;
  for (char& character : line) {
    if (character == '\n' || character == '\r') character = ' ';
  }
  return line;
}

}  // namespace

void check_same_tensors_on_all_ranks(ProcessGroup& group, const std::vector<NamedTensor>& tensors, const char* who) {
  if (group.size() == 1) return;
  std::vector<std::string> lines;
  for (const NamedTensor& tensor : tensors) lines.push_back(describe_tensor(tensor));
  auto difference =
      first_disagreement(group, lines, who, ": the ranks' model fingerprints differ although their descriptions agree");
  if (!difference) return;
  const auto& [reference, other, rank, index] = *difference;
  auto entry = [](const std::vector<std::string>& list, size_t position) {
    return position < list.size() ? list[position] : std::string("nothing (its model has only ") +
                                                         std::to_string(list.size()) + " tensors)";
  };
  fail(who, ": every rank must build the same model, but tensor #", index, " is ", entry(reference, index),
       " on rank 0 and ", entry(other, index), " on rank ", rank, " (rank 0 has ", reference.size(), " tensors, rank ",
       rank, " has ", other.size(), ")");
}

RunSettings model_settings(Module& model) {
  RunSettings settings;
  for (const auto& [path, module] : model.named_modules()) {
    settings.emplace_back(path.empty() ? "(model)" : path, module->type_name());
    for (const auto& [name, value] : module->describe()) {
      settings.emplace_back(path.empty() ? name : path + "." + name, value);
    }
  }
  return settings;
}

void check_same_settings_on_all_ranks(ProcessGroup& group, const RunSettings& settings, const char* who) {
  if (group.size() == 1) return;
  std::vector<std::string> lines;
  for (const auto& [name, value] : settings) lines.push_back(setting_line(name, value));
  auto difference =
      first_disagreement(group, lines, who, ": the ranks' settings fingerprints differ although their settings agree");
  if (!difference) return;
  const auto& [reference, other, rank, index] = *difference;
  auto entry = [](const std::vector<std::string>& list, size_t position) {
    return position < list.size()
               ? list[position]
               : "no setting #" + std::to_string(position) + " (it has " + std::to_string(list.size()) + ")";
  };
  fail(who, ": every rank must run with the same model and training settings, but rank ", rank, " has ",
       entry(other, index), ", rank 0 ", entry(reference, index), " (setting #", index, ")");
}

}  // namespace dtrain::dist
