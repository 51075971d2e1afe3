#ifdef DTRAIN_WITH_CUDNN

#include "cuda/cudnn_graph.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "core/error.h"

namespace dtrain::cuda::cudnn_graph {
namespace {

// cuDNN's account of this thread's last failure (which check refused what), often the real reason.
std::string last_error_message() {
  char message[2048] = {0};
  cudnnGetLastErrorString(message, sizeof(message));
  return message;
}

// The execution plan of one engine config on handle's GPU, with its workspace size.
cudnnStatus_t finalize_plan(cudnnHandle_t handle, cudnnBackendDescriptor_t config, Plan& plan) {
  cudnnStatus_t status = plan.plan.create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  status = cudnnBackendSetAttribute(plan.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  status = cudnnBackendSetAttribute(plan.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  status = cudnnBackendFinalize(plan.plan.get());  // compiles the fused kernel where the engine does so
  if (status != CUDNN_STATUS_SUCCESS) return status;
  return cudnnBackendGetAttribute(plan.plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                  nullptr, &plan.workspace_bytes);
}

}  // namespace

Descriptor::~Descriptor() {
  if (raw_ != nullptr) cudnnBackendDestroyDescriptor(raw_);  // nothing to do about a failure here
}

Descriptor::Descriptor(Descriptor&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}

Descriptor& Descriptor::operator=(Descriptor&& other) noexcept {
  if (this != &other) {
    if (raw_ != nullptr) cudnnBackendDestroyDescriptor(raw_);
    raw_ = std::exchange(other.raw_, nullptr);
  }
  return *this;
}

cudnnStatus_t Descriptor::create(cudnnBackendDescriptorType_t type) {
  *this = Descriptor();
  return cudnnBackendCreateDescriptor(type, &raw_);
}

std::string describe_failure(cudnnStatus_t status, const char* call) {
  const std::string message = last_error_message();
  std::string text = detail::concat(call, " failed: ", cudnnGetErrorString(status));
  if (!message.empty()) text += detail::concat(" (", message, ")");
  return text;
}

bool GraphBuilder::step(cudnnStatus_t status, const char* call, const char* node) {
  if (!ok()) return false;
  if (status != CUDNN_STATUS_SUCCESS) failure_ = detail::concat(node, ": ", describe_failure(status, call));
  return ok();
}

bool GraphBuilder::set(const Descriptor& descriptor, cudnnBackendAttributeName_t name,
                       cudnnBackendAttributeType_t type, int64_t count, const void* values, const char* call,
                       const char* node) {
  if (!ok()) return false;
  return step(cudnnBackendSetAttribute(descriptor.get(), name, type, count, values), call, node);
}

bool GraphBuilder::set_tensor(const Descriptor& operation, cudnnBackendAttributeName_t name, Uid uid,
                              const char* node) {
  if (!ok()) return false;
  const auto found = tensors_.find(uid);
  if (found == tensors_.end()) {
    failure_ = detail::concat(node, ": no tensor with uid ", uid, " was described before it");
    return false;
  }
  return set(operation, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, found->second.address(),
             "cudnnBackendSetAttribute(operand tensor)", node);
}

void GraphBuilder::add_tensor(Uid uid, cudnnDataType_t type, const Shape4& shape, bool is_virtual, bool by_value,
                              const char* name) {
  if (!ok()) return;
  Descriptor tensor;
  const int64_t alignment = 16;  // what the fused attention kernels load with; the caller checks pointers
  if (!step(tensor.create(CUDNN_BACKEND_TENSOR_DESCRIPTOR), "cudnnBackendCreateDescriptor(TENSOR)", name)) return;
  set(tensor, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "set TENSOR_DATA_TYPE", name);
  set(tensor, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, shape.dims.data(), "set TENSOR_DIMENSIONS", name);
  set(tensor, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, shape.strides.data(), "set TENSOR_STRIDES", name);
  set(tensor, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "set TENSOR_UNIQUE_ID", name);
  set(tensor, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, "set TENSOR_BYTE_ALIGNMENT", name);
  set(tensor, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "set TENSOR_IS_VIRTUAL", name);
  if (by_value) {
    set(tensor, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "set TENSOR_IS_BY_VALUE", name);
  }
  if (!step(cudnnBackendFinalize(tensor.get()), "cudnnBackendFinalize(TENSOR)", name)) return;
  if (!tensors_.emplace(uid, std::move(tensor)).second) failure_ = detail::concat(name, ": uid ", uid, " is taken");
}

void GraphBuilder::tensor(Uid uid, cudnnDataType_t type, const Shape4& shape, const char* name) {
  add_tensor(uid, type, shape, false, false, name);
}

void GraphBuilder::scalar(Uid uid, const char* name) {
  add_tensor(uid, CUDNN_DATA_FLOAT, Shape4{{1, 1, 1, 1}, {1, 1, 1, 1}}, false, true, name);
}

Uid GraphBuilder::virtual_tensor(cudnnDataType_t type, const Shape4& shape, const char* name) {
  const Uid uid = next_virtual_uid_++;
  add_tensor(uid, type, shape, true, false, name);
  return uid;
}

void GraphBuilder::add_operation(Descriptor operation, Descriptor description, const char* node) {
  if (!step(cudnnBackendFinalize(operation.get()), "cudnnBackendFinalize(operation)", node)) return;
  operations_.push_back(std::move(operation));
  descriptions_.push_back(std::move(description));
}

void GraphBuilder::matmul(Uid a, Uid b, Uid c, const char* name) {
  if (!ok()) return;
  Descriptor description, operation;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  if (!step(description.create(CUDNN_BACKEND_MATMUL_DESCRIPTOR), "cudnnBackendCreateDescriptor(MATMUL)", name)) return;
  if (!set(description, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, "set MATMUL_COMP_TYPE", name) ||
      !step(cudnnBackendFinalize(description.get()), "cudnnBackendFinalize(MATMUL)", name) ||
      !step(operation.create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR),
            "cudnnBackendCreateDescriptor(OPERATION_MATMUL)", name)) {
    return;
  }
  set_tensor(operation, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, name);
  set(operation, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, description.address(),
      "set OPERATION_MATMUL_DESC", name);
  if (ok()) add_operation(std::move(operation), std::move(description), name);
}

void GraphBuilder::pointwise(cudnnPointwiseMode_t mode, Uid x, Uid b, Uid t, Uid y, cudnnDataType_t math,
                             int64_t axis, const char* name) {
  if (!ok()) return;
  Descriptor description, operation;
  if (!step(description.create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR), "cudnnBackendCreateDescriptor(POINTWISE)", name)) {
    return;
  }
  set(description, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "set POINTWISE_MODE", name);
  set(description, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, "set POINTWISE_MATH_PREC", name);
  if (axis >= 0) set(description, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "set POINTWISE_AXIS", name);
  if (!ok() || !step(cudnnBackendFinalize(description.get()), "cudnnBackendFinalize(POINTWISE)", name) ||
      !step(operation.create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR),
            "cudnnBackendCreateDescriptor(OPERATION_POINTWISE)", name)) {
    return;
  }
  set(operation, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
      description.address(), "set OPERATION_POINTWISE_PW_DESCRIPTOR", name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, name);
  if (b != kNoTensor) set_tensor(operation, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, name);
  if (t != kNoTensor) set_tensor(operation, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, name);
  // y = mode(alpha1 * x, alpha2 * b): unit factors, as cuDNN's own frontend always sets them.
  const float alpha1 = 1.0f, alpha2 = 1.0f;
  set(operation, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &alpha1, "set POINTWISE_ALPHA1", name);
  set(operation, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &alpha2, "set POINTWISE_ALPHA2", name);
  if (ok()) add_operation(std::move(operation), std::move(description), name);
}

