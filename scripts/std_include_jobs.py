#!/usr/bin/env python3
"""Plans scripts/check-std-includes' clang runs: one clang++ -stdlib=libc++ -fsyntax-only per file.

A source file in the build's compile_commands.json keeps its own include paths and defines. A
header is compiled alone, as its own translation unit, with the flags of the source beside it
(foo.cpp for foo.h, else a source in its folder, else in a folder above it within the same top
folder): that is how a header that compiles only after what its includer included shows up.
Root-level headers (dtrain.h) take an example program's flags: the public API's users. A header
whose own source (foo.cpp) includes it before anything else gets no job of its own: that source's
job already compiles it alone, first, with the same flags.

Usage: std_include_jobs.py COMPILE_COMMANDS OUT_DIR FILE...
Writes OUT_DIR/N.args (clang++'s arguments, NUL-separated) and prints one line per job, "N FILE".
Files this build does not compile (a backend it was configured without: CUDA, MPI) are named on
stderr with the reason; the lint still reads them.
"""
import json
import re
import shlex
import sys
from pathlib import Path

CLANG_FLAGS = ["-stdlib=libc++", "-fsyntax-only", "-w", "-ferror-limit=5"]
CUDA_SUFFIXES = (".cu", ".cuh")
# Flags that decide what a file's code means; the rest (optimisation, warnings, output) do not.
KEEP_WITH_VALUE = ("-I", "-isystem", "-iquote", "-include", "-D", "-U")
KEEP_PREFIXES = ("-I", "-D", "-U", "-std=", "-march=", "-fopenmp")


def code_flags(entry):
    words = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    flags, i = [], 1  # words[0] is the compiler
    while i < len(words):
        word = words[i]
        if word in KEEP_WITH_VALUE and i + 1 < len(words):
            flags += [word, words[i + 1]]
            i += 2
            continue
        if word.startswith(KEEP_PREFIXES):
            flags.append(word)
        i += 1
    return flags


def module_flags(out_dir, flags):
    """libc++'s headers as clang modules, built once per run and shared by all jobs (a TU then costs
    a fraction of a second instead of seconds of parsing), and each header sees only what the
    standard headers it includes export. The project's own macros do not change libc++, so they
    must not make clang build another copy of it."""
    macros = [flags[i + 1] if flag == "-D" else flag[2:] for i, flag in enumerate(flags) if flag.startswith("-D")]
    ignored = [f"-fmodules-ignore-macro={macro.split('=')[0]}" for macro in macros
               if macro.split("=")[0] != "NDEBUG"]
    return ["-fmodules", "-fcxx-modules", f"-fmodules-cache-path={Path(out_dir).resolve()}/modules"] + ignored


FIRST_DIRECTIVE = re.compile(r'^[ \t]*#[ \t]*(\w+)[ \t]*(.*)$', re.M)


def opens_with(source, header):
    """Whether the source's first preprocessor directive is #include "header"."""
    directive = FIRST_DIRECTIVE.search(Path(source).read_text(errors="replace"))
    return bool(directive) and directive.group(1) == "include" and directive.group(2).strip() == f'"{header}"'


def main(commands_path, out_dir, files):
    root = Path.cwd().resolve()
    by_file = {}
    for entry in json.loads(Path(commands_path).read_text()):
        path = (Path(entry["directory"]) / entry["file"]).resolve()
        if path.suffix in CUDA_SUFFIXES:
            continue  # nvcc's command: not one clang can take
        by_file.setdefault(path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path), entry)

    def neighbour(relative):
        """The compile command of the source nearest to a header, within its top folder."""
        path = Path(relative)
        same_stem = path.with_suffix(".cpp").as_posix()
        if same_stem in by_file:
            return by_file[same_stem]
        if len(path.parts) == 1:  # dtrain.h
            candidates = sorted(f for f in by_file if f.startswith("examples/"))
            return by_file[candidates[0]] if candidates else None
        folder = path.parent
        while folder.parts:
            candidates = sorted(f for f in by_file if Path(f).parent == folder)
            if candidates:
                return by_file[candidates[0]]
            if len(folder.parts) == 1:
                break
            folder = folder.parent
        return None

    for number, relative in enumerate(files):
        if relative.endswith(CUDA_SUFFIXES):
            continue  # the caller lists these: clang 14 cannot compile CUDA 13
        if relative.endswith(".cpp"):
            entry = by_file.get(relative)
            language = []
            if entry is None:
                print(f"check-std-includes: {relative} is linted but not compiled: this build does not "
                      f"compile it (not in {commands_path})", file=sys.stderr)
                continue
        else:
            own_source = str(Path(relative).with_suffix(".cpp"))
            if own_source in files and own_source in by_file and opens_with(own_source, relative):
                continue
            entry = neighbour(relative)
            language = ["-x", "c++"]
            if entry is None:
                print(f"check-std-includes: {relative} is linted but not compiled: this build compiles no "
                      f"source near it to take include paths from (not in {commands_path})", file=sys.stderr)
                continue
        flags = code_flags(entry)
        arguments = CLANG_FLAGS + module_flags(out_dir, flags) + flags + language + [relative]
        (Path(out_dir) / f"{number}.args").write_bytes(b"\0".join(a.encode() for a in arguments) + b"\0")
        print(number, relative)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: std_include_jobs.py COMPILE_COMMANDS OUT_DIR FILE...")
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
