/* The floor under `kz run -- CMD`: a launcher that does nothing but start CMD and wait
 * for it (posix_spawn, then waitpid), exiting with its status. bench/startup_overhead.py
 * times `spawn_floor /bin/true` beside `kz run -- /bin/true`: what kz adds above this is
 * its own work (loading, configuration, providers, the audit log, masking). */
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;

int main(int argc, char** argv) {
  pid_t pid;
  int status;
  if (argc < 2 || posix_spawn(&pid, argv[1], 0, 0, argv + 1, environ) != 0) return 127;
  if (waitpid(pid, &status, 0) != pid) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
