/* Resident memory of the calling process on Windows. */
#ifndef PSAPI_VERSION
#define PSAPI_VERSION 2 /* GetProcessMemoryInfo from kernel32, no psapi.lib */
#endif
#include <windows.h>

#include <psapi.h>

#include "backend.h"

size_t pp__current_rss(void) {
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc))
    return 0;
  return (size_t)pmc.WorkingSetSize;
}
