// The node layout from hostnames, for rank mappings a single machine cannot show.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dist/node_layout.h"

using dtrain::dist::node_layout;

TEST_CASE("node layout of ranks filled host by host", "[dist]") {
  std::vector<std::string> hosts = {"a", "a", "b", "b"};
  auto third = node_layout(hosts, 2);
  REQUIRE(third.local_rank == 0);
  REQUIRE(third.local_size == 2);
  REQUIRE(third.node_index == 1);
  REQUIRE(third.node_count == 2);
  REQUIRE(node_layout(hosts, 1).local_rank == 1);
}

TEST_CASE("node layout of ranks dealt round robin over uneven hosts", "[dist]") {
  std::vector<std::string> hosts = {"b", "a", "b", "a", "b"};  // mpirun --map-by node, 3 + 2
  auto last = node_layout(hosts, 4);
  REQUIRE(last.local_rank == 2);
  REQUIRE(last.local_size == 3);
  REQUIRE(last.node_index == 0);  // "b" holds rank 0
  auto second = node_layout(hosts, 3);
  REQUIRE(second.local_rank == 1);
  REQUIRE(second.local_size == 2);
  REQUIRE(second.node_index == 1);
  REQUIRE(second.node_count == 2);
}

TEST_CASE("node layout of one rank, and a rank out of range", "[dist]") {
  auto alone = node_layout({"solo"}, 0);
  REQUIRE(alone.local_rank == 0);
  REQUIRE(alone.local_size == 1);
  REQUIRE(alone.node_count == 1);
  REQUIRE_THROWS_WITH(node_layout({"a", "b"}, 2), Catch::Matchers::Contains("expected a rank in [0, 2), got 2"));
}
