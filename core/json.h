#pragma once
// A small JSON reader and writer: just what file headers need (safetensors). Numbers keep their
// source text, so a 64-bit integer (a byte offset) round-trips exactly instead of passing through
// a double. Objects keep their members in source order, duplicates included, so the caller can
// name a duplicated key instead of having one silently win.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace dtrain {

// A syntax error in JSON text: what was wrong and at which byte, apart, so a file reader can
// restate them with the file's own context.
class JsonParseError : public Error {
 public:
  JsonParseError(const std::string& problem, size_t position);
  const std::string& problem() const { return problem_; }
  size_t position() const { return position_; }

 private:
  std::string problem_;
  size_t position_;
};

class JsonValue {
 public:
  enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<JsonValue>;
  using Member = std::pair<std::string, JsonValue>;
  using Object = std::vector<Member>;

  JsonValue() = default;  // null
  static JsonValue boolean(bool value);
  // Any integer type (one template, so a plain int literal is not ambiguous); not bool.
  template <std::integral T>
    requires(!std::is_same_v<T, bool>)
  static JsonValue number(T value) {
    return number_text(std::to_string(value));
  }
  static JsonValue number_text(std::string text);  // a literal already in JSON number syntax
  static JsonValue string(std::string value);
  static JsonValue array(Array items = {});
  static JsonValue object(Object members = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  // Accessors raise dtrain::Error naming the expected and the actual kind.
  bool as_bool() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  // The number as an exact integer; raises for a fraction, an exponent or a value out of range.
  int64_t as_int64() const;
  uint64_t as_uint64() const;
  double as_double() const;
  const std::string& number_text() const;  // the literal as written

  // The first member named key, or null when there is none (objects only).
  const JsonValue* find(std::string_view key) const;
  void add(std::string key, JsonValue value);  // appends a member (objects only)
  void push_back(JsonValue item);              // appends an item (arrays only)

  // Where this value began in the parsed text (0 for values built in code): errors about a value
  // found valid as JSON, but wrong for the format, can point at it.
  size_t position() const { return position_; }
  void set_position(size_t position) { position_ = position; }

 private:
  void expect(Kind kind, const char* what) const;

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  std::string text_;  // the string's value, or the number's literal
  Array array_;
  Object object_;
  size_t position_ = 0;
};

const char* json_kind_name(JsonValue::Kind kind);

// Parses one JSON value that fills text (surrounding whitespace allowed). A syntax error raises
// JsonParseError "JSON: <problem> at byte N", N counted from 0 at the start of text.
JsonValue parse_json(std::string_view text);

// Compact JSON (no spaces), members in stored order, non-ASCII bytes passed through as UTF-8.
std::string write_json(const JsonValue& value);

}  // namespace dtrain
