#pragma once
// The α-β cost of one collective: α seconds of latency per message step, β seconds per byte a
// rank's link carries (Hockney's model, as in Thakur, Rabenseifner and Gropp 2005 and NCCL's
// performance notes). n is the payload in bytes: the buffer all-reduced, or the whole gathered
// (scattered) buffer of an all-gather (reduce-scatter), N ranks each holding n / N of it.
//
//   ring all-reduce                  2(N-1) α + 2(N-1)/N n β
//   tree all-reduce                  2 ceil(log2 N) α + 2(N-1)/N n β   (recursive halving and doubling;
//                                    NCCL's double binary tree has the same terms to first order)
//   ring all-gather, reduce-scatter  (N-1) α + (N-1)/N n β
//   tree all-gather, reduce-scatter  ceil(log2 N) α + (N-1)/N n β      (recursive doubling, halving)
//   hierarchical all-reduce          intra-host reduce-scatter, all-reduce among the hosts of what
//                                    each host holds, intra-host all-gather: 2[(G-1) α_i + (G-1)/G n β_i]
//                                    + 2 min(H-1, ceil(log2 H)) α_e + 2(H-1)/H n β_e, G ranks per host,
//                                    H hosts (between hosts the faster of ring and tree, as MPI and
//                                    NCCL choose by size; their bandwidth terms are the same)
//   hierarchical all-gather          (G-1) α_i + (G-1)/G n β_i + min(H-1, ceil(log2 H)) α_e + (H-1)/H n β_e
//   neighbour exchange (gossip)      α + k n β: n bytes sent to each of k ring neighbours (k = 1 at N = 2,
//                                    else 2), through the host's link; independent of N
//
// β_e is the host's link (the ranks of a host share it: the G concurrent rings of a hierarchical
// all-reduce each carry 1/G of the data through it). A flat collective over ranks on several hosts
// runs at the pace of its slowest link: every step crosses a host boundary somewhere, so it pays
// the inter-host α and β.
#include <cstdint>
#include <string>

namespace dtrain::cost_model {

struct Link {
  double alpha_seconds = 0;        // latency of one message step
  double seconds_per_byte = 0;     // β: 1 / bandwidth
};

// bits per second (1e9 for 1 Gbit/s) -> β.
double seconds_per_byte_from_bits_per_second(double bits_per_second);

enum class AllReduceAlgorithm { Ring, Tree, Hierarchical };
AllReduceAlgorithm all_reduce_algorithm_from_name(const std::string& name);  // "ring", "tree", "hierarchical"
std::string all_reduce_algorithm_name(AllReduceAlgorithm algorithm);

struct Network {
  int64_t ranks = 1;
  int64_t ranks_per_host = 1;  // G; ranks must be a multiple of it
  Link inter_host;             // between hosts (the host's link)
  Link intra_host;             // between the ranks of one host
  AllReduceAlgorithm all_reduce_algorithm = AllReduceAlgorithm::Ring;

  int64_t hosts() const { return ranks / ranks_per_host; }
  // The link a flat collective is paced by: the inter-host one when the ranks span hosts.
  const Link& slowest_link() const { return hosts() > 1 ? inter_host : intra_host; }
};

// Raises dtrain::Error when ranks < 1, ranks_per_host < 1, ranks not a multiple of it, or a
// negative α or β.
void validate(const Network& network);

// Cost of one collective of n bytes, as the header's formulas (0 for one rank).
double ring_all_reduce_seconds(const Link& link, int64_t ranks, double bytes);
double tree_all_reduce_seconds(const Link& link, int64_t ranks, double bytes);
double ring_all_gather_seconds(const Link& link, int64_t ranks, double bytes);  // = reduce-scatter
double tree_all_gather_seconds(const Link& link, int64_t ranks, double bytes);  // = reduce-scatter
double hierarchical_all_reduce_seconds(const Network& network, double bytes);

// By the network's algorithm (Ring, Tree: over the slowest link; Hierarchical as above).
double all_reduce_seconds(const Network& network, double bytes);
// All-gather or reduce-scatter of n bytes in all: a ring, hierarchical (intra-host then among
// hosts) when the network's algorithm is.
double all_gather_seconds(const Network& network, double bytes);
double reduce_scatter_seconds(const Network& network, double bytes);
// Each rank sends n bytes to each ring neighbour and receives as much (gossip averaging).
double neighbour_exchange_seconds(const Network& network, double bytes);

// Bytes one rank sends on the wire for the collective (the ring's: 2(N-1)/N n for all-reduce,
// (N-1)/N n for all-gather and reduce-scatter, k n for the exchange).
double all_reduce_bytes_sent(int64_t ranks, double bytes);
double all_gather_bytes_sent(int64_t ranks, double bytes);
double neighbour_exchange_bytes_sent(int64_t ranks, double bytes);
int64_t ring_neighbours(int64_t ranks);  // 0, 1 (N = 2) or 2

}  // namespace dtrain::cost_model
