#include "resolve/resolver.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "kz/providers/registry.h"
#include "core/signal_free_thread.h"
#include "resolve/oauth_mint.h"
#include "secrets/aws_credential_set.h"

namespace kz {

namespace {

// Shared between the caller and the workers, so a provider that overruns its deadline
// (a bug: providers must honour it) can be abandoned without dangling references.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t pending = 0;
  std::vector<std::optional<Result<SecretValue>>> results;
  std::vector<ValueLease> leases;
  // Minted credentials (resolve/oauth_mint.h): where each renews from, and how long the
  // first access token lives.
  std::vector<std::shared_ptr<ValueSource>> sources;
  std::vector<std::int64_t> expires_in;
};

struct Task {
  std::shared_ptr<Provider> provider;
  SecretRef ref;
  Deadline deadline;
  // A minted credential: the provider resolves its client secret, then the token
  // endpoint is asked (by a deadline of its own, `timeout` after that).
  std::optional<OAuthClientSpec> oauth;
  std::chrono::milliseconds timeout{0};
};

// A minted credential's first access token, from the client secret just resolved.
Result<SecretValue> mint_first(Task& task, SecretValue client_secret, std::shared_ptr<ValueSource>* source,
                               std::int64_t* expires_in) {
  if (!task.oauth->ca_file.empty() && task.oauth->ca_pem.empty()) {
    // Read once: every mint of the run trusts these bytes, not whatever the path holds later.
    std::ifstream f(task.oauth->ca_file, std::ios::binary);
    std::ostringstream pem;
    pem << f.rdbuf();
    if (!f.is_open() || pem.str().empty())
      return make_error(ErrorKind::Config, task.oauth->ca_file + ": ca_file cannot be read");
    task.oauth->ca_pem = pem.str();
  }
  auto first = mint_access_token(*task.oauth, client_secret.view(), Clock::now() + task.timeout);
  if (!first) return first.take_error();
  *expires_in = first->expires_in;
  *source = std::make_shared<OAuthMinter>(std::move(*task.oauth), std::move(client_secret), task.timeout);
  return std::move(first->value);
}

}  // namespace

Status check_selection(const Config& cfg, const std::vector<std::string>& only) {
  for (const auto& n : only)
    if (cfg.find_secret(n) == nullptr)
      return make_error(ErrorKind::Usage, "--only: no secret named " + n + " in " + cfg.path);
  return ok_status();
}

ProviderContext provider_context(const Config& cfg, const Environment* env, const std::string& home) {
  static const ProcessEnvironment process_env;
  ProviderContext ctx;
  ctx.env = env != nullptr ? env : &process_env;
  if (!home.empty()) ctx.home = home;
  else if (const char* h = ctx.env->get("HOME")) ctx.home = h;
  ctx.config_dir = cfg.dir;
  return ctx;
}

std::chrono::milliseconds provider_timeout(const Config& cfg, const std::string& provider) {
  auto pc = cfg.providers.find(provider);
  return pc == cfg.providers.end() ? kDefaultProviderTimeout : pc->second.timeout;
}

std::map<std::string, std::shared_ptr<Provider>> make_providers(const Config& cfg,
                                                               const std::vector<const SecretSpec*>& selected,
                                                               const ProviderContext& ctx, std::string& errors) {
  std::map<std::string, std::shared_ptr<Provider>> providers;
  for (const auto* s : selected) {
    if (providers.count(s->provider) != 0) continue;
    const ProviderSpec* spec = find_provider_spec(s->provider);
    static const ProviderSettings kNoSettings;
    auto pc = cfg.providers.find(s->provider);
    auto made = spec->make(pc == cfg.providers.end() ? kNoSettings : pc->second.settings, ctx);
    if (!made) {
      // Point at [providers.NAME] when it exists, else at the first secret using it.
      const SourcePos& where = pc != cfg.providers.end() ? pc->second.pos : s->pos;
      const std::string& msg = made.error().message;
      const bool named = msg.rfind(s->provider, 0) == 0;   // providers usually name themselves
      errors += "  " + format_pos(where) + ": " + (named ? "" : s->provider + ": ") + msg + "\n";
      providers[s->provider] = nullptr;
      continue;
    }
    providers[s->provider] = std::shared_ptr<Provider>(std::move(made.value()));
  }
  return providers;
}

