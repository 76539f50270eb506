#include "policy/cel_lexer.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "policy/cel_text.h"

namespace kz::cel {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : s_(src) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    for (;;) {
      skip_space();
      Token t;
      t.offset = i_;
      if (i_ >= s_.size()) {
        t.kind = Tok::End;
        out.push_back(std::move(t));
        return out;
      }
      if (!next(t)) {
        t.kind = Tok::Error;
        t.offset = err_offset_;
        t.str = std::move(err_);
        out.push_back(std::move(t));
        return out;
      }
      t.text = s_.substr(t.offset, i_ - t.offset);
      out.push_back(std::move(t));
    }
  }

 private:
  bool fail(std::size_t at, std::string msg) {
    err_offset_ = at;
    err_ = std::move(msg);
    return false;
  }
  char peek(std::size_t k = 0) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

  void skip_space() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++i_;
      } else if (c == '/' && peek(1) == '/') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        return;
      }
    }
  }

  bool next(Token& t) {
    const char c = s_[i_];
    if (is_digit(c) || (c == '.' && is_digit(peek(1)))) return number(t);
    if (c == '"' || c == '\'') return quoted(t, false, false);
    if (is_ident_start(c)) {
      // String prefixes: r/R (raw) and b/B (bytes), in either order, then a quote.
      bool raw = false, bytes = false;
      std::size_t k = 0;
      while (k < 2) {
        const char p = peek(k);
        if ((p == 'r' || p == 'R') && !raw) raw = true;
        else if ((p == 'b' || p == 'B') && !bytes) bytes = true;
        else break;
        ++k;
      }
      for (std::size_t n = k; n > 0; --n) {
        const char q = peek(n);
        if (q == '"' || q == '\'') {
          // Recompute the flags for exactly n prefix characters.
          bool r = false, b = false;
          for (std::size_t m = 0; m < n; ++m) {
            if (peek(m) == 'r' || peek(m) == 'R') r = true; else b = true;
          }
          i_ += n;
          return quoted(t, r, b);
        }
      }
      std::size_t j = i_;
      while (j < s_.size() && is_ident_char(s_[j])) ++j;
      const std::string_view word = s_.substr(i_, j - i_);
      i_ = j;
      if (word == "true") t.kind = Tok::True;
      else if (word == "false") t.kind = Tok::False;
      else if (word == "null") t.kind = Tok::Null;
      else if (word == "in") t.kind = Tok::In;
      else t.kind = Tok::Ident;
      return true;
    }
    if (c == '`') return quoted_ident(t);
    ++i_;
    switch (c) {
      case '(': t.kind = Tok::LParen; return true;
      case ')': t.kind = Tok::RParen; return true;
      case '[': t.kind = Tok::LBracket; return true;
      case ']': t.kind = Tok::RBracket; return true;
      case '{': t.kind = Tok::LBrace; return true;
      case '}': t.kind = Tok::RBrace; return true;
      case '.': t.kind = Tok::Dot; return true;
      case ',': t.kind = Tok::Comma; return true;
      case ':': t.kind = Tok::Colon; return true;
      case '?': t.kind = Tok::Question; return true;
      case '+': t.kind = Tok::Plus; return true;
      case '-': t.kind = Tok::Minus; return true;
      case '*': t.kind = Tok::Star; return true;
      case '/': t.kind = Tok::Slash; return true;
      case '%': t.kind = Tok::Percent; return true;
      case '!':
        if (peek() == '=') { ++i_; t.kind = Tok::Ne; } else { t.kind = Tok::Not; }
        return true;
      case '=':
        if (peek() == '=') { ++i_; t.kind = Tok::Eq; return true; }
        return fail(i_ - 1, "unexpected '=' (did you mean '=='?)");
      case '<':
        if (peek() == '=') { ++i_; t.kind = Tok::Le; } else { t.kind = Tok::Lt; }
        return true;
      case '>':
        if (peek() == '=') { ++i_; t.kind = Tok::Ge; } else { t.kind = Tok::Gt; }
        return true;
      case '&':
        if (peek() == '&') { ++i_; t.kind = Tok::And; return true; }
        return fail(i_ - 1, "unexpected '&' (did you mean '&&'?)");
      case '|':
        if (peek() == '|') { ++i_; t.kind = Tok::Or; return true; }
        return fail(i_ - 1, "unexpected '|' (did you mean '||'?)");
      default:
        return fail(i_ - 1, "unexpected character");
    }
  }

  bool number(Token& t) {
    const std::size_t start = i_;
    if (peek() == '0' && (peek(1) == 'x' || peek(1) == 'X')) {
      i_ += 2;
      if (!is_hex(peek())) return fail(start, "malformed hexadecimal literal");
      std::uint64_t v = 0;
      bool over = false;
      while (is_hex(peek())) {
        if (v > (UINT64_MAX >> 4)) over = true;
        v = (v << 4) | static_cast<std::uint64_t>(hex_value(s_[i_++]));
      }
      return finish_int(t, start, v, over);
    }
    std::size_t j = i_;
    while (j < s_.size() && is_digit(s_[j])) ++j;
    bool is_float = false;
    if (j < s_.size() && s_[j] == '.' && j + 1 < s_.size() && is_digit(s_[j + 1])) {
      is_float = true;
      ++j;
      while (j < s_.size() && is_digit(s_[j])) ++j;
    }
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      std::size_t k = j + 1;
      if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
      if (k < s_.size() && is_digit(s_[k])) {
        is_float = true;
        j = k;
        while (j < s_.size() && is_digit(s_[j])) ++j;
      }
    }
    if (is_float) {
      // strtod rather than from_chars: an underflowing literal (1e-324) is 0 or a
      // subnormal as in other CEL implementations; only overflow is an error.
      const std::string text(s_.substr(i_, j - i_));
      errno = 0;
      char* end = nullptr;
      t.double_value = std::strtod(text.c_str(), &end);
      if (end != text.c_str() + text.size()) return fail(start, "malformed floating-point literal");
      if (errno == ERANGE && std::isinf(t.double_value)) return fail(start, "floating-point literal out of range");
      i_ = j;
      t.kind = Tok::Double;
      return true;
    }
    std::uint64_t v = 0;
    bool over = false;
    for (; i_ < j; ++i_) {
      const auto d = static_cast<std::uint64_t>(s_[i_] - '0');
      if (v > (UINT64_MAX - d) / 10) over = true;
      v = v * 10 + d;
    }
    return finish_int(t, start, v, over);
  }

  bool finish_int(Token& t, std::size_t start, std::uint64_t v, bool over) {
    if (peek() == 'u' || peek() == 'U') {
      ++i_;
      if (over) return fail(start, "unsigned integer literal out of range");
      t.kind = Tok::Uint;
    } else {
      t.kind = Tok::Int;
      t.int_overflow = over;
    }
    t.uint_value = v;
    return true;
  }

  bool quoted_ident(Token& t) {
    const std::size_t start = i_++;
    std::size_t j = i_;
    while (j < s_.size() && s_[j] != '`') {
      const char c = s_[j];
      if (!(is_ident_char(c) || c == '.' || c == '-' || c == '/' || c == ' '))
        return fail(j, "invalid character in quoted identifier");
      ++j;
    }
    if (j >= s_.size()) return fail(start, "unterminated quoted identifier");
    if (j == i_) return fail(start, "empty quoted identifier");
    t.str.assign(s_.substr(i_, j - i_));
    t.kind = Tok::QuotedIdent;
    i_ = j + 1;
    return true;
  }

  bool quoted(Token& t, bool raw, bool bytes) {
    const std::size_t lit_start = t.offset;
    const char q = s_[i_];
    const bool triple = peek(1) == q && peek(2) == q;
    i_ += triple ? 3 : 1;
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) return fail(lit_start, "unterminated string literal");
      const char c = s_[i_];
      if (c == q && (!triple || (peek(1) == q && peek(2) == q))) {
        i_ += triple ? 3 : 1;
        break;
      }
      if (!triple && (c == '\n' || c == '\r')) return fail(i_, "newline in string literal");
      if (c == '\\' && !raw) {
        if (!escape(out, bytes)) return false;
        continue;
      }
      out += c;
      ++i_;
    }
    if (!bytes && !valid_utf8(out)) return fail(lit_start, "string literal is not valid UTF-8");
    t.kind = bytes ? Tok::Bytes : Tok::String;
    t.str = std::move(out);
    return true;
  }

  bool escape(std::string& out, bool bytes) {
    const std::size_t at = i_;
    ++i_;  // the backslash
    if (i_ >= s_.size()) return fail(at, "unterminated escape sequence");
    const char c = s_[i_++];
    switch (c) {
      case '\\': out += '\\'; return true;
      case '?': out += '?'; return true;
      case '"': out += '"'; return true;
      case '\'': out += '\''; return true;
      case '`': out += '`'; return true;
      case 'a': out += '\a'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'v': out += '\v'; return true;
      case 'x': case 'X': case 'u': case 'U': {
        const int n = (c == 'x' || c == 'X') ? 2 : (c == 'u' ? 4 : 8);
        std::uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          if (!is_hex(peek())) return fail(at, "malformed escape sequence");
          v = (v << 4) | static_cast<std::uint32_t>(hex_value(s_[i_++]));
        }
        if (n == 2) return put_byte(out, v, bytes);
        if (bytes) return fail(at, "unicode escape in a bytes literal");
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return fail(at, "invalid code point in escape");
        append_utf8(out, v);
        return true;
      }
      default:
        if (c >= '0' && c <= '3' && peek() >= '0' && peek() <= '7' && peek(1) >= '0' && peek(1) <= '7') {
          const auto v = static_cast<std::uint32_t>((c - '0') * 64 + (s_[i_] - '0') * 8 + (s_[i_ + 1] - '0'));
          i_ += 2;
          return put_byte(out, v, bytes);
        }
        return fail(at, "invalid escape sequence");
    }
  }

  // \x and octal escapes: a byte in bytes literals, the code point U+00XX in strings.
  static bool put_byte(std::string& out, std::uint32_t v, bool bytes) {
    if (bytes) out += static_cast<char>(v);
    else append_utf8(out, v);
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::size_t err_offset_ = 0;
  std::string err_;
};

}  // namespace

