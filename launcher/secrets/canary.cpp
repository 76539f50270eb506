#include "secrets/canary.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

#include "secrets/token_mint.h"


namespace kz {

namespace {

// Real formats, close enough that an SDK's or a scanner's regular expression takes them.
constexpr CanaryShape kShapes[] = {
    {"openai", "sk-proj-************************************************"},
    {"anthropic", "sk-ant-api03-*********************************************************************************************AA"},
    {"github-pat", "github_pat_**********************_***********************************************************"},
    {"github", "ghp_************************************"},
    {"slack", "xoxb-#############-#############-************************"},
    {"stripe", "sk_live_********************************"},
    {"stripe-test", "sk_test_********************************"},
    {"openai-legacy", "sk-************************************************"},
    {"aws-key-id", "AKIA^^^^^^^^^^^^^^^^"},
    {"aws-secret", "++++++++++++++++++++++++++++++++++++++++"},
    {"generic", "****************************************"},
};

// Which shape a secret's name suggests: the first rule whose words all occur in it.
struct NameRule {
  std::string_view words[2];
  std::string_view shape;
};
constexpr NameRule kNameRules[] = {
    {{"OPENAI", ""}, "openai"},         {{"ANTHROPIC", ""}, "anthropic"}, {{"CLAUDE", ""}, "anthropic"},
    {{"GITHUB", "PAT"}, "github-pat"},  {{"GITHUB", ""}, "github"},       {{"GH_", ""}, "github"},
    {{"SLACK", ""}, "slack"},           {{"STRIPE", ""}, "stripe"},       {{"AWS", "KEY_ID"}, "aws-key-id"},
    {{"AWS", "SECRET"}, "aws-secret"},
};

constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kUpper = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string_view alphabet_of(char c) {
  switch (c) {
    case '*': return kBase62;
    case '#': return kDigits;
    case '^': return kUpper;
    case '+': return kBase64;
    default: return {};
  }
}

// A uniform character of `abc` (rejection sampling over one random byte).
Result<char> pick(std::string_view abc) {
  const unsigned limit = 256 - 256 % static_cast<unsigned>(abc.size());
  while (true) {
    unsigned char b = 0;
    if (RAND_bytes(&b, 1) != 1) return make_error(ErrorKind::Internal, "the random number generator failed");
    if (b < limit) return abc[b % abc.size()];
  }
}

}  // namespace

const CanaryShape* find_canary_shape(std::string_view name) {
  for (const auto& s : kShapes)
    if (s.name == name) return &s;
  return nullptr;
}

std::span<const CanaryShape> canary_shapes() { return kShapes; }

std::string canary_shape_names() {
  std::string out;
  for (const auto& s : kShapes) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

const CanaryShape& canary_shape_for(std::string_view secret_name, std::string_view shape) {
  if (const CanaryShape* s = find_canary_shape(shape)) return *s;
  std::string upper(secret_name);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& r : kNameRules)
    if (std::all_of(std::begin(r.words), std::end(r.words),
                    [&](std::string_view w) { return w.empty() || upper.find(w) != std::string::npos; }))
      return *find_canary_shape(r.shape);
  return *find_canary_shape("generic");
}

std::string_view canary_prefix(const CanaryShape& s) {
  std::size_t n = 0;
  while (n < s.pattern.size() && alphabet_of(s.pattern[n]).empty()) ++n;
  return s.pattern.substr(0, n);
}

Result<SecretValue> make_canary_value(const CanaryShape& s) {
  SecretValue v = SecretValue::allocate(s.pattern.size());
  for (std::size_t i = 0; i < s.pattern.size(); ++i) {
    const std::string_view abc = alphabet_of(s.pattern[i]);
    if (abc.empty()) {
      v.data()[i] = s.pattern[i];
      continue;
    }
    auto c = pick(abc);
    if (!c) return c.take_error();
    v.data()[i] = *c;
  }
  return v;
}

SecretValue canary_with_token(const CanaryShape& s, std::string_view token) {
  return token_with_prefix(canary_prefix(s), token);
}

Result<BlindCanary> make_blind_canary(const CanaryShape& s, bool shaped, std::size_t plain_len) {
  BlindCanary out;
  if (shaped) {
    auto fake = make_canary_value(s);
    if (!fake) return fake.take_error();
    const std::string_view keep = classed_prefix_for(fake->view(), TokenShape::Auto, false);
    if (!keep.empty()) {
      auto tok = mint_classed_token(fake->view().substr(keep.size()), classed_layout_for(fake->view(), keep));
      if (!tok) return tok.take_error();
      if (!tok->empty()) {
        out.shown = token_with_prefix(keep, tok->view());
        out.token = std::move(*tok);
        return out;
      }
    }
  }
  auto tok = mint_token(plain_len);
  if (!tok) return tok.take_error();
  out.shown = canary_with_token(s, tok->view());
  out.token = std::move(*tok);
  return out;
}

void CanaryAlarm::set_killer(std::function<void()> killer) {
  std::function<void()> now;
  {
    std::lock_guard lock(mu_);
    killer_ = std::move(killer);
    if (kill_pending_ && !killed_) {
      killed_ = true;
      now = killer_;
    }
  }
  if (now) now();
}

void CanaryAlarm::raise(CanarySeen seen) {
  seen.decision = kill_ ? "kill" : "audit";
  std::string why = "canary " + seen.secret + " is a decoy that nothing legitimate uses: whoever sent it read it "
                    "from the environment";
  if (kill_) why += "; the run is ended (on_canary = \"kill\")";
  if (seen.reason.empty()) seen.reason = std::move(why);
  else seen.reason += "; " + why;
  std::function<void()> kill_now;
  {
    std::lock_guard lock(mu_);
    if (first_.empty()) first_ = seen.secret;
    if (kill_ && !killed_) {
      if (killer_) {
        killed_ = true;
        kill_now = killer_;
      } else {
        kill_pending_ = true;
      }
    }
  }
  // The record first: it is the evidence, and it must be in the log before the run ends.
  audit_.record(std::move(seen));
  if (kill_now) kill_now();
}

std::string CanaryAlarm::tripped() const {
  std::lock_guard lock(mu_);
  return first_;
}

}  // namespace kz
