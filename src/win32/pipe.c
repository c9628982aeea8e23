/* Named pipes: random names, the current-user-only security descriptor,
 * the parent's (server) and the worker's (client) ends.
 *
 * A named pipe is the one Windows channel a fresh process can open by name
 * with an access check; anonymous pipes would have to be inherited, and
 * CreateProcessW can only restrict inheritance to a list of handles. The
 * pipe is what other users on the machine could attack, hence the random
 * name, the DACL, the first-instance flag and the local-only flag. */
#include "win32.h"

#include <stdlib.h>
#include <string.h>

/* Buffer sizes the system is asked for (advisory): a batch of frames. */
#define PIPE_BUFFER (64 * 1024)

void pp__pipe_security_free(pp__pipe_security *ps) {
  if (!ps)
    return;
  free(ps->acl);
  free(ps->user);
  ps->acl = NULL;
  ps->user = NULL;
}

/* The security descriptor names the process token's user (not its owner,
 * which for an elevated process is the Administrators group). */
pp_status pp__pipe_security_init(pp__pipe_security *ps,
                                 pp__win32_failure *why) {
  if (!ps)
    return PP_EINVAL;
  memset(ps, 0, sizeof *ps);
  HANDLE token;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return pp__win32_fail(why, "OpenProcessToken", GetLastError());
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, NULL, 0, &size);
  DWORD err = GetLastError();
  if (size == 0) {
    CloseHandle(token);
    return pp__win32_fail(why, "GetTokenInformation", err);
  }
  ps->user = malloc(size);
  if (!ps->user) {
    CloseHandle(token);
    return PP_ENOMEM;
  }
  BOOL ok = GetTokenInformation(token, TokenUser, ps->user, size, &size);
  err = GetLastError();
  CloseHandle(token);
  if (!ok) {
    pp__pipe_security_free(ps);
    return pp__win32_fail(why, "GetTokenInformation", err);
  }
  PSID sid = ((TOKEN_USER *)ps->user)->User.Sid;
  DWORD acl_size = sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD) +
                   GetLengthSid(sid);
  ps->acl = malloc(acl_size);
  if (!ps->acl) {
    pp__pipe_security_free(ps);
    return PP_ENOMEM;
  }
  /* One entry: the user, full access. Nobody else, not even
   * Administrators or SYSTEM, may open the pipe. */
  const char *call = NULL;
  if (!InitializeAcl(ps->acl, acl_size, ACL_REVISION))
    call = "InitializeAcl";
  else if (!AddAccessAllowedAce(ps->acl, ACL_REVISION, GENERIC_ALL, sid))
    call = "AddAccessAllowedAce";
  else if (!InitializeSecurityDescriptor(&ps->sd, SECURITY_DESCRIPTOR_REVISION))
    call = "InitializeSecurityDescriptor";
  else if (!SetSecurityDescriptorDacl(&ps->sd, TRUE, ps->acl, FALSE))
    call = "SetSecurityDescriptorDacl";
  if (call) {
    err = GetLastError();
    pp__pipe_security_free(ps);
    return pp__win32_fail(why, call, err);
  }
  ps->sa.nLength = sizeof ps->sa;
  ps->sa.lpSecurityDescriptor = &ps->sd;
  ps->sa.bInheritHandle = FALSE;
  return PP_OK;
}

pp_status pp__pipe_name(wchar_t name[PP__PIPE_NAME_MAX]) {
  unsigned char rnd[16];
  pp_status st = pp__random_bytes(rnd, sizeof rnd);
  if (st != PP_OK)
    return st;
  static const wchar_t hex[] = L"0123456789abcdef";
  static const wchar_t prefix[] = PP__PIPE_PREFIX;
  /* The pid keeps names of different parents apart even if the random
   * part were weak; the random part makes them unguessable. */
  wchar_t pid[16];
  size_t npid = 0;
  unsigned long v = (unsigned long)GetCurrentProcessId();
  do {
    pid[npid++] = hex[v % 10];
    v /= 10;
  } while (v && npid < 15);
  size_t len = 0;
  for (size_t i = 0; prefix[i]; i++)
    name[len++] = prefix[i];
  while (npid)
    name[len++] = pid[--npid];
  name[len++] = L'-';
  for (size_t i = 0; i < sizeof rnd; i++) {
    name[len++] = hex[rnd[i] >> 4];
    name[len++] = hex[rnd[i] & 15];
  }
  name[len] = L'\0';
  return PP_OK;
}

pp_status pp__pipe_create(const wchar_t *name, const pp__pipe_security *ps,
                          HANDLE *out, pp__win32_failure *why) {
  if (!name || !ps || !out)
    return PP_EINVAL;
  HANDLE h = CreateNamedPipeW(
      name,
      PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
      PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
          PIPE_REJECT_REMOTE_CLIENTS,
      1, PIPE_BUFFER, PIPE_BUFFER, 0, (SECURITY_ATTRIBUTES *)&ps->sa);
  if (h == INVALID_HANDLE_VALUE)
    return pp__win32_fail(why, "CreateNamedPipeW", GetLastError());
  *out = h;
  return PP_OK;
}

pp_status pp__pipe_open(const wchar_t *name, HANDLE *out,
                        pp__win32_failure *why) {
  if (!name || !out)
    return PP_EINVAL;
  for (int tries = 0;; tries++) {
    /* Identification level only: the pipe's server (our parent) has no
     * use for acting as this process. */
    HANDLE h =
        CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                    SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (h != INVALID_HANDLE_VALUE) {
      *out = h;
      return PP_OK;
    }
    DWORD err = GetLastError();
    /* Busy: another client holds the one instance; it can only be one of
     * this user's processes, and this worker's parent will not serve it. */
    if (err != ERROR_PIPE_BUSY || tries >= 10)
      return pp__win32_fail(why, "CreateFileW", err);
    WaitNamedPipeW(name, 100);
  }
}
