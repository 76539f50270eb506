// Where a person answers the asks of an ApprovalGate (secrets/approval.h) in a
// `kz run --blind`:
//
//   terminal  kz opens /dev/tty itself (not the command's stdin) and prompts for the
//             oldest open ask, naming the secret, host, method and path. The person types
//             the ask's one-time code to approve it, or "n" to deny. Input typed (or
//             injected with TIOCSTI) before the prompt is flushed; in pty mode the
//             supervisor stops forwarding the terminal's input to the command meanwhile.
//   socket    `kz approve --run RUN CODE` (or --deny) from another shell: a unix socket
//             in a 0700 directory of this user, named by the RUN the prompt shows. The
//             agent runs as the same user and can reach that directory: the client sends
//             only to the named socket and only if its listener is kz's pid; the server
//             answers only a peer that is alive and whose ancestry reaches pid 1 through
//             living processes none of which is kz or in the run (checked after the line
//             is read; with SO_PEERPIDFD, aliveness by pidfd). After kMaxBadCodes wrong
//             codes the socket closes for the rest of the run.
//   webhook   --approve-via=URL: kz POSTs the facts of each ask (JSON, with the request
//             hash) and waits for the answer in the response:
//             {"decision": "approve"|"deny", "request_hash": "<the same>", "by": "..."}.
//             Anything else (an error status, another hash, no answer in time) denies.
//
// The codes appear only on the terminal. Without a terminal, only the webhook can answer.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kz/result.h"
#include "run/stdin_gate.h"
#include "secrets/approval.h"

namespace kz {

inline constexpr int kMaxBadCodes = 5;

struct ApprovalChannelOptions {
  ApprovalGate* gate = nullptr;          // required; outlives stop()
  std::string webhook_url;               // --approve-via=URL (empty: the terminal)
  std::string ca_file;                   // extra trust for an https webhook ([blind] ca_file)
  std::string run_id;                    // names the socket and goes to the webhook
  StdinGate* stdin_gate = nullptr;       // held while the terminal prompt reads (may be null)
  std::function<bool(pid_t)> in_run;     // is this process part of the run? (refused on the socket)
};

// The directory of this user's `kz approve` sockets: $XDG_RUNTIME_DIR (else /tmp)
// /kz-approvals-UID, 0700 and owned by the user (else an error).
Result<std::string> approval_socket_dir(bool create);

class ApprovalChannels {
 public:
  // Opens the terminal (or checks the webhook URL) and starts the threads. Fails when no
  // channel can answer: no webhook and no terminal.
  static Result<std::unique_ptr<ApprovalChannels>> start(ApprovalChannelOptions opts);
  ~ApprovalChannels();   // stop()
  ApprovalChannels(const ApprovalChannels&) = delete;
  ApprovalChannels& operator=(const ApprovalChannels&) = delete;
  // "tty+socket" or "webhook": for the "approve" records.
  const std::string& description() const { return description_; }
  // Stops the gate (open asks time out, channel "stop") and joins every thread.
  void stop();

 private:
  explicit ApprovalChannels(ApprovalChannelOptions opts) : opts_(std::move(opts)) {}
  void prompt_loop();
  void socket_loop();
  void webhook_loop();
  void webhook_one(ApprovalAsk ask);
  std::string socket_answer(const std::string& line, pid_t peer, int peer_pidfd);
  bool peer_outside_run(pid_t peer, int peer_pidfd) const;

  ApprovalChannelOptions opts_;
  std::string description_;
  int tty_ = -1;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::string socket_path_;
  std::string socket_id_;   // "KZPID-RANDOM": the prompt shows it, `kz approve --run` names it
  int bad_codes_ = 0;
  std::atomic<bool> cancel_{false};
  std::mutex workers_mu_;
  std::vector<std::thread> workers_;
  std::thread prompt_, socket_, webhook_;
};

// `kz approve --run RUN`: sends "approve CODE", "deny CODE" or "list" to that run's socket
// only (RUN as the prompt shows it, "KZPID-HEX"), after checking the socket is this
// user's and its listener is that pid; reads the reply with a 10 s timeout.
Result<std::string> send_approval_command(const std::string& run, const std::string& line);

}  // namespace kz
