#pragma once
// Which ranks share a node, found from every rank's hostname (gathered at init): not assumed from
// a launcher's environment variables, so it holds for any launcher and any rank mapping.
#include <string>
#include <vector>

namespace dtrain::dist {

struct NodeLayout {
  int local_rank = 0;  // among the ranks with this rank's hostname, in world-rank order
  int local_size = 1;  // ranks with this rank's hostname
  int node_index = 0;  // of this rank's hostname among the distinct hostnames, in order of first rank
  int node_count = 1;  // distinct hostnames
};

// hostnames[r] is world rank r's.
NodeLayout node_layout(const std::vector<std::string>& hostnames, int rank);

}  // namespace dtrain::dist