void GraphBuilder::reduction(cudnnReduceTensorOp_t op, Uid x, Uid y, const char* name) {
  if (!ok()) return;
  Descriptor description, operation;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  if (!step(description.create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR), "cudnnBackendCreateDescriptor(REDUCTION)", name)) {
    return;
  }
  set(description, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &op,
      "set REDUCTION_OPERATOR", name);
  set(description, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, "set REDUCTION_COMP_TYPE", name);
  if (!ok() || !step(cudnnBackendFinalize(description.get()), "cudnnBackendFinalize(REDUCTION)", name) ||
      !step(operation.create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR),
            "cudnnBackendCreateDescriptor(OPERATION_REDUCTION)", name)) {
    return;
  }
  set_tensor(operation, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, name);
  set(operation, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, description.address(),
      "set OPERATION_REDUCTION_DESC", name);
  if (ok()) add_operation(std::move(operation), std::move(description), name);
}

void GraphBuilder::reshape(Uid x, Uid y, const char* name) {
  if (!ok()) return;
  Descriptor operation;
  if (!step(operation.create(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR),
            "cudnnBackendCreateDescriptor(OPERATION_RESHAPE)", name)) {
    return;
  }
  set_tensor(operation, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x, name);
  set_tensor(operation, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y, name);
  if (ok()) add_operation(std::move(operation), Descriptor(), name);
}

