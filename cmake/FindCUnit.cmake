# FindCUnit
# ---------
# Finds CUnit, the unit-testing framework for C.
#
# Tries pkg-config (cunit) first, then falls back to find_path/find_library
# (e.g. for vcpkg; set CUnit_ROOT or CMAKE_PREFIX_PATH).
#
# Result variables:
#   CUnit_FOUND, CUnit_VERSION, CUnit_INCLUDE_DIRS, CUnit_LIBRARIES
# Imported target:
#   CUnit::CUnit

include(FindPackageHandleStandardArgs)

if(NOT TARGET CUnit::CUnit)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_CUNIT QUIET IMPORTED_TARGET cunit)
  endif()

  if(PC_CUNIT_FOUND)
    set(CUnit_VERSION "${PC_CUNIT_VERSION}")
    set(CUnit_LIBRARIES "${PC_CUNIT_LINK_LIBRARIES}")
    # pkg-config reports no -I for a header in a default directory.
    find_path(CUnit_INCLUDE_DIR NAMES CUnit/CUnit.h
              HINTS ${PC_CUNIT_INCLUDE_DIRS})
    set(CUnit_INCLUDE_DIRS "${CUnit_INCLUDE_DIR}")
    set(_cunit_via_pkgconfig TRUE)
  else()
    find_path(CUnit_INCLUDE_DIR NAMES CUnit/CUnit.h)
    find_library(CUnit_LIBRARY NAMES cunit libcunit)
    set(CUnit_INCLUDE_DIRS "${CUnit_INCLUDE_DIR}")
    set(CUnit_LIBRARIES "${CUnit_LIBRARY}")
    set(_cunit_via_pkgconfig FALSE)
  endif()
  mark_as_advanced(CUnit_INCLUDE_DIR CUnit_LIBRARY)

  find_package_handle_standard_args(CUnit
    REQUIRED_VARS CUnit_LIBRARIES CUnit_INCLUDE_DIRS
    VERSION_VAR CUnit_VERSION)

  if(CUnit_FOUND)
    add_library(CUnit::CUnit INTERFACE IMPORTED)
    if(_cunit_via_pkgconfig)
      target_link_libraries(CUnit::CUnit INTERFACE PkgConfig::PC_CUNIT)
    else()
      set_target_properties(CUnit::CUnit PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${CUnit_INCLUDE_DIRS}"
        INTERFACE_LINK_LIBRARIES "${CUnit_LIBRARIES}")
    endif()
  endif()
  unset(_cunit_via_pkgconfig)
endif()
