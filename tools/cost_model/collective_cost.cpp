#include "tools/cost_model/collective_cost.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace dtrain::cost_model {

double seconds_per_byte_from_bits_per_second(double bits_per_second) {
  if (!(bits_per_second > 0)) fail("a link's bandwidth must be > 0 bits/s, got ", bits_per_second);
  return 8.0 / bits_per_second;
}

AllReduceAlgorithm all_reduce_algorithm_from_name(const std::string& name) {
  if (name == "ring") return AllReduceAlgorithm::Ring;
  if (name == "tree") return AllReduceAlgorithm::Tree;
  if (name == "hierarchical") return AllReduceAlgorithm::Hierarchical;
  fail("all-reduce algorithm: expected ring, tree or hierarchical, got '", name, "'");
}

std::string all_reduce_algorithm_name(AllReduceAlgorithm algorithm) {
  switch (algorithm) {
    case AllReduceAlgorithm::Ring: return "ring";
    case AllReduceAlgorithm::Tree: return "tree";
    case AllReduceAlgorithm::Hierarchical: return "hierarchical";
  }
  return "?";
}

void validate(const Network& network) {
  if (network.ranks < 1) fail("the network needs ranks >= 1, got ", network.ranks);
  if (network.ranks_per_host < 1) fail("the network needs ranks per host >= 1, got ", network.ranks_per_host);
  if (network.ranks % network.ranks_per_host != 0) {
    fail("ranks (", network.ranks, ") must be a multiple of the ranks per host (", network.ranks_per_host, ")");
  }
  for (const Link* link : {&network.inter_host, &network.intra_host}) {
    if (link->alpha_seconds < 0 || link->seconds_per_byte < 0) {
      fail("a link's alpha and beta must be >= 0, got alpha ", link->alpha_seconds, " s and beta ",
           link->seconds_per_byte, " s/byte");
    }
  }
}

namespace {

double ring_fraction(int64_t ranks) { return static_cast<double>(ranks - 1) / static_cast<double>(ranks); }

int64_t ceil_log2(int64_t ranks) {
  int64_t steps = 0;
  for (int64_t reach = 1; reach < ranks; reach *= 2) ++steps;
  return steps;
}

}  // namespace

double ring_all_reduce_seconds(const Link& link, int64_t ranks, double bytes) {
  if (ranks <= 1) return 0;
  return 2.0 * static_cast<double>(ranks - 1) * link.alpha_seconds + 2.0 * ring_fraction(ranks) * bytes * link.seconds_per_byte;
}

double tree_all_reduce_seconds(const Link& link, int64_t ranks, double bytes) {
  if (ranks <= 1) return 0;
  return 2.0 * static_cast<double>(ceil_log2(ranks)) * link.alpha_seconds +
         2.0 * ring_fraction(ranks) * bytes * link.seconds_per_byte;
}

double ring_all_gather_seconds(const Link& link, int64_t ranks, double bytes) {
  if (ranks <= 1) return 0;
  return static_cast<double>(ranks - 1) * link.alpha_seconds + ring_fraction(ranks) * bytes * link.seconds_per_byte;
}

double tree_all_gather_seconds(const Link& link, int64_t ranks, double bytes) {
  if (ranks <= 1) return 0;
  return static_cast<double>(ceil_log2(ranks)) * link.alpha_seconds + ring_fraction(ranks) * bytes * link.seconds_per_byte;
}

double hierarchical_all_reduce_seconds(const Network& network, double bytes) {
  // Reduce-scatter and all-gather inside each host, and between them an all-reduce among the
  // hosts of the whole buffer's worth of data that crosses each host's link.
  const double inside = 2.0 * ring_all_gather_seconds(network.intra_host, network.ranks_per_host, bytes);
  const int64_t hosts = network.hosts();
  return inside + std::min(ring_all_reduce_seconds(network.inter_host, hosts, bytes),
                           tree_all_reduce_seconds(network.inter_host, hosts, bytes));
}

double all_reduce_seconds(const Network& network, double bytes) {
  switch (network.all_reduce_algorithm) {
    case AllReduceAlgorithm::Ring: return ring_all_reduce_seconds(network.slowest_link(), network.ranks, bytes);
    case AllReduceAlgorithm::Tree: return tree_all_reduce_seconds(network.slowest_link(), network.ranks, bytes);
    case AllReduceAlgorithm::Hierarchical: return hierarchical_all_reduce_seconds(network, bytes);
  }
  return 0;
}

double all_gather_seconds(const Network& network, double bytes) {
  if (network.all_reduce_algorithm == AllReduceAlgorithm::Hierarchical) {
    return ring_all_gather_seconds(network.intra_host, network.ranks_per_host, bytes) +
           std::min(ring_all_gather_seconds(network.inter_host, network.hosts(), bytes),
                    tree_all_gather_seconds(network.inter_host, network.hosts(), bytes));
  }
  return ring_all_gather_seconds(network.slowest_link(), network.ranks, bytes);
}

double reduce_scatter_seconds(const Network& network, double bytes) { return all_gather_seconds(network, bytes); }

int64_t ring_neighbours(int64_t ranks) { return ranks <= 1 ? 0 : (ranks == 2 ? 1 : 2); }

double neighbour_exchange_seconds(const Network& network, double bytes) {
  const int64_t neighbours = ring_neighbours(network.ranks);
  if (neighbours == 0) return 0;
  const Link& link = network.slowest_link();
  return link.alpha_seconds + static_cast<double>(neighbours) * bytes * link.seconds_per_byte;
}

double all_reduce_bytes_sent(int64_t ranks, double bytes) { return ranks <= 1 ? 0 : 2.0 * ring_fraction(ranks) * bytes; }
double all_gather_bytes_sent(int64_t ranks, double bytes) { return ranks <= 1 ? 0 : ring_fraction(ranks) * bytes; }
double neighbour_exchange_bytes_sent(int64_t ranks, double bytes) {
  return static_cast<double>(ring_neighbours(ranks)) * bytes;
}

}  // namespace dtrain::cost_model