std::vector<Token> lex(std::string_view src) { return Lexer(src).run(); }

const char* token_name(Tok t) {
  switch (t) {
    case Tok::End: return "end of expression";
    case Tok::Error: return "error";
    case Tok::Int: case Tok::Uint: case Tok::Double: return "number";
    case Tok::String: return "string";
    case Tok::Bytes: return "bytes";
    case Tok::Ident: return "identifier";
    case Tok::QuotedIdent: return "quoted identifier";
    case Tok::True: return "'true'";
    case Tok::False: return "'false'";
    case Tok::Null: return "'null'";
    case Tok::In: return "'in'";
    case Tok::LParen: return "'('";
    case Tok::RParen: return "')'";
    case Tok::LBracket: return "'['";
    case Tok::RBracket: return "']'";
    case Tok::LBrace: return "'{'";
    case Tok::RBrace: return "'}'";
    case Tok::Dot: return "'.'";
    case Tok::Comma: return "','";
    case Tok::Colon: return "':'";
    case Tok::Question: return "'?'";
    case Tok::Plus: return "'+'";
    case Tok::Minus: return "'-'";
    case Tok::Star: return "'*'";
    case Tok::Slash: return "'/'";
    case Tok::Percent: return "'%'";
    case Tok::Not: return "'!'";
    case Tok::Eq: return "'=='";
    case Tok::Ne: return "'!='";
    case Tok::Lt: return "'<'";
    case Tok::Le: return "'<='";
    case Tok::Gt: return "'>'";
    case Tok::Ge: return "'>='";
    case Tok::And: return "'&&'";
    case Tok::Or: return "'||'";
  }
  return "?";
}

}  // namespace kz::cel
