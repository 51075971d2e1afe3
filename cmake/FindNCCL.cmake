# Finds NCCL 2 under NCCL_ROOT (default /usr/local/cuda; PyTorch's wheels put it in
# site-packages/nvidia/nccl). Defines NCCL_FOUND, NCCL_INCLUDE_DIR, NCCL_LIBRARY and the
# imported target NCCL::nccl.
set(NCCL_ROOT "/usr/local/cuda" CACHE PATH "Where NCCL is installed (include/ and lib/ or lib64/)")
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_path(NCCL_INCLUDE_DIR nccl.h)
# Wheels ship only the versioned name (libnccl.so.2).
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${NCCL_ROOT} PATH_SUFFIXES lib64 lib NO_DEFAULT_PATH)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR)
if(NCCL_FOUND AND NOT TARGET NCCL::nccl)
  add_library(NCCL::nccl UNKNOWN IMPORTED)
  set_target_properties(NCCL::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
endif()
