"""File matching and reading for ``include`` lines of keepalived.conf.

Patterns are shell globs with csh-style ``{a,b}`` braces (keepalived uses ``glob(3)``
with ``GLOB_BRACE``); each brace alternative is matched in turn, its matches sorted.
"""

from __future__ import annotations

import enum
import glob
import itertools
import os
import stat
from dataclasses import dataclass, field

#: Largest configuration file read (bytes).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Most alternatives a brace pattern may expand to.
MAX_BRACE_ALTERNATIVES = 1024


class IncludeCheck(enum.IntFlag):
    """Which include problems are errors (keepalived's ``include_check`` bits)."""

    NONE = 0
    READ = 1
    MATCH = 2
    WILDCARD = 4
    BRACE = 8
    ALL = 15


#: Checks added by each include variant (``include``, ``includer``, ...).
VARIANT_CHECKS = {
    "": IncludeCheck.NONE,
    "r": IncludeCheck.READ,
    "m": IncludeCheck.READ | IncludeCheck.MATCH,
    "w": IncludeCheck.READ | IncludeCheck.MATCH | IncludeCheck.WILDCARD,
    "b": IncludeCheck.READ | IncludeCheck.BRACE,
    "a": IncludeCheck.ALL,
}


@dataclass(slots=True)
class GlobResult:
    """Files matched by an include pattern and what was missing."""

    paths: list[str] = field(default_factory=list)
    missing: bool = False  # a literal file, or the directory of a wildcard, does not exist
    wildcard: bool = False  # some alternative had wildcards
    braces: bool = False  # the pattern had brace alternatives


def expand_braces(pattern: str) -> list[str]:
    """Expand csh-style ``{a,b}`` alternatives (nested allowed; ``\\`` escapes)."""
    start = -1
    depth = 0
    commas: list[int] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
                commas = []
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                head, tail = pattern[:start], pattern[i + 1 :]
                bounds = [start, *commas, i]
                result: list[str] = []
                for a, b in itertools.pairwise(bounds):
                    for alt in expand_braces(head + pattern[a + 1 : b] + tail):
                        result.append(alt)
                        if len(result) > MAX_BRACE_ALTERNATIVES:
                            raise ValueError("too many brace alternatives")
                return result
        elif c == "," and depth == 1:
            commas.append(i)
        i += 1
    return [pattern]


def _unescape(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
        out.append(pattern[i])
        i += 1
    return "".join(out)


def match_include(pattern: str, base_dir: str) -> GlobResult:
    """Find the files an include pattern names, relative paths taken from ``base_dir``."""
    result = GlobResult()
    alternatives = expand_braces(pattern)
    result.braces = len(alternatives) > 1
    for alt in alternatives:
        full = os.path.normpath(os.path.join(base_dir, alt)) if alt else base_dir
        if glob.has_magic(alt):
            result.wildcard = True
            found = sorted(glob.glob(full))
            if not found:
                head = full
                while glob.has_magic(head):
                    head = os.path.dirname(head)
                if not os.path.isdir(head or "."):
                    result.missing = True
            result.paths.extend(found)
        else:
            literal = _unescape(full)
            if os.path.lexists(literal):
                result.paths.append(literal)
            else:
                result.missing = True
    return result


class FileProblem(Exception):
    """A matched file cannot be used; ``read_error`` is True for I/O failures."""

    def __init__(self, message: str, read_error: bool) -> None:
        super().__init__(message)
        self.read_error = read_error


def read_config_file(path: str, allow_executable: bool = False) -> str:
    """Read a configuration file as text (UTF-8, undecodable bytes replaced)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileProblem(f"cannot read configuration file '{path}': {exc.strerror}", True) from exc
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem(f"configuration file '{path}' is a directory - skipping", False)
    if not stat.S_ISREG(st.st_mode) or (
        not allow_executable and st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    ):
        raise FileProblem(
            f"configuration file '{path}' is not a regular non-executable file - skipping", False
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FileProblem(f"cannot read configuration file '{path}': {exc.strerror}", True) from exc
    if len(data) > MAX_FILE_BYTES:
        raise FileProblem(
            f"configuration file '{path}' is larger than {MAX_FILE_BYTES} bytes", True
        )
    return data.decode("utf-8", errors="replace")
