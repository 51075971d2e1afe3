#pragma once
// The step time of each way of training data-parallel: the compute of one step (forward and
// backward of the rank's batch and the optimizer step, measured or assumed) plus the part of its
// communication that the compute does not hide.
//
// Each method is a list of communication phases; a phase is some collectives of one kind (their
// count matters for the α terms, the bytes in all for the β terms, the costs being linear in the
// bytes). A phase that runs while backward (or, for ZeRO-3's prefetched gathers, forward) still
// computes can hide under it: of its time C, min(overlap * C, window) is hidden, the window being
// backward_fraction of the compute (or the rest, for forward). The last bucket reduced in backward
// (the first parameters') starts when backward ends, and ZeRO-3's first gather before forward
// starts: both are exposed whole, as is what runs after backward — ZeRO-1/2's parameter all-gather
// after the optimizer step, local SGD's and gossip's parameter averaging.
//
//   ddp          all-reduce of the gradients, bucket by bucket, in backward
//   zero1, zero2 reduce-scatter of the gradients in backward (buckets of zero_bucket_cap_bytes),
//                all-gather of the updated parameters after the step
//   zero3        per leaf module: all-gather of its parameters in forward and again in backward,
//                reduce-scatter of its gradients in backward
//   powersgd:R   per DDP bucket: an all-reduce of P (rows x R per compressed matrix), then one of Q
//                (columns x R), and one of the uncompressed parameters (vectors, and matrices
//                that R does not compress: (rows + columns) R >= rows x columns)
//   int8, 1bit   per bucket an all-gather of every rank's compressed gradient: a byte (a bit) per
//                element and a 4-byte scale per chunk_elements; N - 1 of them arrive at each rank
//   topk:F       per bucket an all-gather of the ceil(F x elements) largest: a 4-byte value and an
//                index_bytes index each
//   local-sgd:H  an all-reduce of the parameters (DDP's buckets) every H steps: 1/H of it per step
//   gossip       each step, the parameters sent to and received from the ring neighbours
// Compression's own compute (PowerSGD's matrix products, quantizing, summing N gathered copies)
// is not modelled: it adds to the compute, and the table's compute is the uncompressed step's.
#include <cstdint>
#include <string>
#include <vector>

#include "tools/cost_model/collective_cost.h"
#include "tools/cost_model/model_shape.h"

namespace dtrain::cost_model {

enum class Method { Ddp, Zero1, Zero2, Zero3, PowerSgd, Int8, OneBit, TopK, LocalSgd, Gossip };

struct MethodChoice {
  Method method = Method::Ddp;
  double setting = 0;  // PowerSGD's rank, top-k's fraction, local SGD's period; 0 otherwise
  std::string spec;    // as the examples' --comm takes it: "powersgd:4"; "zero1" for the stages
};

// "ddp", "zero1", "zero2", "zero3", "powersgd:R", "int8", "1bit", "topk:F", "local-sgd:H",
// "gossip"; raises dtrain::Error naming the accepted forms otherwise (or a setting out of range).
MethodChoice method_from_spec(const std::string& spec);
// Every method, with the issue's settings: powersgd:4, topk:0.01, local-sgd:8.
std::vector<MethodChoice> default_methods();

struct StepSettings {
  double compute_seconds = 0;        // forward + backward + optimizer step of one rank's batch
  double overlap = 0;                // fraction of an overlappable phase hidden (up to its window)
  double backward_fraction = 2.0 / 3.0;  // of the compute: backward, the window of gradient reduction
  int64_t element_bytes = 4;         // of a gradient and a parameter (fp32)
  double bucket_cap_bytes = 25.0 * 1024 * 1024;        // DDP's bucket_cap_mb
  double first_bucket_cap_bytes = 1.0 * 1024 * 1024;   // DDP's first_bucket_cap_mb
  double zero_bucket_cap_bytes = 25.0 * 1024 * 1024;   // ZeroOptions::bucket_cap_mb (stages 1-2)
  int64_t chunk_elements = 256;      // int8 / 1-bit: elements per scale (dist/compression/quantized_compression.h)
  int64_t index_bytes = 4;           // top-k: bytes of an index (Int32 below 2^31 elements)
};

enum class CollectiveKind { AllReduce, AllGather, ReduceScatter, NeighbourExchange };
enum class OverlapWindow { None, Forward, Backward };

struct CommunicationPhase {
  std::string what;  // "gradient all-reduce"
  CollectiveKind kind = CollectiveKind::AllReduce;
  int64_t collectives = 0;  // per occurrence
  double bytes = 0;         // the n of all of them together (collective_cost.h)
  double per_step = 1;      // occurrences per step (1 / H for local SGD)
  OverlapWindow window = OverlapWindow::None;
};

// The phases of one step of method on model with N = ranks.
std::vector<CommunicationPhase> communication_phases(const MethodChoice& method, const ModelShape& model,
                                                     const StepSettings& settings, int64_t ranks);

struct StepPrediction {
  std::string method;
  double collectives = 0;           // per step
  double payload_bytes = 0;         // handed to collectives per rank per step: all-reduce its buffer,
                                    // all-gather its input (n / N), reduce-scatter its input (n),
                                    // an exchange what it sends (dist/communication_volume.h's count)
  double bytes_sent = 0;            // on the wire per rank per step (the ring's)
  double communication_seconds = 0; // all of it, as if nothing overlapped
  double exposed_seconds = 0;       // what the compute does not hide
  double step_seconds = 0;          // compute + exposed
};

// Raises dtrain::Error for a negative compute time, an overlap or backward fraction outside
// [0, 1], or an invalid network (collective_cost.h's validate).
StepPrediction predict_step(const MethodChoice& method, const ModelShape& model, const Network& network,
                            const StepSettings& settings);

double phase_seconds(const CommunicationPhase& phase, const Network& network);

}  // namespace dtrain::cost_model
