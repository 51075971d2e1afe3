#include "core/json.h"

#include <charconv>
#include <cstdlib>
#include <system_error>

#include "core/error.h"

namespace dtrain {

JsonParseError::JsonParseError(const std::string& problem, size_t position)
    : Error(detail::concat("JSON: ", problem, " at byte ", position)), problem_(problem), position_(position) {}

// --- values ---

JsonValue JsonValue::boolean(bool value) {
  JsonValue result;
  result.kind_ = Kind::Bool;
  result.bool_ = value;
  return result;
}

JsonValue JsonValue::number_text(std::string text) {
  JsonValue result;
  result.kind_ = Kind::Number;
  result.text_ = std::move(text);
  return result;
}

JsonValue JsonValue::string(std::string value) {
  JsonValue result;
  result.kind_ = Kind::String;
  result.text_ = std::move(value);
  return result;
}

JsonValue JsonValue::array(Array items) {
  JsonValue result;
  result.kind_ = Kind::Array;
  result.array_ = std::move(items);
  return result;
}

JsonValue JsonValue::object(Object members) {
  JsonValue result;
  result.kind_ = Kind::Object;
  result.object_ = std::move(members);
  return result;
}

const char* json_kind_name(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return "a boolean";
    case JsonValue::Kind::Number: return "a number";
    case JsonValue::Kind::String: return "a string";
    case JsonValue::Kind::Array: return "an array";
    case JsonValue::Kind::Object: return "an object";
  }
  return "unknown";
}

void JsonValue::expect(Kind kind, const char* what) const {
  if (kind_ != kind) fail("JSON: ", what, ": expected ", json_kind_name(kind), ", got ", json_kind_name(kind_));
}

bool JsonValue::as_bool() const {
  expect(Kind::Bool, "as_bool");
  return bool_;
}

const std::string& JsonValue::as_string() const {
  expect(Kind::String, "as_string");
  return text_;
}

const JsonValue::Array& JsonValue::as_array() const {
  expect(Kind::Array, "as_array");
  return array_;
}

const JsonValue::Object& JsonValue::as_object() const {
  expect(Kind::Object, "as_object");
  return object_;
}

const std::string& JsonValue::number_text() const {
  expect(Kind::Number, "number_text");
  return text_;
}

int64_t JsonValue::as_int64() const {
  expect(Kind::Number, "as_int64");
  int64_t value = 0;
  auto [end, error] = std::from_chars(text_.data(), text_.data() + text_.size(), value);
  if (error == std::errc::result_out_of_range) fail("JSON: expected an integer that fits in 64 bits, got ", text_);
  if (error != std::errc() || end != text_.data() + text_.size()) fail("JSON: expected an integer, got ", text_);
  return value;
}

uint64_t JsonValue::as_uint64() const {
  expect(Kind::Number, "as_uint64");
  if (!text_.empty() && text_[0] == '-') fail("JSON: expected a non-negative integer, got ", text_);
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text_.data(), text_.data() + text_.size(), value);
  if (error == std::errc::result_out_of_range) fail("JSON: expected an integer that fits in 64 bits, got ", text_);
  if (error != std::errc() || end != text_.data() + text_.size()) fail("JSON: expected an integer, got ", text_);
  return value;
}

double JsonValue::as_double() const {
  expect(Kind::Number, "as_double");
  return std::strtod(text_.c_str(), nullptr);  // the parser has checked the syntax
}

