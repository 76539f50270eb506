#include "policy/cel_parser.h"

#include <algorithm>
#include <array>
#include <string>

#include "policy/cel_eval.h"
#include "policy/cel_functions.h"
#include "policy/cel_lexer.h"
#include "policy/cel_macros.h"
#include "policy/cel_text.h"

namespace kz::cel {

namespace {

// Words the language reserves: not usable as identifiers, but fine as field names.
constexpr std::array<std::string_view, 17> kReserved = {
    "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while"};

bool reserved(std::string_view w) {
  return std::find(kReserved.begin(), kReserved.end(), w) != kReserved.end();
}

// Internal only: parse() catches it, nothing escapes the module.
struct ParseError {
  std::size_t offset;
  std::string message;
};

class Parser {
 public:
  Parser(const std::vector<Token>& toks, const Limits& lim) : t_(toks), lim_(lim) {}

  NodePtr run() {
    NodePtr e = expr();
    if (cur().kind != Tok::End) unexpected();
    return e;
  }

 private:
  // Nesting of the recursive descent: every nested expression (parentheses, arguments,
  // elements, indexes) goes through expr(), so counting there bounds the C++ stack.
  struct DepthGuard {
    Parser* p;
    explicit DepthGuard(Parser* parser) : p(parser) {
      if (++p->depth_ > p->lim_.max_depth)
        p->fail(p->cur().offset, "expression nested too deeply (limit " + std::to_string(p->lim_.max_depth) + ")");
    }
    ~DepthGuard() { --p->depth_; }
  };

  [[noreturn]] void fail(std::size_t offset, std::string msg) { throw ParseError{offset, std::move(msg)}; }
  [[noreturn]] void unexpected() {
    const Token& t = cur();
    if (t.kind == Tok::Error) fail(t.offset, t.str);
    fail(t.offset, std::string("unexpected ") + token_name(t.kind));
  }
  const Token& cur() const { return t_[p_]; }
  const Token& ahead(std::size_t k) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at(Tok k) const { return cur().kind == k; }
  bool accept(Tok k) {
    if (!at(k)) return false;
    ++p_;
    return true;
  }
  void expect(Tok k) {
    if (!accept(k)) {
      if (at(Tok::Error)) unexpected();
      fail(cur().offset, std::string("expected ") + token_name(k) + ", found " + token_name(cur().kind));
    }
  }

  NodePtr make(NodeKind k, std::size_t offset) {
    if (++nodes_ > lim_.max_nodes)
      fail(offset, "expression too large (more than " + std::to_string(lim_.max_nodes) + " nodes)");
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->offset = static_cast<std::uint32_t>(offset);
    return n;
  }
  // Computes the subtree height once the children are attached, and enforces the limit
  // (left-associative chains such as 1+1+1... are deep trees without deep recursion).
  NodePtr seal(NodePtr n) {
    std::uint32_t h = 0;
    for (const auto& k : n->kids) h = std::max(h, k->height);
    n->height = h + 1;
    if (n->height > lim_.max_depth)
      fail(n->offset, "expression nested too deeply (limit " + std::to_string(lim_.max_depth) + ")");
    return n;
  }
  NodePtr binary(NodeKind k, Op op, std::size_t offset, NodePtr a, NodePtr b) {
    NodePtr n = make(k, offset);
    n->op = op;
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return check_constant(seal(std::move(n)));
  }

  // The light type check: an operator or function whose operands are all literals is
  // evaluated once; "no such overload" there can never succeed at run time, so it is a
  // compile error. Other errors (1 / 0) stay run-time errors, as the language defines.
  NodePtr check_constant(NodePtr n) {
    if (!lim_.check || (n->kind != NodeKind::Binary && n->kind != NodeKind::Unary && n->kind != NodeKind::Call))
      return n;
    if (n->kind == NodeKind::Call && n->fn == Fn::Unknown) return n;
    for (const auto& k : n->kids)
      if (k->kind != NodeKind::Const || k->value.is_error()) return n;
    Limits lim = lim_;
    lim.max_steps = 1000;
    const Value v = evaluate(*n, Activation{}, lim, 0);
    if (v.is_error() && v.error_message().rfind("no such overload", 0) == 0) fail(n->offset, v.error_message());
    return n;
  }

