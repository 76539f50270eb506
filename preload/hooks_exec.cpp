// Exec hooks: every program the agent starts keeps the shim and the broker address, even
// when the agent cleaned or rewrote its environment (env -i, subprocess env={...},
// unsetenv("LD_PRELOAD")). Each exec-family entry point passes its environment through
// fix_envp (exec_env.h) and calls the real execve / execvpe / posix_spawn[p].
//
// No allocation: vfork children (posix_spawn, Python's subprocess) share the parent's
// heap, so the fixed environment is built on the stack (alloca, bounded).
#include <alloca.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <unistd.h>

#include <cstring>

#include "kz/preload/exec_env.h"
#include "shim.h"
#include "symbols.h"
#include "witness.h"

extern char** environ;

using namespace kz::preload;

namespace {

// Beyond this many variables the environment is used as it is (and said once).
constexpr std::size_t kMaxEnv = 16384;
// execl-family argument lists longer than this fail with E2BIG.
constexpr std::size_t kMaxArgs = 4096;

EnvAdditions additions() {
  const Config& c = config();
  EnvAdditions a;
  a.preload_path = c.preload_path[0] != '\0' ? c.preload_path : nullptr;
  a.broker_entry = c.broker_entry;
  a.preload_entry = c.preload_entry;
  a.fixup_entry = c.fixup_lengths ? "KZ_FIXUP_LENGTHS=1" : nullptr;
  a.witness_entry = witness_env_entry();
  return a;
}

std::size_t ld_capacity(char* const* envp, const EnvAdditions& a) {
  std::size_t existing = 0;
  if (envp != nullptr)
    for (std::size_t i = 0; envp[i] != nullptr; ++i)
      if (std::strncmp(envp[i], "LD_PRELOAD=", 11) == 0) existing = std::strlen(envp[i]);
  return 11 + (a.preload_path ? std::strlen(a.preload_path) : 0) + 1 + existing + 1;
}

}  // namespace

// KZ_FIX_ENV_INTO(var, envp): `var` is envp with the shim's variables restored, built on
// the hook's own stack frame (alloca must run in the hook itself, not in a helper).
#define KZ_FIX_ENV_INTO(var, envp)                                                               \
  char* const* var = (envp);                                                                     \
  if (config().enabled) {                                                                        \
    const EnvAdditions add_ = additions();                                                      \
    const std::size_t cap_ = fix_envp_capacity(var);                                             \
    if (add_.preload_path == nullptr) {                                                          \
    } else if (cap_ > kMaxEnv) {                                                                 \
      log_once("blind mode: environment too large to re-add the shim; child started as it is");  \
    } else {                                                                                     \
      const std::size_t ldcap_ = ld_capacity(var, add_);                                         \
      auto* out_ = static_cast<const char**>(alloca(cap_ * sizeof(char*)));                      \
      auto* ld_ = static_cast<char*>(alloca(ldcap_));                                            \
      if (fix_envp(var, add_, out_, cap_, ld_, ldcap_)) var = const_cast<char* const*>(out_);    \
    }                                                                                            \
  }

KZ_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  auto real = KZ_REAL(Libc, execve);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, envp);
  return real(path, argv, env);
}

KZ_EXPORT int execv(const char* path, char* const argv[]) {
  auto real = KZ_REAL(Libc, execve);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, environ);
  return real(path, argv, env);
}

KZ_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  auto real = KZ_REAL(Libc, execvpe);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, envp);
  return real(file, argv, env);
}

KZ_EXPORT int execvp(const char* file, char* const argv[]) {
  auto real = KZ_REAL(Libc, execvpe);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, environ);
  return real(file, argv, env);
}

KZ_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  auto real = KZ_REAL(Libc, fexecve);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, envp);
  return real(fd, argv, env);
}

KZ_EXPORT int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags) {
  auto real = KZ_REAL(Libc, execveat);
  if (real == nullptr) return no_real_function();
  KZ_FIX_ENV_INTO(env, envp);
  return real(dirfd, path, argv, env, flags);
}

// The execl family: collect the variadic arguments into an array on the stack.
#define KZ_COLLECT_ARGS(argv, arg0, ap, then_envp)                               \
  std::size_t argc_ = 1;                                                         \
  {                                                                              \
    va_list count_;                                                              \
    va_copy(count_, ap);                                                         \
    while (va_arg(count_, const char*) != nullptr && argc_ <= kMaxArgs) ++argc_; \
    va_end(count_);                                                              \
  }                                                                              \
  if (argc_ > kMaxArgs) {                                                        \
    va_end(ap);                                                                  \
    errno = E2BIG;                                                               \
    return -1;                                                                   \
  }                                                                              \
  auto** argv = static_cast<char**>(alloca((argc_ + 1) * sizeof(char*)));       \
  argv[0] = const_cast<char*>(arg0);                                             \
  for (std::size_t i_ = 1; i_ <= argc_; ++i_) argv[i_] = va_arg(ap, char*);     \
  then_envp;                                                                     \
  va_end(ap)

KZ_EXPORT int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  KZ_COLLECT_ARGS(argv, arg, ap, (void)0);
  return execv(path, argv);
}

KZ_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  KZ_COLLECT_ARGS(argv, arg, ap, (void)0);
  return execvp(file, argv);
}

KZ_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char* const* envp = nullptr;
  KZ_COLLECT_ARGS(argv, arg, ap, envp = va_arg(ap, char* const*));
  return execve(path, argv, envp);
}

KZ_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                          const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  auto real = KZ_REAL(Libc, posix_spawn);
  if (real == nullptr) return ENOSYS;
  KZ_FIX_ENV_INTO(env, envp);
  return real(pid, path, fa, attr, argv, env);
}

KZ_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                           const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  auto real = KZ_REAL(Libc, posix_spawnp);
  if (real == nullptr) return ENOSYS;
  KZ_FIX_ENV_INTO(env, envp);
  return real(pid, file, fa, attr, argv, env);
}
