# ProcpoolInstall
# ---------------
# Install rules for the procpool target, included from the top-level
# CMakeLists.txt:
#
#   <includedir>/procpool.h
#   <libdir>/libprocpool.a, or libprocpool.so.X.Y.Z with its SONAME link and
#     development link (procpool.dll in <bindir> and its import library on
#     Windows)
#   <libdir>/cmake/procpool/  procpoolConfig.cmake, procpoolConfigVersion.cmake,
#     procpoolTargets*.cmake and FindAPR.cmake:
#     find_package(procpool CONFIG REQUIRED) gives procpool::procpool
#   <libdir>/pkgconfig/procpool.pc
#
# The version file accepts requests for the same major version
# (SameMajorVersion).

include(CMakePackageConfigHelpers)

set(PP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/procpool" CACHE STRING
    "Where to install procpool's CMake package files (relative to the prefix)")
set(PP_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where to install procpool.pc (relative to the prefix)")
mark_as_advanced(PP_INSTALL_CMAKEDIR PP_INSTALL_PKGCONFIGDIR)

get_target_property(_pp_install_type procpool TYPE)
if(_pp_install_type STREQUAL "SHARED_LIBRARY")
  set(PP_INSTALL_SHARED TRUE)
else()
  set(PP_INSTALL_SHARED FALSE)
endif()

install(TARGETS procpool EXPORT procpoolTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES "${PROJECT_SOURCE_DIR}/include/procpool.h"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

# ---- CMake package ---------------------------------------------------------

install(EXPORT procpoolTargets
  NAMESPACE procpool::
  FILE procpoolTargets.cmake
  DESTINATION "${PP_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/procpoolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/procpoolConfig.cmake"
  INSTALL_DESTINATION "${PP_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)

# A static libprocpool needs APR when the consumer links: the package config
# finds it with the same FindAPR module this build used, installed beside it.
install(FILES
  "${PROJECT_BINARY_DIR}/procpoolConfig.cmake"
  "${PROJECT_BINARY_DIR}/procpoolConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindAPR.cmake"
  DESTINATION "${PP_INSTALL_CMAKEDIR}")

# ---- pkg-config --------------------------------------------------------------

# A static library lists its own dependencies as private libraries (used by
# `pkg-config --static --libs`); a shared one carries them itself, and its
# consumers define PP_SHARED_LIBRARY (which selects __declspec(dllimport) on
# Windows). APR is named by its link flags, not as a required package:
# pkg-config adds a required package's compile flags to --cflags even when
# private, and APR's (-D_GNU_SOURCE, -DLINUX, its include directory) would
# change the consumer's own code, while procpool.h needs none of them.
set(PP_PC_REQUIRES_PRIVATE "")
if(PP_INSTALL_SHARED)
  set(PP_PC_LIBS_PRIVATE "")
  set(PP_PC_CFLAGS " -DPP_SHARED_LIBRARY")
else()
  if(PC_APR_FOUND)
    set(_pp_apr_libs "")
    foreach(_pp_dir IN LISTS PC_APR_STATIC_LIBRARY_DIRS)
      string(APPEND _pp_apr_libs " -L${_pp_dir}")
    endforeach()
    foreach(_pp_lib IN LISTS PC_APR_STATIC_LIBRARIES)
      string(APPEND _pp_apr_libs " -l${_pp_lib}")
    endforeach()
  else()
    set(_pp_apr_libs " ${APR_LIBRARIES}")
  endif()
  string(STRIP "${_pp_apr_libs} ${CMAKE_THREAD_LIBS_INIT}" PP_PC_LIBS_PRIVATE)
  set(PP_PC_CFLAGS "")
  unset(_pp_apr_libs)
  unset(_pp_lib)
endif()
foreach(_pp_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_pp_dir}}")
    set(PP_PC_${_pp_dir} "${CMAKE_INSTALL_${_pp_dir}}")
  else()
    set(PP_PC_${_pp_dir} "\${prefix}/${CMAKE_INSTALL_${_pp_dir}}")
  endif()
endforeach()

# The prefix is written at install time, so that `cmake --install --prefix`
# gets a procpool.pc that points where the files went: the first pass fills in
# everything but the prefix, the install step fills that in.
set(PP_PC_PREFIX "@CMAKE_INSTALL_PREFIX@")
configure_file("${PROJECT_SOURCE_DIR}/cmake/procpool.pc.in"
               "${PROJECT_BINARY_DIR}/procpool.pc.in" @ONLY)
install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/procpool.pc.in\"
                             \"${PROJECT_BINARY_DIR}/procpool.pc\" @ONLY)")
install(FILES "${PROJECT_BINARY_DIR}/procpool.pc"
        DESTINATION "${PP_INSTALL_PKGCONFIGDIR}")

unset(_pp_install_type)
unset(_pp_dir)