  NodePtr expr() {
    DepthGuard g(this);
    NodePtr c = logical(Tok::Or);
    if (!at(Tok::Question)) return c;
    const std::size_t off = cur().offset;
    ++p_;
    NodePtr a = logical(Tok::Or);
    expect(Tok::Colon);
    NodePtr b = expr();
    NodePtr n = make(NodeKind::Cond, off);
    n->kids.push_back(std::move(c));
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return seal(std::move(n));
  }

  // && and || chains are built as balanced trees: the operators are associative in CEL,
  // and a balanced tree keeps long generated rules within the depth limit.
  NodePtr logical(Tok op) {
    std::vector<NodePtr> terms;
    std::vector<std::size_t> offs;
    terms.push_back(op == Tok::Or ? logical(Tok::And) : relation());
    while (at(op)) {
      offs.push_back(cur().offset);
      ++p_;
      terms.push_back(op == Tok::Or ? logical(Tok::And) : relation());
    }
    if (terms.size() == 1) return std::move(terms[0]);
    return balance(op == Tok::Or ? NodeKind::Or : NodeKind::And, terms, offs, 0, terms.size());
  }
  NodePtr balance(NodeKind k, std::vector<NodePtr>& terms, const std::vector<std::size_t>& offs,
                  std::size_t lo, std::size_t hi) {
    if (hi - lo == 1) return std::move(terms[lo]);
    const std::size_t mid = lo + (hi - lo) / 2;
    NodePtr a = balance(k, terms, offs, lo, mid);
    NodePtr b = balance(k, terms, offs, mid, hi);
    return binary(k, Op::Not, offs[mid - 1], std::move(a), std::move(b));
  }

  NodePtr relation() {
    NodePtr a = addition();
    for (;;) {
      Op op;
      switch (cur().kind) {
        case Tok::Lt: op = Op::Lt; break;
        case Tok::Le: op = Op::Le; break;
        case Tok::Gt: op = Op::Gt; break;
        case Tok::Ge: op = Op::Ge; break;
        case Tok::Eq: op = Op::Eq; break;
        case Tok::Ne: op = Op::Ne; break;
        case Tok::In: op = Op::In; break;
        default: return a;
      }
      const std::size_t off = cur().offset;
      ++p_;
      a = binary(NodeKind::Binary, op, off, std::move(a), addition());
    }
  }

  NodePtr addition() {
    NodePtr a = multiplication();
    while (at(Tok::Plus) || at(Tok::Minus)) {
      const Op op = at(Tok::Plus) ? Op::Add : Op::Sub;
      const std::size_t off = cur().offset;
      ++p_;
      a = binary(NodeKind::Binary, op, off, std::move(a), multiplication());
    }
    return a;
  }

  NodePtr multiplication() {
    NodePtr a = unary();
    for (;;) {
      Op op;
      if (at(Tok::Star)) op = Op::Mul;
      else if (at(Tok::Slash)) op = Op::Div;
      else if (at(Tok::Percent)) op = Op::Mod;
      else return a;
      const std::size_t off = cur().offset;
      ++p_;
      a = binary(NodeKind::Binary, op, off, std::move(a), unary());
    }
  }

  NodePtr unary() {
    if (!at(Tok::Not) && !at(Tok::Minus)) return member(false);
    const Tok kind = cur().kind;
    std::vector<std::size_t> offs;
    while (at(kind)) {
      offs.push_back(cur().offset);
      ++p_;
    }
    NodePtr e;
    // A minus directly before a number literal is part of the literal, so that
    // -9223372036854775808 is a valid int.
    if (kind == Tok::Minus && (at(Tok::Int) || at(Tok::Double))) {
      e = member(true);
      offs.pop_back();
    } else {
      e = member(false);
    }
    while (!offs.empty()) {
      NodePtr n = make(NodeKind::Unary, offs.back());
      offs.pop_back();
      n->op = kind == Tok::Not ? Op::Not : Op::Neg;
      n->kids.push_back(std::move(e));
      e = check_constant(seal(std::move(n)));
    }
    return e;
  }

