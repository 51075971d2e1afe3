# Finds cuDNN 9 under CUDNN_ROOT (default /usr/local/cuda; PyTorch's wheels put it in
# site-packages/nvidia/cudnn). Defines CUDNN_FOUND, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY and the
# imported target CUDNN::cudnn.
set(CUDNN_ROOT "/usr/local/cuda" CACHE PATH "Where cuDNN is installed (include/ and lib/ or lib64/)")
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDNN_ROOT} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_path(CUDNN_INCLUDE_DIR cudnn.h)
# Wheels ship only the versioned name (libcudnn.so.9).
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDNN_ROOT} PATH_SUFFIXES lib64 lib NO_DEFAULT_PATH)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR)
if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
endif()