std::optional<Plan> GraphBuilder::build_plan(cudnnHandle_t handle) {
  if (!ok()) return std::nullopt;
  Descriptor graph, heuristics;
  std::vector<cudnnBackendDescriptor_t> operations;
  for (const Descriptor& operation : operations_) operations.push_back(operation.get());
  const char* node = "operation graph";
  // The graph: cuDNN matches the whole of it against its fused patterns when it finalizes.
  if (!step(graph.create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR), "cudnnBackendCreateDescriptor(OPERATIONGRAPH)",
            node) ||
      !set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(operations.size()),
           operations.data(), "set OPERATIONGRAPH_OPS", node) ||
      !set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "set OPERATIONGRAPH_HANDLE", node) ||
      !step(cudnnBackendFinalize(graph.get()), "cudnnBackendFinalize(OPERATIONGRAPH)", node)) {
    return std::nullopt;
  }

  node = "engine heuristics";
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  int64_t offered = 0;
  if (!step(heuristics.create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), "cudnnBackendCreateDescriptor(ENGINEHEUR)",
            node) ||
      !set(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, graph.address(),
           "set ENGINEHEUR_OPERATION_GRAPH", node) ||
      !set(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "set ENGINEHEUR_MODE", node) ||
      !step(cudnnBackendFinalize(heuristics.get()), "cudnnBackendFinalize(ENGINEHEUR)", node) ||
      !step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &offered, nullptr),
            "get ENGINEHEUR_RESULTS (count)", node)) {
    return std::nullopt;
  }
  if (offered <= 0) {
    failure_ = "heuristics (mode A) offered no engine for the graph: cuDNN has no fused kernel for this case";
    return std::nullopt;
  }

  // cuDNN fills engine-config descriptors the caller created.
  std::vector<Descriptor> configs(static_cast<size_t>(offered));
  std::vector<cudnnBackendDescriptor_t> raw_configs;
  for (Descriptor& config : configs) {
    if (!step(config.create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR), "cudnnBackendCreateDescriptor(ENGINECFG)", node)) {
      return std::nullopt;
    }
    raw_configs.push_back(config.get());
  }
  int64_t returned = 0;
  if (!step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                     offered, &returned, raw_configs.data()),
            "get ENGINEHEUR_RESULTS", node)) {
    return std::nullopt;
  }
  if (returned == 0) {  // every config failed cuDNN's support checks for this GPU and graph
    failure_ = detail::concat("heuristics (mode A) offered ", offered, " engine configs, none supported here: ",
                              last_error_message());
    return std::nullopt;
  }

  // The first config (heuristics' order is their preference) whose plan finalizes on this GPU.
  std::string refusals;
  for (int64_t i = 0; i < returned; ++i) {
    Plan plan;
    const cudnnStatus_t status = finalize_plan(handle, raw_configs[static_cast<size_t>(i)], plan);
    if (status != CUDNN_STATUS_SUCCESS) {
      refusals += detail::concat(refusals.empty() ? "" : "; ", "config ", i, ": ",
                                 describe_failure(status, "execution plan"));
      continue;
    }
    for (auto& [uid, tensor] : tensors_) plan.parts.push_back(std::move(tensor));
    for (Descriptor& operation : operations_) plan.parts.push_back(std::move(operation));
    for (Descriptor& description : descriptions_) plan.parts.push_back(std::move(description));
    plan.parts.push_back(std::move(graph));
    plan.parts.push_back(std::move(configs[static_cast<size_t>(i)]));
    tensors_.clear();
    operations_.clear();
    descriptions_.clear();
    return plan;
  }
  failure_ = detail::concat("none of the ", returned, " engine configs from heuristics mode A finalized: ", refusals);
  return std::nullopt;
}

