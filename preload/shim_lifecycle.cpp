#include "shim_lifecycle.h"

#include <pthread.h>
#include <string.h>

#include "broker_socket.h"
#include "kz/preload/conn_table.h"
#include "kz/preload/swap_client.h"
#include "session_facts.h"
#include "shim.h"

namespace kz::preload {

namespace {

// prepare takes the locks, parent releases them, the child resets them, drops the
// inherited broker connections (each thread reconnects lazily) and the grants.
void atfork_prepare() {
  broker_socket_lock_for_fork();
  conn_table().lock_for_fork();
  session_facts_lock_for_fork();
}
void atfork_parent() {
  session_facts_unlock_after_fork();
  conn_table().unlock_after_fork();
  broker_socket_unlock_after_fork();
}
void atfork_child() {
  session_facts_reset_after_fork();
  conn_table().reset_lock_after_fork();
  broker_socket_reset_after_fork();
  // Only this thread exists now. A connection's lock may have been held by a thread
  // that is not here; the parent reports its own grants' uses, and the child asks the
  // broker afresh rather than count uses under the parent's grants.
  conn_table().for_each([](const void*, ConnState* st) {
    pthread_mutex_init(&st->mu, nullptr);
    explicit_bzero(st->grants, sizeof st->grants);
    st->ngrants = 0;
  });
}

// At exit, report the grants' uses of connections never freed (many programs exit
// without SSL_free). A process killed by a signal or _exit() loses these counts; the
// grant itself was recorded by the broker when it answered.
__attribute__((destructor)) void report_uses_at_exit() {
  if (!config().enabled) return;
  Guard guard;
  conn_table().for_each([](const void*, ConnState* st) {
    if (st->ngrants == 0 || pthread_mutex_trylock(&st->mu) != 0) return;
    ConnFacts facts;   // the reports use what st kept; the TLS object may be gone
    facts.gathered = true;
    facts.pid = shim_pid();
    SwapClient(broker_socket(), facts).report_grant_uses(st);
    pthread_mutex_unlock(&st->mu);
  });
}

}  // namespace

void install_fork_handlers() { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

}  // namespace kz::preload
