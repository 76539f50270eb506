#include "policy/jwt_error.h"

namespace kz::jwt {

const char* to_string(Reason r) {
  switch (r) {
    case Reason::Malformed: return "malformed";
    case Reason::AlgNone: return "alg_none";
    case Reason::AlgMismatch: return "alg_mismatch";
    case Reason::KeyMismatch: return "key_mismatch";
    case Reason::UnknownKid: return "unknown_kid";
    case Reason::BadSignature: return "bad_signature";
    case Reason::CritUnsupported: return "crit_unsupported";
    case Reason::Expired: return "expired";
    case Reason::NotYetValid: return "not_yet_valid";
    case Reason::WrongIssuer: return "wrong_issuer";
    case Reason::WrongAudience: return "wrong_audience";
    case Reason::MissingClaim: return "missing_claim";
  }
  return "unknown";
}

Error to_error(const JwtError& e) {
  return make_error(ErrorKind::Denied, std::string("jwt rejected (") + to_string(e.reason) + "): " + e.message);
}

}  // namespace kz::jwt
