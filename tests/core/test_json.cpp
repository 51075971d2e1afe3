#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "core/json.h"

using namespace dtrain;
using Catch::Contains;

TEST_CASE("json: parses every kind of value", "[json]") {
  JsonValue value = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "text"}, "d": 0} )");
  REQUIRE(value.is_object());
  const JsonValue::Object& members = value.as_object();
  REQUIRE(members.size() == 3);
  CHECK(members[0].first == "a");
  const JsonValue::Array& items = value.find("a")->as_array();
  REQUIRE(items.size() == 5);
  CHECK(items[0].as_int64() == 1);
  CHECK(items[1].as_double() == -2500.0);
  CHECK(items[2].as_bool());
  CHECK_FALSE(items[3].as_bool());
  CHECK(items[4].is_null());
  CHECK(value.find("b")->find("c")->as_string() == "text");
  CHECK(value.find("d")->as_uint64() == 0);
  CHECK(value.find("missing") == nullptr);
}

TEST_CASE("json: 64-bit integers stay exact", "[json]") {
  JsonValue value = parse_json("[18446744073709551615, 9223372036854775807, -9223372036854775808, 9007199254740993]");
  const JsonValue::Array& items = value.as_array();
  CHECK(items[0].as_uint64() == 18446744073709551615ull);
  CHECK(items[1].as_int64() == 9223372036854775807ll);
  CHECK(items[2].as_int64() == std::numeric_limits<int64_t>::min());
  CHECK(items[3].as_int64() == 9007199254740993ll);  // not representable as a double
  CHECK_THROWS_WITH(items[0].as_int64(), Contains("fits in 64 bits"));
  CHECK_THROWS_WITH(parse_json("1.5").as_int64(), Contains("expected an integer, got 1.5"));
  CHECK_THROWS_WITH(parse_json("-1").as_uint64(), Contains("non-negative"));
}

TEST_CASE("json: string escapes and UTF-8", "[json]") {
  JsonValue value = parse_json(R"("q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 é")");
  CHECK(value.as_string() == "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9");
}

TEST_CASE("json: writes compact text that parses back", "[json]") {
  JsonValue object = JsonValue::object();
  object.add("name", JsonValue::string("tab\there \"quoted\" \x01 \xc3\xa9"));
  object.add("list", JsonValue::array({JsonValue::number(-3), JsonValue::number(uint64_t{18446744073709551615ull}),
                                       JsonValue::boolean(true), JsonValue()}));
  object.add("empty", JsonValue::object());
  std::string text = write_json(object);
  CHECK(text ==
        "{\"name\":\"tab\\there \\\"quoted\\\" \\u0001 \xc3\xa9\",\"list\":[-3,18446744073709551615,true,null],\"empty\":{}}");
  JsonValue back = parse_json(text);
  CHECK(back.find("name")->as_string() == "tab\there \"quoted\" \x01 \xc3\xa9");
  CHECK(write_json(back) == text);
}

TEST_CASE("json: duplicate keys are kept for the caller to judge", "[json]") {
  JsonValue value = parse_json(R"({"k": 1, "k": 2})");
  REQUIRE(value.as_object().size() == 2);
  CHECK(value.find("k")->as_int64() == 1);
}

TEST_CASE("json: every syntax error names its byte position", "[json]") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "expected a value, got the end of the text at byte 0"},
      {"{", "expected a string key, got the end of the text at byte 1"},
      {"{\"a\" 1}", "expected ':', got '1' at byte 5"},
      {"{\"a\": 1,}", "expected a string key, got '}' at byte 8"},
      {"[1 2]", "expected ',' or ']' in an array, got '2' at byte 3"},
      {"{\"a\": 1 \"b\"}", "expected ',' or '}' in an object, got '\"' at byte 8"},
      {"\"abc", "expected the closing '\"' of a string, got the end of the text at byte 4"},
      {"\"a\nb\"", "expected no raw control character in a string, got byte 0x0a at byte 2"},
      {"\"\\x\"", "after '\\', got 'x' at byte 2"},
      {"\"\\u12G4\"", "expected a hex digit after \\u, got 'G' at byte 5"},
      {"\"\\udc00\"", "expected a high surrogate before a low surrogate \\u escape at byte 1"},
      {"\"\\ud83d x\"", "expected a low surrogate \\u escape after a high surrogate, got ' ' at byte 7"},
      {"01", "expected no leading zero in a number, got '1' at byte 1"},
      {"-", "expected a digit in a number, got the end of the text at byte 1"},
      {"1.", "expected a digit after the decimal point, got the end of the text at byte 2"},
      {"1e+", "expected a digit in the exponent, got the end of the text at byte 3"},
      {"tru", "expected 'true', got 't' at byte 0"},
      {"nul", "expected 'null', got 'n' at byte 0"},
      {"{} x", "expected the end of the text after the JSON value, got 'x' at byte 3"},
      {"@", "expected a value, got '@' at byte 0"},
  };
  for (const Case& c : cases) {
    INFO("text: " << c.text);
    CHECK_THROWS_WITH(parse_json(c.text), Contains(c.message));
    try {
      parse_json(c.text);
    } catch (const JsonParseError& error) {
      CHECK_THAT(error.what(), Contains(std::to_string(error.position())));
    }
  }
}

TEST_CASE("json: nesting is limited so hostile input cannot exhaust the stack", "[json]") {
  std::string deep(100000, '[');
  CHECK_THROWS_WITH(parse_json(deep), Contains("nesting deeper than"));
  std::string fine = std::string(100, '[') + std::string(100, ']');
  CHECK(parse_json(fine).is_array());
}

TEST_CASE("json: accessors name the kind they expected", "[json]") {
  JsonValue number = parse_json("3");
  CHECK_THROWS_WITH(number.as_string(), Contains("expected a string, got a number"));
  CHECK_THROWS_WITH(number.as_object(), Contains("expected an object, got a number"));
  CHECK(parse_json("  7  ").position() == 2);
}
