#include "dist/node_layout.h"

#include <algorithm>

#include "core/error.h"

namespace dtrain::dist {

NodeLayout node_layout(const std::vector<std::string>& hostnames, int rank) {
  if (rank < 0 || rank >= static_cast<int>(hostnames.size())) {
    fail("node_layout: expected a rank in [0, ", hostnames.size(), "), got ", rank);
  }
  const std::string& mine = hostnames[rank];
  NodeLayout layout;
  layout.local_rank = static_cast<int>(std::count(hostnames.begin(), hostnames.begin() + rank, mine));
  layout.local_size = static_cast<int>(std::count(hostnames.begin(), hostnames.end(), mine));
  std::vector<std::string> nodes;  // distinct hostnames, in order of their first rank
  for (const std::string& hostname : hostnames) {
    if (std::find(nodes.begin(), nodes.end(), hostname) == nodes.end()) nodes.push_back(hostname);
  }
  layout.node_index = static_cast<int>(std::find(nodes.begin(), nodes.end(), mine) - nodes.begin());
  layout.node_count = static_cast<int>(nodes.size());
  return layout;
}

}  // namespace dtrain::dist
