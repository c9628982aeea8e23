# Cross-compiling for 64-bit Windows with mingw-w64 (Debian:
# gcc-mingw-w64-x86-64). Programs built for the target run under Wine, which
# is how CTest runs the tests (CMAKE_CROSSCOMPILING_EMULATOR).
#
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
#         -DCMAKE_PREFIX_PATH=<where APR and CUnit for Windows are> ...
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_pp_mingw x86_64-w64-mingw32)
# The -win32 thread model variants need no winpthread DLL at run time.
find_program(CMAKE_C_COMPILER NAMES ${_pp_mingw}-gcc-win32 ${_pp_mingw}-gcc)
find_program(CMAKE_CXX_COMPILER NAMES ${_pp_mingw}-g++-win32 ${_pp_mingw}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${_pp_mingw}-windres)

# Libraries and headers come from the target's root and the prefixes given
# in CMAKE_PREFIX_PATH / CMAKE_FIND_ROOT_PATH, never from the build host;
# programs (tools run during the build) come from the host.
list(APPEND CMAKE_FIND_ROOT_PATH /usr/${_pp_mingw})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# How to run a target program on the host (try_run, CTest, custom commands).
find_program(PP_WINE NAMES wine wine64)
if(PP_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PP_WINE})
endif()

# pkg-config must see the target's packages, never the build host's: only
# the pkgconfig directories under the root paths (e.g. a prefix of
# cross-built dependencies given as -DCMAKE_FIND_ROOT_PATH=<prefix>).
set(_pp_pc_dirs "")
foreach(_pp_root IN LISTS CMAKE_FIND_ROOT_PATH)
  list(APPEND _pp_pc_dirs "${_pp_root}/lib/pkgconfig" "${_pp_root}/share/pkgconfig")
endforeach()
string(REPLACE ";" ":" _pp_pc_dirs "${_pp_pc_dirs}")
set(ENV{PKG_CONFIG_LIBDIR} "${_pp_pc_dirs}")
set(ENV{PKG_CONFIG_PATH} "")
unset(_pp_pc_dirs)
unset(_pp_root)
