#!/usr/bin/env python3
"""Reports standard-library names a file uses without including their header itself.

Used by scripts/check-std-includes. Compiling against a second standard library cannot catch
everything: libc++ 14's <string> pulls in <cstdint>, <algorithm> and <cstdlib> just as
libstdc++ 12's did, and libstdc++ 13 and 14 stopped doing so. This lint reads the source
instead: each name in the table below must come from a header the file includes directly (a
.cpp or .cu may rely on its own header, foo.h or foo.cuh beside it, as include-what-you-use
allows). Comments, string and character literals are ignored.

Usage: std_include_lint.py FILE...   (exit status 1 when a file lacks an include)
"""
import re
import sys
from pathlib import Path

# header (or alternatives "a|b": any one satisfies the use) -> names it provides.
# Names in STD are matched as std::name; names in BARE also without std:: (the C names that
# <cstdint>, <cstring>... declare globally too, and macros).
STD = {
    "cstdint": "int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t "
               "intmax_t uintmax_t",
    "cstddef": "ptrdiff_t nullptr_t max_align_t byte",
    "cstddef|cstdlib|cstring|cstdio|ctime|cwchar": "size_t",
    "cstdlib": "abort exit _Exit quick_exit atexit getenv malloc calloc realloc free aligned_alloc "
               "strtol strtoll strtoul strtoull strtod strtof atoi atol atof qsort system",
    "cstdlib|cmath": "abs",
    "cmath": "sqrt cbrt exp exp2 expm1 log log2 log10 log1p pow tanh sinh cosh tan sin cos atan atan2 "
             "asin acos erf erfc fabs floor ceil round lround llround trunc fma fmax fmin fmod "
             "isnan isinf isfinite signbit copysign nextafter hypot ldexp frexp lgamma tgamma rint",
    "algorithm": "sort stable_sort partial_sort nth_element min max minmax clamp min_element "
                 "max_element minmax_element fill fill_n copy copy_n copy_if copy_backward find "
                 "find_if find_if_not any_of all_of none_of count count_if transform reverse equal "
                 "lower_bound upper_bound equal_range binary_search remove_if unique rotate shuffle "
                 "for_each generate generate_n replace replace_if is_sorted mismatch search "
                 "lexicographical_compare set_difference set_intersection set_union merge "
                 "is_permutation next_permutation swap_ranges",
    "utility|algorithm": "move",
    "utility": "forward pair make_pair exchange as_const declval index_sequence make_index_sequence "
               "integer_sequence make_integer_sequence in_place piecewise_construct cmp_less "
               "cmp_greater cmp_equal in_range",
    "utility|algorithm|string_view": "swap",
    "type_traits": "is_same is_same_v enable_if enable_if_t decay decay_t remove_cv_t remove_const_t "
                   "remove_reference_t remove_cvref_t remove_pointer_t remove_extent_t add_const_t "
                   "add_pointer_t add_lvalue_reference_t conditional conditional_t is_integral "
                   "is_integral_v is_floating_point is_floating_point_v is_arithmetic_v is_signed_v "
                   "is_unsigned_v is_enum_v is_void_v is_pointer_v is_reference_v is_const_v "
                   "is_trivially_copyable_v is_trivially_destructible_v is_standard_layout_v "
                   "is_base_of_v is_convertible_v is_constructible_v is_default_constructible_v "
                   "is_invocable_v is_invocable_r_v is_nothrow_move_constructible_v is_class_v "
                   "is_function_v is_array_v is_empty_v underlying_type underlying_type_t "
                   "invoke_result invoke_result_t integral_constant true_type false_type "
                   "bool_constant void_t common_type common_type_t type_identity type_identity_t "
                   "make_signed_t make_unsigned_t is_constant_evaluated is_lvalue_reference_v "
                   "is_rvalue_reference_v is_move_constructible_v is_copy_constructible_v",
    "cstring": "memcpy memmove memset memcmp strlen strcmp strncmp strchr strrchr strstr strerror "
               "strncpy strcpy",
    "cstdio": "printf fprintf snprintf sprintf vsnprintf fopen fclose fread fwrite fflush fputs fputc "
              "puts fgets perror FILE fseek ftell rename tmpfile sscanf",
    "string": "string basic_string to_string stoi stol stoll stoul stoull stof stod getline "
              "char_traits wstring",
    "string_view": "string_view",
    "vector": "vector",
    "array": "array",
    "map": "map multimap",
    "unordered_map": "unordered_map",
    "set": "set multiset",
    "unordered_set": "unordered_set",
    "deque": "deque",
    "list": "list",
    "queue": "queue priority_queue",
    "stack": "stack",
    "optional": "optional nullopt nullopt_t make_optional bad_optional_access",
    "variant": "variant visit holds_alternative get_if monostate",
    "tuple": "tuple make_tuple tie apply forward_as_tuple tuple_cat",
    "memory": "unique_ptr shared_ptr weak_ptr make_unique make_shared enable_shared_from_this "
              "addressof static_pointer_cast dynamic_pointer_cast const_pointer_cast default_delete "
              "construct_at destroy_at to_address allocator align uninitialized_copy "
              "uninitialized_fill",
    "functional": "function reference_wrapper ref cref invoke bind bind_front not_fn mem_fn "
                  "plus minus multiplies divides less greater less_equal greater_equal equal_to "
                  "identity",
    "functional|string|string_view|memory|vector|optional|variant|typeindex|system_error|thread":
        "hash",
    "numeric": "accumulate iota inner_product partial_sum reduce transform_reduce exclusive_scan "
               "inclusive_scan gcd lcm midpoint adjacent_difference",
    "limits": "numeric_limits",
    "stdexcept": "runtime_error logic_error invalid_argument out_of_range range_error overflow_error "
                 "underflow_error length_error domain_error",
    "exception|stdexcept": "exception",
    "exception": "exception_ptr current_exception rethrow_exception make_exception_ptr terminate "
                 "set_terminate uncaught_exceptions nested_exception throw_with_nested rethrow_if_nested",
    "sstream": "ostringstream istringstream stringstream",
    "fstream": "ifstream ofstream fstream",
    "iostream": "cout cerr clog cin",
    "ostream|iosfwd|iostream|sstream|fstream": "ostream",
    "istream|iosfwd|iostream|sstream|fstream": "istream",
    "ostream|iostream|sstream|fstream": "endl flush",
    "iomanip": "setw setprecision setfill quoted put_time",
    "chrono": "chrono chrono_literals",
    "ratio": "ratio milli micro nano kilo mega ratio_multiply ratio_divide",
    "thread": "thread this_thread jthread",
    "mutex": "mutex lock_guard unique_lock scoped_lock once_flag call_once recursive_mutex timed_mutex",
    "shared_mutex": "shared_mutex shared_lock",
    "condition_variable": "condition_variable condition_variable_any",
    "atomic": "atomic atomic_flag memory_order memory_order_relaxed memory_order_acquire "
              "memory_order_release memory_order_acq_rel memory_order_seq_cst atomic_thread_fence",
    "future": "future promise async packaged_task shared_future",
    "span": "span dynamic_extent",
    "bit": "bit_cast popcount countl_zero countr_zero has_single_bit bit_ceil bit_floor bit_width "
           "endian rotl rotr",
    "compare": "strong_ordering weak_ordering partial_ordering three_way_comparable",
    "concepts": "integral floating_point same_as convertible_to derived_from signed_integral "
                "unsigned_integral invocable",
    "filesystem": "filesystem",
    "random": "mt19937 mt19937_64 random_device uniform_int_distribution uniform_real_distribution "
              "normal_distribution bernoulli_distribution discrete_distribution",
    "iterator": "distance advance next prev back_inserter inserter iterator_traits reverse_iterator "
                "make_move_iterator ostream_iterator istreambuf_iterator",
    "charconv": "from_chars to_chars chars_format",
    "ctime": "time_t strftime localtime gmtime mktime",
    "numbers": "numbers",
    "system_error": "error_code system_error errc generic_category system_category",
    "typeinfo": "type_info bad_cast",
    "typeindex": "type_index",
    "new": "bad_alloc nothrow align_val_t launder",
    "cctype": "isdigit isspace isalpha isalnum isprint isxdigit isupper islower tolower toupper",
    "any": "any any_cast",
    "regex": "regex regex_match regex_search",
    "initializer_list|vector|string|array|map|set|unordered_map|unordered_set|deque|list|utility":
        "initializer_list",
    "stop_token": "stop_token stop_source",
    "latch": "latch",
    "barrier": "barrier",
}
BARE = {
    "cstdint|cinttypes": "int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t "
                         "uintptr_t INT8_MIN INT8_MAX INT16_MIN INT16_MAX INT32_MIN INT32_MAX "
                         "INT64_MIN INT64_MAX UINT8_MAX UINT16_MAX UINT32_MAX UINT64_MAX SIZE_MAX "
                         "INTPTR_MAX UINTPTR_MAX",
    "cinttypes": "PRId64 PRIu64 PRIx64 PRId32 PRIu32",
    "cstddef|cstdlib|cstring|cstdio|ctime|cwchar": "size_t",
    "cstddef": "ptrdiff_t offsetof",
    "cstdlib": "getenv setenv unsetenv malloc posix_memalign EXIT_SUCCESS EXIT_FAILURE",  # not abort: a method name too
    "cstring": "memcpy memset memmove memcmp strlen strcmp strncmp strerror",
    "cstdio": "printf fprintf snprintf fopen fclose fflush FILE stderr stdout stdin fileno popen pclose EOF",
    "cmath": "INFINITY NAN HUGE_VAL HUGE_VALF M_PI",
    "climits": "INT_MAX INT_MIN UINT_MAX LONG_MAX LONG_MIN LLONG_MAX LLONG_MIN ULLONG_MAX CHAR_BIT "
               "SCHAR_MAX PATH_MAX",
    "cfloat": "FLT_MAX FLT_MIN FLT_EPSILON DBL_MAX DBL_MIN DBL_EPSILON",
    "cerrno": "errno EINTR EAGAIN ENOENT EEXIST",
    "cassert": "assert",
    "csignal": "SIGINT SIGTERM SIGKILL SIGABRT SIGSEGV SIGUSR1 SIGALRM sig_atomic_t",
}
# The C and POSIX spellings that satisfy the same uses as the <cxxx> header.
C_ALIASES = {
    "cstdint": ["stdint.h", "inttypes.h", "cinttypes"], "cinttypes": ["inttypes.h"],
    "cstddef": ["stddef.h"], "cstdlib": ["stdlib.h"], "cstring": ["string.h"],
    "cstdio": ["stdio.h"], "cmath": ["math.h"], "ctime": ["time.h"], "climits": ["limits.h"],
    "cfloat": ["float.h"], "cerrno": ["errno.h"], "cassert": ["assert.h"],
    "csignal": ["signal.h"], "cctype": ["ctype.h"], "cwchar": ["wchar.h"],
}
# nvcc includes cuda_runtime.h into every CUDA file, which declares device math, printf, malloc
# and memcpy: there only std:: uses of those headers' names count.
CUDA_SUFFIXES = (".cu", ".cuh")
CUDA_IMPLICIT = {"cmath", "cstdio", "cstdlib", "cstring"}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def strip_comments_and_literals(text):
    """Blanks comments, string and character literals (keeping line breaks, so lines still count)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|R"([^(\s]*)\(.*?\)\1"|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                         re.S)
    text = re.sub(r"(?<=[0-9a-fA-F])'(?=[0-9a-fA-F])", "_", text)  # digit separators: 1'000'000
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def build_rules():
    """name -> header alternatives, for std::name and for bare names; a name may be in both."""
    rules = {True: {}, False: {}}
    for table, qualified in ((STD, True), (BARE, False)):
        for headers, names in table.items():
            alternatives = set()
            for header in headers.split("|"):
                alternatives.add(header)
                alternatives.update(C_ALIASES.get(header, []))
            for name in names.split():
                rules[qualified][name] = frozenset(alternatives)
    return rules


RULES = build_rules()
# One pass per kind: std::name, and a bare name that is not a member (.x, ->x) nor another
# namespace's (ns::x).
QUALIFIED_USE = re.compile(r"\bstd\s*::\s*(" + "|".join(map(re.escape, RULES[True])) + r")\b")
BARE_USE = re.compile(r"(?<![\w.>:])(" + "|".join(map(re.escape, RULES[False])) + r")\b")


def direct_includes(path):
    return set(INCLUDE.findall(path.read_text(errors="replace")))


def own_header_includes(path):
    """A source file may rely on the standard includes of its own header (foo.cpp -> foo.h)."""
    if path.suffix not in (".cpp", ".cu"):
        return set()
    for suffix in (".h", ".cuh"):
        header = path.with_suffix(suffix)
        if header.exists():
            return direct_includes(header)
    return set()


def lint(path):
    text = path.read_text(errors="replace")
    code = strip_comments_and_literals(text)
    # #include lines themselves are not uses.
    code = re.sub(r"^[ \t]*#[ \t]*include[^\n]*", "", code, flags=re.M)
    included = direct_includes(path) | own_header_includes(path)
    is_cuda = path.suffix in CUDA_SUFFIXES
    problems = {}
    uses = [(match, RULES[True][match.group(1)]) for match in QUALIFIED_USE.finditer(code)]
    uses += [(match, RULES[False][match.group(1)]) for match in BARE_USE.finditer(code)
             if not (is_cuda and RULES[False][match.group(1)] & CUDA_IMPLICIT)]
    for match, alternatives in uses:
        if alternatives & included:
            continue
        wanted = " or ".join(f"<{h}>" for h in sorted(alternatives) if not h.endswith(".h"))
        if wanted not in problems or match.start() < problems[wanted][0]:
            problems[wanted] = (match.start(), match.group(1))
    problems = {wanted: (code.count("\n", 0, start) + 1, name) for wanted, (start, name) in problems.items()}
    return [f"{path}:{line}: uses {name} without including {wanted}"
            for wanted, (line, name) in sorted(problems.items(), key=lambda item: item[1])]


def main(paths):
    reports = []
    for name in paths:
        reports += lint(Path(name))
    for report in reports:
        print(report)
    return 1 if reports else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