const JsonValue* JsonValue::find(std::string_view key) const {
  expect(Kind::Object, "find");
  for (const Member& member : object_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

void JsonValue::add(std::string key, JsonValue value) {
  expect(Kind::Object, "add");
  object_.emplace_back(std::move(key), std::move(value));
}

void JsonValue::push_back(JsonValue item) {
  expect(Kind::Array, "push_back");
  array_.push_back(std::move(item));
}

// --- reading ---

namespace {

// Deep nesting is never needed by a file header; the limit keeps a hostile file from exhausting
// the stack of this recursive parser.
constexpr int kMaxDepth = 128;

std::string describe_byte(char byte) {
  auto code = static_cast<unsigned char>(byte);
  if (code >= 0x20 && code < 0x7f) return std::string("'") + byte + "'";
  static const char* digits = "0123456789abcdef";
  return std::string("byte 0x") + digits[code >> 4] + digits[code & 15];
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  JsonValue parse_document() {
    skip_whitespace();
    JsonValue value = parse_value(0);
    skip_whitespace();
    if (at_ < text_.size()) error("expected the end of the text after the JSON value, got " + describe_byte(text_[at_]));
    return value;
  }

 private:
  [[noreturn]] void error(const std::string& problem) const { throw JsonParseError(problem, at_); }

  std::string got() const { return at_ < text_.size() ? describe_byte(text_[at_]) : std::string("the end of the text"); }

  void skip_whitespace() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) ++at_;
  }

  void expect_char(char expected) {
    if (at_ >= text_.size() || text_[at_] != expected) error(std::string("expected '") + expected + "', got " + got());
    ++at_;
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    size_t start = at_;
    JsonValue value;
    if (at_ >= text_.size()) error("expected a value, got the end of the text");
    char c = text_[at_];
    if (c == '{') value = parse_object(depth);
    else if (c == '[') value = parse_array(depth);
    else if (c == '"') value = JsonValue::string(parse_string());
    else if (c == '-' || (c >= '0' && c <= '9')) value = parse_number();
    else if (c == 't') value = parse_literal("true", JsonValue::boolean(true));
    else if (c == 'f') value = parse_literal("false", JsonValue::boolean(false));
    else if (c == 'n') value = parse_literal("null", JsonValue());
    else error("expected a value, got " + got());
    value.set_position(start);
    return value;
  }

  JsonValue parse_literal(std::string_view literal, JsonValue value) {
    if (text_.substr(at_, literal.size()) != literal) error("expected '" + std::string(literal) + "', got " + got());
    at_ += literal.size();
    return value;
  }

  JsonValue parse_object(int depth) {
    expect_char('{');
    JsonValue object = JsonValue::object();
    skip_whitespace();
    if (at_ < text_.size() && text_[at_] == '}') {
      ++at_;
      return object;
    }
    while (true) {
      skip_whitespace();
      if (at_ >= text_.size() || text_[at_] != '"') error("expected a string key, got " + got());
      std::string key = parse_string();
      skip_whitespace();
      expect_char(':');
      skip_whitespace();
      object.add(std::move(key), parse_value(depth + 1));
      skip_whitespace();
      if (at_ < text_.size() && text_[at_] == ',') {
        ++at_;
        continue;
      }
      if (at_ < text_.size() && text_[at_] == '}') {
        ++at_;
        return object;
      }
      error("expected ',' or '}' in an object, got " + got());
    }
  }

  JsonValue parse_array(int depth) {
    expect_char('[');
    JsonValue array = JsonValue::array();
    skip_whitespace();
    if (at_ < text_.size() && text_[at_] == ']') {
      ++at_;
      return array;
    }
    while (true) {
      skip_whitespace();
      array.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (at_ < text_.size() && text_[at_] == ',') {
        ++at_;
        continue;
      }
      if (at_ < text_.size() && text_[at_] == ']') {
        ++at_;
        return array;
      }
      error("expected ',' or ']' in an array, got " + got());
    }
  }

  bool is_digit_at(size_t position) const { return position < text_.size() && text_[position] >= '0' && text_[position] <= '9'; }

  // JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  JsonValue parse_number() {
    size_t start = at_;
    if (text_[at_] == '-') ++at_;
    if (!is_digit_at(at_)) error("expected a digit in a number, got " + got());
    if (text_[at_] == '0') {
      ++at_;
      if (is_digit_at(at_)) error("expected no leading zero in a number, got " + got());
    } else {
      while (is_digit_at(at_)) ++at_;
    }
    if (at_ < text_.size() && text_[at_] == '.') {
      ++at_;
      if (!is_digit_at(at_)) error("expected a digit after the decimal point, got " + got());
      while (is_digit_at(at_)) ++at_;
    }
    if (at_ < text_.size() && (text_[at_] == 'e' || text_[at_] == 'E')) {
      ++at_;
      if (at_ < text_.size() && (text_[at_] == '+' || text_[at_] == '-')) ++at_;
      if (!is_digit_at(at_)) error("expected a digit in the exponent, got " + got());
      while (is_digit_at(at_)) ++at_;
    }
    return JsonValue::number_text(std::string(text_.substr(start, at_ - start)));
  }

  uint32_t parse_hex4() {
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      if (at_ >= text_.size()) error("expected 4 hex digits after \\u, got the end of the text");
      char c = text_[at_];
      uint32_t digit;
      if (c >= '0' && c <= '9') digit = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') digit = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') digit = static_cast<uint32_t>(c - 'A' + 10);
      else error("expected a hex digit after \\u, got " + got());
      code = code * 16 + digit;
      ++at_;
    }
    return code;
  }

  static void append_utf8(std::string& out, uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xc0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xe0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }

  uint32_t parse_escaped_code_point() {
    size_t escape_start = at_ - 2;  // the backslash of "\u"
    uint32_t code = parse_hex4();
    if (code >= 0xdc00 && code <= 0xdfff) {
      at_ = escape_start;
      error("expected a high surrogate before a low surrogate \\u escape");
    }
    if (code >= 0xd800 && code <= 0xdbff) {  // a UTF-16 surrogate pair encodes one code point
      if (text_.substr(at_, 2) != "\\u") error("expected a low surrogate \\u escape after a high surrogate, got " + got());
      at_ += 2;
      uint32_t low = parse_hex4();
      if (low < 0xdc00 || low > 0xdfff) {
        at_ -= 6;
        error("expected a low surrogate (\\udc00-\\udfff) after a high surrogate");
      }
      code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    return code;
  }

  std::string parse_string() {
    expect_char('"');
    std::string out;
    while (true) {
      if (at_ >= text_.size()) error("expected the closing '\"' of a string, got the end of the text");
      char c = text_[at_];
      if (c == '"') {
        ++at_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) error("expected no raw control character in a string, got " + describe_byte(c));
      if (c != '\\') {
        out += c;
        ++at_;
        continue;
      }
      ++at_;
      if (at_ >= text_.size()) error("expected an escape character after '\\', got the end of the text");
      char escape = text_[at_++];
      switch (escape) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, parse_escaped_code_point()); break;
        default:
          --at_;
          error("expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\', got " + got());
      }
    }
  }

  std::string_view text_;
  size_t at_ = 0;
};