  NodePtr member(bool negative) {
    NodePtr e = primary(negative);
    for (;;) {
      if (at(Tok::Dot)) {
        const std::size_t off = cur().offset;
        ++p_;
        const Token& f = cur();
        if (f.kind != Tok::Ident && f.kind != Tok::QuotedIdent) {
          if (f.kind == Tok::Error) unexpected();
          fail(f.offset, std::string("expected a field name after '.', found ") + token_name(f.kind));
        }
        std::string name = f.kind == Tok::Ident ? std::string(f.text) : f.str;
        const bool can_call = f.kind == Tok::Ident;
        const std::size_t name_off = f.offset;
        ++p_;
        if (can_call && at(Tok::LParen)) {
          std::vector<NodePtr> args = arguments(Tok::RParen);
          e = call(name, name_off, std::move(e), std::move(args));
          continue;
        }
        NodePtr n = make(NodeKind::Select, off);
        n->name = std::move(name);
        if (e->kind == NodeKind::Ident) n->qualified = e->name + "." + n->name;
        else if (e->kind == NodeKind::Select && !e->qualified.empty()) n->qualified = e->qualified + "." + n->name;
        n->kids.push_back(std::move(e));
        e = seal(std::move(n));
      } else if (at(Tok::LBracket)) {
        const std::size_t off = cur().offset;
        ++p_;
        NodePtr idx = expr();
        expect(Tok::RBracket);
        e = binary(NodeKind::Index, Op::Not, off, std::move(e), std::move(idx));
      } else if (at(Tok::LBrace) && (e->kind == NodeKind::Ident || !e->qualified.empty())) {
        fail(cur().offset, "message construction is not supported");
      } else {
        return e;
      }
    }
  }

  // Comma-separated expressions up to `close`, with an optional trailing comma for
  // list literals. The opening token is the current one.
  std::vector<NodePtr> arguments(Tok close) {
    ++p_;
    std::vector<NodePtr> out;
    if (accept(close)) return out;
    for (;;) {
      out.push_back(expr());
      if (accept(close)) return out;
      expect(Tok::Comma);
      if (close == Tok::RBracket && accept(close)) return out;
    }
  }

  NodePtr primary(bool negative) {
    const Token& t = cur();
    switch (t.kind) {
      case Tok::Int: {
        ++p_;
        const std::uint64_t limit = negative ? (1ULL << 63) : static_cast<std::uint64_t>(INT64_MAX);
        if (t.int_overflow || t.uint_value > limit) fail(t.offset, "integer literal out of range");
        NodePtr n = make(NodeKind::Const, negative ? t.offset - 1 : t.offset);
        n->value = negative ? Value(static_cast<std::int64_t>(0 - t.uint_value)) : Value(static_cast<std::int64_t>(t.uint_value));
        return seal(std::move(n));
      }
      case Tok::Double: return constant(Value(negative ? -t.double_value : t.double_value));
      case Tok::Uint: return constant(Value(t.uint_value));
      case Tok::String: return constant(Value(t.str));
      case Tok::Bytes: return constant(Value(Bytes{t.str}));
      case Tok::True: return constant(Value(true));
      case Tok::False: return constant(Value(false));
      case Tok::Null: return constant(Value(Null{}));
      case Tok::Dot:
        // A leading dot names the root scope; without namespaces it is the same identifier.
        ++p_;
        if (!at(Tok::Ident)) fail(cur().offset, "expected an identifier after a leading '.'");
        return identifier();
      case Tok::Ident: return identifier();
      case Tok::LParen: {
        ++p_;
        NodePtr e = expr();
        expect(Tok::RParen);
        return e;
      }
      case Tok::LBracket: {
        const std::size_t off = t.offset;
        std::vector<NodePtr> elems = arguments(Tok::RBracket);
        NodePtr n = make(NodeKind::List, off);
        n->kids = std::move(elems);
        return fold(seal(std::move(n)));
      }
      case Tok::LBrace: return map_literal();
      default: unexpected();
    }
  }

  NodePtr constant(Value v) {
    NodePtr n = make(NodeKind::Const, cur().offset);
    ++p_;
    n->value = std::move(v);
    return seal(std::move(n));
  }

