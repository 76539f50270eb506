#include "resolve/resolver.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "kz/providers/registry.h"
#include "core/signal_free_thread.h"
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
};

struct Task {
  std::shared_ptr<Provider> provider;
  SecretRef ref;
  Deadline deadline;
};

}  // namespace

Status check_selection(const Config& cfg, const std::vector<std::string>& only) {
  for (const auto& n : only)
    if (cfg.find_secret(n) == nullptr)
      return make_error(ErrorKind::Usage, "--only: no secret named " + n + " in " + cfg.path);
  return ok_status();
}

Result<std::vector<ResolvedSecret>> resolve_secrets(const Config& cfg, const ResolveOptions& opts) {
  if (auto st = check_selection(cfg, opts.only); !st) return st.take_error();
  static const ProcessEnvironment process_env;
  ProviderContext ctx;
  ctx.env = opts.env != nullptr ? opts.env : &process_env;
  if (!opts.home.empty()) ctx.home = opts.home;
  else if (const char* h = ctx.env->get("HOME")) ctx.home = h;
  ctx.config_dir = cfg.dir;

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
  std::map<std::string, std::shared_ptr<Provider>> providers;
  std::string errors;
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
  if (!errors.empty())
    return make_error(ErrorKind::Config, "cannot configure provider(s):\n" + errors);

  auto shared = std::make_shared<Shared>();
  shared->results.resize(selected.size());
  shared->pending = selected.size();
  const auto start = Clock::now();
  Deadline latest = start;
  for (std::size_t i = 0; i < selected.size(); ++i) {
    const auto* s = selected[i];
    auto pc = cfg.providers.find(s->provider);
    const auto timeout = pc == cfg.providers.end() ? kDefaultProviderTimeout : pc->second.timeout;
    Task task{providers[s->provider], SecretRef{s->name, s->ref, s->pos}, start + timeout};
    latest = std::max(latest, task.deadline);
    signal_free_thread([shared, i, task = std::move(task)]() mutable {
      auto r = task.provider->resolve(task.ref, task.deadline);
      std::lock_guard<std::mutex> lk(shared->mu);
      shared->results[i].emplace(std::move(r));
      if (--shared->pending == 0) shared->cv.notify_all();
    }).detach();
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
    const std::string who = "  " + s->name + " (provider " + s->provider + ", " + format_pos(s->pos) + "): ";
    if (r.has_value() && r->ok() && !s->format.empty()) {
      // A credential set: the value becomes its secret key; the id and token are kept.
      auto set = split_aws_credentials(r->value().view());
      if (set && !s->access_key_id.empty() && s->access_key_id != set->access_key_id)
        set = make_error(ErrorKind::Config, "the credential set's access key id is not the access_key_id written for it");
      if (!set) {
        *r = set.take_error();
      } else {
        if (opts.on_result) opts.on_result(*s, nullptr);
        got.emplace(s->name, ResolvedSecret{s->name, s->provider, std::move(set->secret_access_key),
                                            std::move(set->access_key_id)});
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
      got.emplace(s->name, ResolvedSecret{s->name, s->provider, std::move(r->value()), {}});
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
    out.push_back(ResolvedSecret{s->name, s->provider, SecretValue::from(t->second.view()), {}});
  }
  if (!errors.empty()) return make_error(ErrorKind::NotFound, "cannot resolve secret(s):\n" + errors);
  return out;
}

}  // namespace kz