// --- writing ---

void write_string(std::string& out, const std::string& value) {
  static const char* digits = "0123456789abcdef";
  out += '"';
  for (char c : value) {
    auto code = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (code < 0x20) {
          out += "\\u00";
          out += digits[code >> 4];
          out += digits[code & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void write_value(std::string& out, const JsonValue& value) {
  switch (value.kind()) {
    case JsonValue::Kind::Null: out += "null"; break;
    case JsonValue::Kind::Bool: out += value.as_bool() ? "true" : "false"; break;
    case JsonValue::Kind::Number: out += value.number_text(); break;
    case JsonValue::Kind::String: write_string(out, value.as_string()); break;
    case JsonValue::Kind::Array: {
      out += '[';
      bool first = true;
      for (const JsonValue& item : value.as_array()) {
        if (!first) out += ',';
        first = false;
        write_value(out, item);
      }
      out += ']';
      break;
    }
    case JsonValue::Kind::Object: {
      out += '{';
      bool first = true;
      for (const auto& [key, member] : value.as_object()) {
        if (!first) out += ',';
        first = false;
        write_string(out, key);
        out += ':';
        write_value(out, member);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

JsonValue parse_json(std::string_view text) { return Parser(text).parse_document(); }

std::string write_json(const JsonValue& value) {
  std::string out;
  write_value(out, value);
  return out;
}

}  // namespace dtrain