  NodePtr identifier() {
    const Token& t = cur();
    std::string name(t.text);
    const std::size_t off = t.offset;
    if (reserved(name)) fail(off, "reserved identifier '" + name + "'");
    ++p_;
    if (at(Tok::LParen)) {
      std::vector<NodePtr> args = arguments(Tok::RParen);
      return call(name, off, nullptr, std::move(args));
    }
    NodePtr n = make(NodeKind::Ident, off);
    n->name = std::move(name);
    return seal(std::move(n));
  }

  NodePtr map_literal() {
    NodePtr n = make(NodeKind::Map, cur().offset);
    ++p_;
    if (!accept(Tok::RBrace)) {
      for (;;) {
        n->kids.push_back(expr());
        expect(Tok::Colon);
        n->kids.push_back(expr());
        if (accept(Tok::RBrace)) break;
        expect(Tok::Comma);
        if (accept(Tok::RBrace)) break;
      }
    }
    return fold(seal(std::move(n)));
  }

  // A list or map literal of constants is built once, at compile time, instead of on
  // every evaluation (`x in ['a', 'b']` is the common policy shape). A literal map with a
  // repeated key folds to its error value, which evaluation returns as before.
  static NodePtr fold(NodePtr n) {
    for (const auto& k : n->kids)
      if (k->kind != NodeKind::Const) return n;
    Value v;
    if (n->kind == NodeKind::List) {
      List l;
      l.reserve(n->kids.size());
      for (auto& k : n->kids) l.push_back(std::move(k->value));
      v = Value(std::move(l));
    } else {
      std::vector<std::pair<Value, Value>> entries;
      for (std::size_t i = 0; i + 1 < n->kids.size(); i += 2)
        entries.emplace_back(std::move(n->kids[i]->value), std::move(n->kids[i + 1]->value));
      v = Value::make_map(std::move(entries));
    }
    n->kids.clear();
    n->kind = NodeKind::Const;
    n->value = std::move(v);
    return n;
  }

  NodePtr call(const std::string& name, std::size_t off, NodePtr receiver, std::vector<NodePtr> args) {
    NodePtr out;
    std::string why;
    switch (expand_macro(name, receiver, args, off, &out, &why)) {
      case MacroMatch::Expanded:
        ++nodes_;
        return seal(std::move(out));
      case MacroMatch::Invalid: fail(off, why);
      case MacroMatch::NotAMacro: break;
    }
    Fn fn;
    if (!resolve_function(name, receiver != nullptr, args.size(), &fn, &why)) {
      if (lim_.check) fail(off, why);
      fn = Fn::Unknown;
    }
    NodePtr n = make(NodeKind::Call, off);
    n->fn = fn;
    n->method = receiver != nullptr;
    n->name = name;
    if (receiver) n->kids.push_back(std::move(receiver));
    for (auto& a : args) n->kids.push_back(std::move(a));
    if (!prepare_call(*n, &why)) fail(off, why);
    return check_constant(seal(std::move(n)));
  }

  const std::vector<Token>& t_;
  const Limits& lim_;
  std::size_t p_ = 0;
  std::size_t nodes_ = 0;
  std::size_t depth_ = 0;
};

}  // namespace

ParseOutcome parse(std::string_view src, const Limits& limits) {
  ParseOutcome out;
  if (src.size() > limits.max_source_bytes) {
    out.diagnostic = {limits.max_source_bytes, "expression too long (" + std::to_string(src.size()) +
                                                   " bytes, limit " + std::to_string(limits.max_source_bytes) + ")"};
    return out;
  }
  std::uint32_t cp;
  for (std::size_t i = 0; i < src.size();) {
    const std::size_t n = utf8_decode(src, i, &cp);
    if (n == 0) {
      out.diagnostic = {i, "expression is not valid UTF-8"};
      return out;
    }
    i += n;
  }
  const std::vector<Token> toks = lex(src);
  try {
    out.root = Parser(toks, limits).run();
  } catch (const ParseError& e) {
    out.root.reset();
    out.diagnostic = {e.offset, e.message};
  } catch (const std::exception&) {  // allocation failures
    out.root.reset();
    out.diagnostic = {0, "out of memory while parsing"};
  }
  return out;
}

}  // namespace kz::cel