Result<std::vector<ResolvedSecret>> resolve_secrets(const Config& cfg, const ResolveOptions& opts) {
  if (auto st = check_selection(cfg, opts.only); !st) return st.take_error();
  const ProviderContext ctx = provider_context(cfg, opts.env, opts.home);

  // A `from` secret is the session token of its key's credential set: the key is
  // resolved (once, also when only the token was asked for) and split afterwards.
  std::vector<const SecretSpec*> selected;
  std::vector<const SecretSpec*> wanted;   // what the caller gets, in file order
  auto select = [&](const SecretSpec* s) {
    if (std::find(selected.begin(), selected.end(), s) == selected.end()) selected.push_back(s);
  };
  for (const auto& s : cfg.secrets) {
    if (!opts.only.empty() && std::find(opts.only.begin(), opts.only.end(), s.name) == opts.only.end())
      continue;
    wanted.push_back(&s);
    if (!s.from.empty()) {
      if (const SecretSpec* key = cfg.find_secret(s.from)) select(key);
    } else {
      select(&s);
    }
  }

  // Instantiate each provider once; a provider that cannot be configured fails the run
  // before anything is fetched.
  std::string errors;
  auto providers = make_providers(cfg, selected, ctx, errors);
  if (!errors.empty())
    return make_error(ErrorKind::Config, "cannot configure provider(s):\n" + errors);

  auto shared = std::make_shared<Shared>();
  shared->results.resize(selected.size());
  shared->leases.resize(selected.size());
  shared->sources.resize(selected.size());
  shared->expires_in.resize(selected.size());
  shared->pending = selected.size();
  const auto start = Clock::now();
  Deadline latest = start;
  for (std::size_t i = 0; i < selected.size(); ++i) {
    const auto* s = selected[i];
    const auto timeout = provider_timeout(cfg, s->provider);
    Task task{providers[s->provider], SecretRef{s->name, s->ref, s->pos}, start + timeout, s->oauth, timeout};
    latest = std::max(latest, task.deadline + (task.oauth ? timeout : std::chrono::milliseconds(0)));
    // One thread per secret, so that slow providers wait side by side; a provider that
    // only reads kz's memory (env) answers at once, here (a thread would cost more than
    // the lookup: creating, scheduling and joining it, on every kz run).
    const bool inline_here = task.provider->in_process() && !task.oauth;
    auto work = [shared, i, task = std::move(task)]() mutable {
      ValueLease lease;
      auto r = task.provider->resolve_leased(task.ref, task.deadline, lease);
      std::shared_ptr<ValueSource> source;
      std::int64_t expires_in = 0;
      if (r && task.oauth) r = mint_first(task, std::move(*r), &source, &expires_in);
      std::lock_guard<std::mutex> lk(shared->mu);
      shared->sources[i] = std::move(source);
      shared->expires_in[i] = expires_in;
      shared->results[i].emplace(std::move(r));
      shared->leases[i] = std::move(lease);
      if (--shared->pending == 0) shared->cv.notify_all();
    };
    if (inline_here) work();
    else signal_free_thread(std::move(work)).detach();
  }

  std::unique_lock<std::mutex> lk(shared->mu);
  // Providers enforce their own deadlines; the grace period only guards against one
  // that does not.
  shared->cv.wait_until(lk, latest + std::chrono::seconds(2), [&] { return shared->pending == 0; });

  std::map<std::string, ResolvedSecret> got;
  std::map<std::string, SecretValue> session_tokens;   // by the key's name
  for (std::size_t i = 0; i < selected.size(); ++i) {
    const auto* s = selected[i];
    auto& r = shared->results[i];
    const std::string who = "  " + s->name + (s->oauth ? " (kind oauth2-client-credentials, client_secret from provider " : " (provider ") +
                            s->provider + ", " + format_pos(s->pos) + "): ";
    if (r.has_value() && r->ok() && !s->format.empty()) {
      // A credential set: the value becomes its secret key; the id and token are kept.
      auto set = split_aws_credentials(r->value().view());
      if (set && !s->access_key_id.empty() && s->access_key_id != set->access_key_id)
        set = make_error(ErrorKind::Config, "the credential set's access key id is not the access_key_id written for it");
      if (!set) {
        *r = set.take_error();
      } else {
        if (opts.on_result) opts.on_result(*s, nullptr);
        ResolvedSecret rs{s->name, s->provider, std::move(set->secret_access_key), shared->leases[i]};
        rs.access_key_id = std::move(set->access_key_id);
        got.emplace(s->name, std::move(rs));
        session_tokens.emplace(s->name, std::move(set->session_token));
        continue;
      }
    }
    if (!r.has_value()) {
      const Error timeout = make_error(ErrorKind::Timeout, "timed out");
      if (opts.on_result) opts.on_result(*s, &timeout);
      errors += who + timeout.message + "\n";
    } else if (!r->ok()) {
      if (opts.on_result) opts.on_result(*s, &r->error());
      errors += who + r->error().message + "\n";
    } else {
      if (opts.on_result) opts.on_result(*s, nullptr);
      ResolvedSecret rs{s->name, s->provider, std::move(r->value()), shared->leases[i]};
      rs.source = std::move(shared->sources[i]);
      rs.expires_in = shared->expires_in[i];
      if (s->oauth) rs.refresh_skew = s->oauth->refresh_skew;
      got.emplace(s->name, std::move(rs));
    }
  }
  if (!errors.empty()) return make_error(ErrorKind::NotFound, "cannot resolve secret(s):\n" + errors);
  std::vector<ResolvedSecret> out;
  for (const SecretSpec* s : wanted) {
    if (s->from.empty()) {
      out.push_back(std::move(got.at(s->name)));
      continue;
    }
    auto t = session_tokens.find(s->from);
    if (t == session_tokens.end() || t->second.empty()) {
      errors += "  " + s->name + " (" + format_pos(s->pos) + "): the credential set of " + s->from +
                " has no session token (long-term credentials): remove " + s->name + "\n";
      continue;
    }
    out.push_back(ResolvedSecret{s->name, s->provider, SecretValue::from(t->second.view())});
  }
  if (!errors.empty()) return make_error(ErrorKind::NotFound, "cannot resolve secret(s):\n" + errors);
  return out;
}

}  // namespace kz
