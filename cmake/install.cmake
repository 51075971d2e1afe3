# What `cmake --install build --prefix P` puts under P (included at the end of CMakeLists.txt):
#   include/dtrain/    the headers by their path from the repository root (core/tensor.h, dtrain.h)
#   lib/               libdtrain_<folder>.a; libdtrain_cuda.so and libdtrain_nccl.so when built
#   bin/               dtrain-consolidate, dtrain-convert, dtrain-cost-model
#   lib/cmake/dtrain/  dtrainConfig.cmake, dtrainConfigVersion.cmake and the exported targets
#   lib/pkgconfig/     dtrain.pc
# Everything is found relative to P, which is only known at install time (--prefix), so no file
# holds an absolute path: the targets file and dtrain.pc locate themselves.
include(CMakePackageConfigHelpers)

set(dtrain_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/dtrain)

foreach(folder ${DTRAIN_LIBRARY_FOLDERS})
  # dist/nccl/ is the NCCL plugin's own code, never included by a user.
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${folder}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dtrain/${folder}
          FILES_MATCHING PATTERN "*.h" PATTERN nccl EXCLUDE)
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/dtrain.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dtrain)

install(TARGETS ${DTRAIN_LIBRARIES} dtrain EXPORT dtrainTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT dtrainTargets NAMESPACE dtrain:: DESTINATION ${dtrain_cmake_dir})

# The plugins next to the static libraries, where dtrain::core's RUNPATH points programs. They
# keep the RUNPATH to the CUDA, cuDNN and NCCL libraries this build linked (outside the
# system's folders, e.g. /usr/local/cuda/lib64).
set(DTRAIN_INSTALLED_CUDA_PLUGIN OFF)
set(DTRAIN_INSTALLED_NCCL_PLUGIN OFF)
foreach(plugin cuda nccl)
  if(TARGET dtrain_${plugin})
    set_target_properties(dtrain_${plugin} PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
    install(TARGETS dtrain_${plugin} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
    string(TOUPPER ${plugin} upper)
    set(DTRAIN_INSTALLED_${upper}_PLUGIN ON)
  endif()
endforeach()

# The tools find the plugins through their RUNPATH, relative to where they are installed.
foreach(tool dtrain-consolidate dtrain-convert dtrain-cost-model)
  if(TARGET ${tool})
    file(RELATIVE_PATH bin_to_lib /${CMAKE_INSTALL_BINDIR} /${CMAKE_INSTALL_LIBDIR})
    set_target_properties(${tool} PROPERTIES INSTALL_RPATH "\$ORIGIN/${bin_to_lib}")
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dtrainConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/dtrainConfig.cmake INSTALL_DESTINATION ${dtrain_cmake_dir})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dtrainConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dtrainConfig.cmake ${PROJECT_BINARY_DIR}/dtrainConfigVersion.cmake
        DESTINATION ${dtrain_cmake_dir})

# dtrain.pc: the same link line as dtrain::dtrain, libraries in dependency order (DTRAIN_LIBRARIES
# lists dependents first), with core whole-archived and the symbols exported when the plugins
# need them. Its prefix is relative to the file itself (pkg-config's ${pcfiledir}).
file(RELATIVE_PATH pc_to_prefix /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" pc_to_prefix "${pc_to_prefix}")
set(DTRAIN_PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
set(DTRAIN_PC_LIBS "")
foreach(library ${DTRAIN_LIBRARIES})
  if(library STREQUAL "dtrain_core" AND TARGET dtrain_cuda)
    string(APPEND DTRAIN_PC_LIBS " -Wl,--export-dynamic -Wl,--whole-archive -ldtrain_core -Wl,--no-whole-archive")
    string(APPEND DTRAIN_PC_LIBS " -Wl,-rpath,\${libdir}")
  else()
    string(APPEND DTRAIN_PC_LIBS " -l${library}")
  endif()
endforeach()
string(STRIP "${DTRAIN_PC_LIBS}" DTRAIN_PC_LIBS)
set(DTRAIN_PC_REQUIRES "")
set(DTRAIN_PC_CFLAGS "")
if(DTRAIN_MPI_ENABLED)
  set(DTRAIN_PC_REQUIRES " mpi")
  set(DTRAIN_PC_CFLAGS " -DDTRAIN_WITH_MPI -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX")  # MPI's C API only
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/dtrain.pc.in ${PROJECT_BINARY_DIR}/dtrain.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dtrain.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
