#include "cuda/lt_plan_cache.h"

#include <array>
#include <cstdint>
#include <utility>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace dtrain::cuda {
namespace {

cublasLtHandle_t lt_handle_for(int device) {
  thread_local std::array<cublasLtHandle_t, kMaxDevices> handles{};
  if (handles[device] == nullptr) {
    DeviceGuard guard(device);
    DTRAIN_CUBLAS_CHECK(cublasLtCreate(&handles[device]));  // never destroyed: the driver may be gone at exit
  }
  return handles[device];
}

template <typename Value>
void set_description(cublasLtMatmulDesc_t description, cublasLtMatmulDescAttributes_t attribute, const Value& value) {
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(description, attribute, &value, sizeof(value)));
}

template <typename Value>
void set_preference(cublasLtMatmulPreference_t preference, cublasLtMatmulPreferenceAttributes_t attribute,
                    const Value& value) {
  DTRAIN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
}

bool has_bias(cublasLtEpilogue_t epilogue) {
  switch (epilogue) {
    case CUBLASLT_EPILOGUE_BIAS:
    case CUBLASLT_EPILOGUE_GELU_BIAS:
    case CUBLASLT_EPILOGUE_GELU_AUX_BIAS:
    case CUBLASLT_EPILOGUE_BGRADA:
    case CUBLASLT_EPILOGUE_BGRADB:
    case CUBLASLT_EPILOGUE_DGELU_BGRAD: return true;
    default: return false;
  }
}

}  // namespace

// The descriptors of one key (host objects: destroying them needs no driver).
struct LtPlanCache::Plan {
  cublasLtMatmulDesc_t description = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  bool found = false;

  ~Plan() {
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (description != nullptr) cublasLtMatmulDescDestroy(description);
  }
};

LtPlanCache& LtPlanCache::for_this_thread() {
  thread_local LtPlanCache cache;
  return cache;
}

LtPlanCache::~LtPlanCache() = default;

bool LtPlanCache::run(const LtPlanKey& key, const LtOperands& operands, cudaStream_t stream) {
  const auto epilogue = static_cast<cublasLtEpilogue_t>(key.epilogue);
  const auto data_type = static_cast<cudaDataType_t>(key.data_type);
  cublasLtHandle_t handle = lt_handle_for(key.device);
  auto found = plans_.find(key);
  if (found == plans_.end()) {
    auto plan = std::make_unique<Plan>();
    DTRAIN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->description, static_cast<cublasComputeType_t>(key.compute_type),
                                                 CUDA_R_32F));
    set_description(plan->description, CUBLASLT_MATMUL_DESC_TRANSA, key.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_description(plan->description, CUBLASLT_MATMUL_DESC_TRANSB, key.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_description(plan->description, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
    // The heuristic may look at the pointers' presence: set them now, and again on every call.
    if (has_bias(epilogue)) set_description(plan->description, CUBLASLT_MATMUL_DESC_BIAS_POINTER, operands.bias);
    if (key.aux_ld != 0) {
      set_description(plan->description, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, operands.aux);
      set_description(plan->description, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, key.aux_ld);
    }
    // Column-major layouts of the stored matrices (op applied by the descriptor).
    const uint64_t a_rows = static_cast<uint64_t>(key.transpose_a ? key.k : key.m);
    const uint64_t a_columns = static_cast<uint64_t>(key.transpose_a ? key.m : key.k);
    const uint64_t b_rows = static_cast<uint64_t>(key.transpose_b ? key.n : key.k);
    const uint64_t b_columns = static_cast<uint64_t>(key.transpose_b ? key.k : key.n);
    DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, data_type, a_rows, a_columns, key.lda));
    DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, data_type, b_rows, b_columns, key.ldb));
    DTRAIN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, data_type, static_cast<uint64_t>(key.m),
                                                   static_cast<uint64_t>(key.n), key.ldd));

    cublasLtMatmulPreference_t preference = nullptr;
    DTRAIN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    struct PreferenceOwner {
      cublasLtMatmulPreference_t handle;
      ~PreferenceOwner() { cublasLtMatmulPreferenceDestroy(handle); }
    } preference_owner{preference};
    set_preference(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, kLtWorkspaceBytes);
    set_preference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.alignment_a);
    set_preference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.alignment_b);
    set_preference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.alignment_d);
    set_preference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.alignment_d);
    int count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan->description, plan->a, plan->b, plan->d,
                                                                 plan->d, preference, 1, &plan->heuristic, &count);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) DTRAIN_CUBLAS_CHECK(status);
    plan->found = status == CUBLAS_STATUS_SUCCESS && count > 0;
    found = plans_.emplace(key, std::move(plan)).first;
  }
  Plan& plan = *found->second;
  if (!plan.found) return false;
  if (has_bias(epilogue)) set_description(plan.description, CUBLASLT_MATMUL_DESC_BIAS_POINTER, operands.bias);
  if (key.aux_ld != 0) set_description(plan.description, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, operands.aux);
  // The workspace comes from the caching allocator on this stream (a cached block after the first call).
  ScratchBuffer workspace(key.device, kLtWorkspaceBytes);
  const float alpha = 1.0f, beta = 0.0f;
  DTRAIN_CUBLAS_CHECK(cublasLtMatmul(handle, plan.description, &alpha, operands.a, plan.a, operands.b, plan.b, &beta,
                                     operands.d, plan.d, operands.d, plan.d, &plan.heuristic.algo, workspace.data(),
                                     kLtWorkspaceBytes, stream));
  return true;
}

}  // namespace dtrain::cuda
