#pragma once
// A thin layer over cuDNN's backend (graph) API: RAII for backend descriptors, a builder that
// describes an operation graph node by node, and the search for an execution plan (heuristics
// mode A, the first engine config whose plan finalizes). Part of builds with cuDNN only.
//
// Building never raises: the first cuDNN call that fails stops the builder (every later call does
// nothing) and failure() names the call, the node and cuDNN's status and message, so the caller can
// decline and say why. Executing a plan raises a dtrain::Error naming the call that failed.
//
//   cudnn_graph::GraphBuilder graph;
//   graph.tensor(kA, CUDNN_DATA_BFLOAT16, a_shape, "A");
//   graph.tensor(kB, CUDNN_DATA_BFLOAT16, b_shape, "B");
//   graph.tensor(kC, CUDNN_DATA_BFLOAT16, c_shape, "C");
//   graph.matmul(kA, kB, kC, "A @ B");
//   std::optional<cudnn_graph::Plan> plan = graph.build_plan(handle);
//   if (!plan) return decline(graph.failure());
//   cudnn_graph::execute(handle, *plan, {kA, kB, kC}, {a.data(), b.data(), c.data()}, workspace);
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dtrain::cuda::cudnn_graph {

using Uid = int64_t;
inline constexpr Uid kNoTensor = -1;

// Owns one backend descriptor; destroys it with itself.
class Descriptor {
 public:
  Descriptor() = default;
  ~Descriptor();
  Descriptor(Descriptor&& other) noexcept;
  Descriptor& operator=(Descriptor&& other) noexcept;
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;

  // Creates a descriptor of the type in place of this one's.
  cudnnStatus_t create(cudnnBackendDescriptorType_t type);
  cudnnBackendDescriptor_t get() const { return raw_; }
  // For attributes that take an array of descriptors (cuDNN reads the handle, not the object).
  const cudnnBackendDescriptor_t* address() const { return &raw_; }

 private:
  cudnnBackendDescriptor_t raw_ = nullptr;
};

// Sizes and strides (in elements) of a 4-d tensor; every graph tensor here is 4-d.
struct Shape4 {
  std::array<int64_t, 4> dims{};
  std::array<int64_t, 4> strides{};
};

// A finalized execution plan with every descriptor it was built from, kept alive beside it.
struct Plan {
  std::vector<Descriptor> parts;
  Descriptor plan;
  int64_t workspace_bytes = 0;
};

// What cuDNN makes of a graph for a GPU described to it rather than present (GraphBuilder::
// check_offline): no GPU, handle or driver call needed, so tests can check the graphs anywhere.
struct OfflineCheck {
  int64_t engine_configs = 0;     // the configs heuristics mode A lists for the graph
  int64_t supported_configs = 0;  // those of them that pass cuDNN's support checks for that GPU
  // Empty when supported_configs > 0, else the call that failed or why no config is supported.
  std::string failure;
  bool supported() const { return failure.empty() && supported_configs > 0; }
};

class GraphBuilder {
 public:
  // A tensor whose memory the variant pack supplies under uid (16-byte aligned).
  void tensor(Uid uid, cudnnDataType_t type, const Shape4& shape, const char* name);
  // A float32 scalar passed by value: its variant-pack pointer is a host float.
  void scalar(Uid uid, const char* name);
  // A tensor that lives only inside the fused kernel; returns its (fresh) uid.
  Uid virtual_tensor(cudnnDataType_t type, const Shape4& shape, const char* name);

  // c = a @ b over the last two dims, batched over the first two; float32 accumulation.
  void matmul(Uid a, Uid b, Uid c, const char* name);
  // y = mode(x[, b[, t]]) at precision math; axis is for CUDNN_POINTWISE_GEN_INDEX (else -1).
  void pointwise(cudnnPointwiseMode_t mode, Uid x, Uid b, Uid t, Uid y, cudnnDataType_t math, int64_t axis,
                 const char* name);
  // y = reduction of x over the dims where y has size 1, in float32.
  void reduction(cudnnReduceTensorOp_t op, Uid x, Uid y, const char* name);
  // y = x seen with y's dims and strides (a transpose, for the graphs here).
  void reshape(Uid x, Uid y, const char* name);

  bool ok() const { return failure_.empty(); }
  const std::string& failure() const { return failure_; }

  // Finalizes the operation graph on handle, asks heuristics (mode A) for engine configs and
  // returns the plan of the first one that finalizes; nullopt (with failure() saying why) if none.
  std::optional<Plan> build_plan(cudnnHandle_t handle);

  // Finalizes the operation graph without a handle and asks heuristics (mode A) which engine
  // configs would run it on the GPU that device_properties_json describes (a device-property
  // descriptor in cuDNN's JSON form, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION; cuDNN 9.8 and newer).
  // Needs no GPU, but cuDNN counts its runtime-compiled engines (the fused attention ones) only where
  // it can load a libcuda.so.1, the CUDA toolkit's stub (lib64/stubs) included. A failure also stops
  // the builder, as in build_plan.
  OfflineCheck check_offline(const std::string& device_properties_json);

 private:
  // Records the first failure; true while building may go on.
  bool step(cudnnStatus_t status, const char* call, const char* node);
  bool set(const Descriptor& descriptor, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t count, const void* values, const char* call, const char* node);
  bool set_tensor(const Descriptor& operation, cudnnBackendAttributeName_t name, Uid uid, const char* node);
  void add_tensor(Uid uid, cudnnDataType_t type, const Shape4& shape, bool is_virtual, bool by_value,
                  const char* name);
  // Finalizes and keeps an operation (with the descriptor it points to, kept alive beside it).
  void add_operation(Descriptor operation, Descriptor description, const char* node);

  std::map<Uid, Descriptor> tensors_;
  std::vector<Descriptor> operations_;
  std::vector<Descriptor> descriptions_;  // pointwise, matmul and reduction descriptors
  Uid next_virtual_uid_ = 1 << 20;        // far above any caller-chosen uid
  std::string failure_;
};

// Runs plan on handle's stream with the variant pack (uids[i] at pointers[i]) and the workspace
// (plan.workspace_bytes of device memory, or null when it needs none). Raises naming the call.
void execute(cudnnHandle_t handle, const Plan& plan, const std::vector<Uid>& uids, const std::vector<void*>& pointers,
             void* workspace);

// "<call> failed: <status> (<cuDNN's message for this thread's last error>)".
std::string describe_failure(cudnnStatus_t status, const char* call);

}  // namespace dtrain::cuda::cudnn_graph
