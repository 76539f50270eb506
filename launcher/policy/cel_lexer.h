// CEL lexer: turns source text into tokens, decoding numeric and string/bytes literals
// (raw, triple-quoted, and every escape of the spec) so the parser sees final values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kz::cel {

enum class Tok {
  End, Error,
  Int, Uint, Double, String, Bytes, Ident, QuotedIdent,  // QuotedIdent: `a-b` field names
  True, False, Null, In,
  LParen, RParen, LBracket, RBracket, LBrace, RBrace,
  Dot, Comma, Colon, Question,
  Plus, Minus, Star, Slash, Percent, Not,
  Eq, Ne, Lt, Le, Gt, Ge, And, Or,
};

struct Token {
  Tok kind = Tok::End;
  std::size_t offset = 0;       // byte offset of the token in the source
  std::string_view text;        // the source text of the token
  std::string str;              // decoded String/Bytes/QuotedIdent value, or the Error message
  std::uint64_t uint_value = 0; // Int (magnitude) and Uint
  bool int_overflow = false;    // Int literal above 2^64-1
  double double_value = 0;
};

// Lexes the whole source. On a lexical error the last token has kind Tok::Error, its
// offset at the problem and its message in str; otherwise the last token is Tok::End.
std::vector<Token> lex(std::string_view src);

const char* token_name(Tok t);

}  // namespace kz::cel
