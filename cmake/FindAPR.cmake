# FindAPR
# -------
# Finds the Apache Portable Runtime (APR 1.x).
#
# Tries pkg-config (apr-1) first, then falls back to find_path/find_library
# (e.g. for vcpkg or a hand-built APR; set APR_ROOT or CMAKE_PREFIX_PATH).
#
# Result variables:
#   APR_FOUND, APR_VERSION, APR_INCLUDE_DIRS, APR_LIBRARIES
# Imported target:
#   APR::APR

include(FindPackageHandleStandardArgs)

if(NOT TARGET APR::APR)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_APR QUIET IMPORTED_TARGET apr-1)
  endif()

  if(PC_APR_FOUND)
    set(APR_VERSION "${PC_APR_VERSION}")
    set(APR_INCLUDE_DIRS "${PC_APR_INCLUDE_DIRS}")
    set(APR_LIBRARIES "${PC_APR_LINK_LIBRARIES}")
    set(_apr_via_pkgconfig TRUE)
  else()
    find_path(APR_INCLUDE_DIR NAMES apr.h
              PATH_SUFFIXES apr-1 apr-1.0 apr)
    find_library(APR_LIBRARY NAMES apr-1 libapr-1)
    mark_as_advanced(APR_INCLUDE_DIR APR_LIBRARY)
    if(APR_INCLUDE_DIR AND EXISTS "${APR_INCLUDE_DIR}/apr_version.h")
      file(STRINGS "${APR_INCLUDE_DIR}/apr_version.h" _apr_ver
           REGEX "^#define APR_(MAJOR|MINOR|PATCH)_VERSION[ \t]+[0-9]+")
      string(REGEX REPLACE ".*MAJOR_VERSION[ \t]+([0-9]+).*" "\\1" _maj "${_apr_ver}")
      string(REGEX REPLACE ".*MINOR_VERSION[ \t]+([0-9]+).*" "\\1" _min "${_apr_ver}")
      string(REGEX REPLACE ".*PATCH_VERSION[ \t]+([0-9]+).*" "\\1" _pat "${_apr_ver}")
      set(APR_VERSION "${_maj}.${_min}.${_pat}")
      unset(_apr_ver)
      unset(_maj)
      unset(_min)
      unset(_pat)
    endif()
    set(APR_INCLUDE_DIRS "${APR_INCLUDE_DIR}")
    set(APR_LIBRARIES "${APR_LIBRARY}")
    set(_apr_via_pkgconfig FALSE)
  endif()

  find_package_handle_standard_args(APR
    REQUIRED_VARS APR_LIBRARIES APR_INCLUDE_DIRS
    VERSION_VAR APR_VERSION)

  if(APR_FOUND)
    add_library(APR::APR INTERFACE IMPORTED)
    if(_apr_via_pkgconfig)
      target_link_libraries(APR::APR INTERFACE PkgConfig::PC_APR)
    else()
      set_target_properties(APR::APR PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${APR_INCLUDE_DIRS}"
        INTERFACE_LINK_LIBRARIES "${APR_LIBRARIES}")
      if(WIN32)
        # A static APR on Windows needs the socket and RPC libraries.
        set_property(TARGET APR::APR APPEND PROPERTY
          INTERFACE_LINK_LIBRARIES ws2_32 mswsock rpcrt4)
      endif()
    endif()
  endif()
  unset(_apr_via_pkgconfig)
endif()
