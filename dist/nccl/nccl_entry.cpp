// libdtrain_nccl.so's entry point: dist's loader (dist/nccl_library.cpp) calls it once and talks
// to NCCL only through the NcclLibrary it returns.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "core/error.h"
#include "dist/nccl/delay_kernel.h"
#include "dist/nccl/nccl_backend.h"
#include "dist/nccl/nccl_check.h"

namespace dtrain::dist::nccl {
namespace {

class Library final : public detail::NcclLibrary {
 public:
  std::string version() override {
    int code = 0;
    DTRAIN_NCCL_CHECK(ncclGetVersion(&code));
    // Since NCCL 2.9 the code is major * 10000 + minor * 100 + patch.
    return dtrain::detail::concat("NCCL ", code / 10000, ".", (code / 100) % 100, ".", code % 100);
  }

  detail::NcclUniqueId new_unique_id() override {
    ncclUniqueId id;
    DTRAIN_NCCL_CHECK(ncclGetUniqueId(&id));
    detail::NcclUniqueId result;
    std::memcpy(result.bytes.data(), &id, sizeof(id));
    return result;
  }

  std::unique_ptr<CommunicationBackend> create_backend(const detail::NcclUniqueId& id,
                                                       detail::NcclBackendOptions options) override {
    return std::make_unique<NcclBackend>(id, options);
  }

  void delay_stream(int device, void* stream, int64_t microseconds) override {
    int previous = 0;
    DTRAIN_NCCL_CUDA_CHECK(cudaGetDevice(&previous));
    DTRAIN_NCCL_CUDA_CHECK(cudaSetDevice(device));
    spin_on_stream(static_cast<cudaStream_t>(stream), microseconds);
    DTRAIN_NCCL_CUDA_CHECK(cudaSetDevice(previous));
  }
};

}  // namespace
}  // namespace dtrain::dist::nccl

extern "C" __attribute__((visibility("default"))) dtrain::dist::detail::NcclLibrary* dtrain_nccl_library(
    int abi_version, const char** error) {
  using namespace dtrain;
  static std::string failure;  // lives as long as the library, as the loader expects
  if (abi_version != dist::detail::kNcclLibraryAbiVersion) {
    failure = dtrain::detail::concat("libdtrain_nccl.so was built for interface version ", dist::detail::kNcclLibraryAbiVersion,
                             ", this program expects ", abi_version, " (rebuild both from one source tree)");
    *error = failure.c_str();
    return nullptr;
  }
  static dist::nccl::Library library;
  return &library;
}
