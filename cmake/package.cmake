# cpack -G DEB (run in the build folder): a Debian package of what cmake/install.cmake installs,
# under /usr. Its dependencies are what a program built against it needs from Debian (headers it
# includes, libraries it links); the CUDA plugins, when built, also need the CUDA libraries this
# build linked (not Debian packages: found through the plugins' RUNPATH, e.g. /usr/local/cuda).
set(CPACK_PACKAGE_NAME dtrain)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "dtrain maintainers <dtrain@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "C++ training framework: tensors, autograd, layers, optimizers, DDP and ZeRO")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)  # xz would cost CI tens of seconds on 25 MB of libraries
set(dtrain_deb_depends "libeigen3-dev (>= 3.3), zlib1g-dev, libgomp1, libstdc++-12-dev | libstdc++-dev")
if(DTRAIN_MPI_ENABLED)
  string(APPEND dtrain_deb_depends ", libopenmpi-dev | mpi-default-dev")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${dtrain_deb_depends}")
include(CPack)
