# ProcpoolVersion
# ---------------
# Reads procpool's version from the PP_VERSION_MAJOR, PP_VERSION_MINOR and
# PP_VERSION_PATCH macros of include/procpool.h, the one place it is written,
# and sets PP_VERSION ("MAJOR.MINOR.PATCH"). Included before project(), which
# takes PP_VERSION as the project's version.

set(_pp_header "${CMAKE_CURRENT_LIST_DIR}/../include/procpool.h")
file(STRINGS "${_pp_header}" _pp_version_lines
     REGEX "^#define[ \t]+PP_VERSION_(MAJOR|MINOR|PATCH)[ \t]+[0-9]+")
foreach(_pp_part MAJOR MINOR PATCH)
  if(NOT _pp_version_lines MATCHES
     "#define[ \t]+PP_VERSION_${_pp_part}[ \t]+([0-9]+)")
    message(FATAL_ERROR
      "procpool: no '#define PP_VERSION_${_pp_part} <number>' in ${_pp_header}")
  endif()
  set(_pp_version_${_pp_part} "${CMAKE_MATCH_1}")
endforeach()
set(PP_VERSION
    "${_pp_version_MAJOR}.${_pp_version_MINOR}.${_pp_version_PATCH}")

# A new version in the header reconfigures the build.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pp_header}")

unset(_pp_header)
unset(_pp_version_lines)
unset(_pp_part)
unset(_pp_version_MAJOR)
unset(_pp_version_MINOR)
unset(_pp_version_PATCH)