OfflineCheck GraphBuilder::check_offline(const std::string& device_properties_json) {
  OfflineCheck result;
#if CUDNN_VERSION < 90800
  (void)device_properties_json;
  result.failure = detail::concat("cuDNN ", CUDNN_VERSION, " has no device-property descriptor (9.8 and newer do)");
  return result;
#else
  Descriptor device, graph, heuristics;
  std::vector<cudnnBackendDescriptor_t> operations;
  for (const Descriptor& operation : operations_) operations.push_back(operation.get());
  const char* node = "device properties";
  if (ok() && operations.empty()) failure_ = "operation graph: the builder holds no operation";
  if (!step(device.create(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR), "cudnnBackendCreateDescriptor(DEVICEPROP)", node) ||
      !set(device, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
           static_cast<int64_t>(device_properties_json.size()), device_properties_json.data(),
           "set DEVICEPROP_JSON_REPRESENTATION", node) ||
      !step(cudnnBackendFinalize(device.get()), "cudnnBackendFinalize(DEVICEPROP)", node)) {
    result.failure = failure_;
    return result;
  }
  node = "operation graph";
  if (!step(graph.create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR), "cudnnBackendCreateDescriptor(OPERATIONGRAPH)",
            node) ||
      !set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(operations.size()),
           operations.data(), "set OPERATIONGRAPH_OPS", node) ||
      !step(cudnnBackendFinalize(graph.get()), "cudnnBackendFinalize(OPERATIONGRAPH)", node)) {
    result.failure = failure_;
    return result;
  }
  node = "engine heuristics";
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  if (!step(heuristics.create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), "cudnnBackendCreateDescriptor(ENGINEHEUR)",
            node) ||
      !set(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, graph.address(),
           "set ENGINEHEUR_OPERATION_GRAPH", node) ||
      !set(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "set ENGINEHEUR_MODE", node) ||
      !set(heuristics, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, device.address(),
           "set ENGINEHEUR_DEVICEPROP", node) ||
      !step(cudnnBackendFinalize(heuristics.get()), "cudnnBackendFinalize(ENGINEHEUR)", node) ||
      !step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &result.engine_configs, nullptr),
            "get ENGINEHEUR_RESULTS (count)", node)) {
    result.failure = failure_;
    return result;
  }
  // As in build_plan: cuDNN fills the configs that pass its support checks into descriptors we made.
  std::vector<Descriptor> configs(static_cast<size_t>(std::max<int64_t>(result.engine_configs, 0)));
  std::vector<cudnnBackendDescriptor_t> raw_configs;
  for (Descriptor& config : configs) {
    if (!step(config.create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR), "cudnnBackendCreateDescriptor(ENGINECFG)", node)) {
      result.failure = failure_;
      return result;
    }
    raw_configs.push_back(config.get());
  }
  if (!raw_configs.empty() &&
      !step(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                     result.engine_configs, &result.supported_configs, raw_configs.data()),
            "get ENGINEHEUR_RESULTS", node)) {
    result.failure = failure_;
    return result;
  }
  if (result.supported_configs <= 0) {
    failure_ = detail::concat("heuristics (mode A) offered ", result.engine_configs,
                              " engine configs, none supported on the described GPU: ", last_error_message());
    result.failure = failure_;
  }
  return result;
#endif
}

void execute(cudnnHandle_t handle, const Plan& plan, const std::vector<Uid>& uids, const std::vector<void*>& pointers,
             void* workspace) {
  auto check = [](cudnnStatus_t status, const char* call) {
    if (status != CUDNN_STATUS_SUCCESS) fail("cuDNN call ", describe_failure(status, call));
  };
  if (uids.size() != pointers.size()) {
    fail("cuDNN variant pack: ", uids.size(), " uids but ", pointers.size(), " pointers");
  }
  Descriptor pack;
  const auto count = static_cast<int64_t>(uids.size());
  check(pack.create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR), "cudnnBackendCreateDescriptor(VARIANT_PACK)");
  check(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, count, uids.data()),
        "cudnnBackendSetAttribute(VARIANT_PACK_UNIQUE_IDS)");
  check(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, count,
                                 pointers.data()),
        "cudnnBackendSetAttribute(VARIANT_PACK_DATA_POINTERS)");
  check(cudnnBackendSetAttribute(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace),
        "cudnnBackendSetAttribute(VARIANT_PACK_WORKSPACE)");
  check(cudnnBackendFinalize(pack.get()), "cudnnBackendFinalize(VARIANT_PACK)");
  check(cudnnBackendExecute(handle, plan.plan.get(), pack.get()), "cudnnBackendExecute");
}

}  // namespace dtrain::cuda::cudnn_graph

#endif  // DTRAIN_WITH_CUDNN
