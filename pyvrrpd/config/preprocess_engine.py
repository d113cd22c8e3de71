"""The line-reading state machine behind :mod:`pyvrrpd.config.preprocess`.

Lines come from a stack of sources: files, the remaining lines of a multiline definition
being expanded, ``~SEQ``/``~LST`` repetitions and the rest of a line split at a brace.
The top source is read first, so expansions nest like keepalived's ``read_line``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from dataclasses import dataclass, field

from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc, error, warning
from pyvrrpd.config.preprocess_defs import (
    MAX_LINE_LENGTH,
    Definition,
    Definitions,
    ExpansionError,
    Segment,
    parse_definition,
)
from pyvrrpd.config.preprocess_include import (
    VARIANT_CHECKS,
    FileProblem,
    IncludeCheck,
    match_include,
    read_config_file,
)
from pyvrrpd.config.preprocess_seq import SeqError, SeqSpec, is_seq_line, parse_seq_line
from pyvrrpd.config.preprocess_text import (
    BLANK,
    apply_conditional,
    decomment,
    include_directive,
    split_brace,
)

#: Most lines the preprocessor may produce.
MAX_OUTPUT_LINES = 1_000_000
#: Most lines (read or generated) the preprocessor may handle in total.
MAX_WORK = 4_000_000
#: Stop after this many errors.
MAX_ERRORS = 100
#: Deepest nesting of includes.
MAX_INCLUDE_DEPTH = 64
#: Deepest nesting of sources (includes, multiline definitions, repetitions).
MAX_NESTING = 256
#: Most times one line is reprocessed after its definitions were replaced.
MAX_PASSES = 32
#: Largest bound accepted by ${_RANDOM} (keepalived reads them as unsigned long).
RANDOM_LIMIT = 2**64 - 1

Item = tuple[str, SourceLoc, bool]  # text, location, read from a file (not yet decommented)


# A raw line holding none of these needs no preprocessing beyond blanks and braces.
_NOT_PLAIN = re.compile(r'[$@~"\\#!\0]')
_BRACES = re.compile(r"([{}])")


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Inputs of a preprocessing run."""

    config_id: str | None
    instance: str | None
    env: dict[str, str]
    rng: random.Random


@dataclass(eq=False, slots=True)
class _FileSource:
    name: str
    directory: str
    real: str | None
    lines: list[str]
    saved_check: IncludeCheck
    index: int = 0
    started: bool = False

    def next(self) -> Item | None:
        if self.index >= len(self.lines):
            return None
        self.index += 1
        return self.lines[self.index - 1], SourceLoc(self.name, self.index), True


@dataclass(eq=False, slots=True)
class _ListSource:
    items: tuple[Segment, ...]
    defn: Definition | None  # the multiline definition these lines come from
    index: int = 0

    def next(self) -> Item | None:
        if self.index >= len(self.items):
            return None
        text, loc = self.items[self.index]
        self.index += 1
        return text, loc, False


@dataclass(eq=False, slots=True)
class _SeqSource:
    spec: SeqSpec
    loc: SourceLoc
    defs: Definitions = field(repr=False)

    def next(self) -> Item | None:
        row = next(self.spec.rows, None)
        if row is None:
            return None
        for name, value in zip(self.spec.names, row, strict=True):
            self.defs.set(name, value, self.loc)
        return self.spec.text, self.loc, False


_Source = _FileSource | _ListSource | _SeqSource


class _Abort(Exception):
    """Stop processing: a limit was hit (the diagnostic is already recorded)."""


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class Engine:
    """One preprocessing run: feed it a file or text, then read ``output``/``diagnostics``."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.defs = Definitions()
        self.output: list[tuple[str, SourceLoc]] = []
        self.diagnostics: list[Diagnostic] = []
        self.files: list[str] = []
        self.stack: list[_Source] = []
        self.pending: Definition | None = None
        self.include_check = IncludeCheck.NONE
        self.root_dir = "."
        self.work = 0
        self.errors = 0
        self._install_std()

    # -- predefined definitions -------------------------------------------------------

    def _install_std(self) -> None:
        opts = self.options
        self.defs.add_std("_PWD", lambda params, loc: os.path.abspath(self._current_dir()))
        self.defs.add_std("_INSTANCE", lambda params, loc: opts.instance or "")
        self.defs.add_std("_RANDOM", self._random, 0, 2, numbers_only=True)
        self.defs.add_std("_ENV", lambda params, loc: opts.env.get(params[0], ""), 1, 1)
        self.defs.add_std("_HASH", lambda params, loc: "#")
        self.defs.add_std("_BANG", lambda params, loc: "!")

    def _random(self, params: tuple[str, ...], loc: SourceLoc) -> str:
        low = min(int(params[0]), RANDOM_LIMIT) if params else 0
        high = min(int(params[1]), RANDOM_LIMIT) if len(params) > 1 else 32767
        if low > high:
            self.report(
                error(
                    loc,
                    f"${{_RANDOM}}: min {low} exceeds max {high}, using {low}",
                    code="definition-parameters",
                )
            )
            high = low
        return str(self.options.rng.randint(low, high))

    def _current_file(self) -> _FileSource | None:
        for src in reversed(self.stack):
            if isinstance(src, _FileSource) and src.started:
                return src
        return None

    def _current_dir(self) -> str:
        current = self._current_file()
        return current.directory if current is not None else self.root_dir

    # -- entry points -----------------------------------------------------------------

    def run_file(self, path: str) -> None:
        """Preprocess the file at ``path``."""
        try:
            text = read_config_file(path, allow_executable=True)
        except FileProblem as problem:
            self.report(error(None, str(problem), code="unreadable-file"))
            return
        self.root_dir = os.path.dirname(path) or "."
        self._push_file(path, self.root_dir, os.path.realpath(path), text)
        self._run()

    def run_text(self, text: str, filename: str, base_dir: str) -> None:
        """Preprocess ``text`` as the content of ``filename`` in directory ``base_dir``."""
        self.root_dir = base_dir
        self._push_file(filename, base_dir, None, text)
        self._run()

    def report(self, diag: Diagnostic) -> None:
        """Record a diagnostic; too many errors abort the run."""
        self.diagnostics.append(diag)
        if diag.severity is Severity.ERROR:
            self.errors += 1
            if self.errors >= MAX_ERRORS:
                self.diagnostics.append(
                    error(
                        diag.loc,
                        f"too many errors ({self.errors}), giving up",
                        code="too-many-errors",
                    )
                )
                raise _Abort

    def _fatal(self, diag: Diagnostic) -> None:
        self.diagnostics.append(diag)
        raise _Abort

    def _push_file(self, name: str, directory: str, real: str | None, text: str) -> None:
        self.stack.append(
            _FileSource(name, directory, real, _split_lines(text), self.include_check)
        )

    def _push(self, source: _Source, loc: SourceLoc) -> None:
        if len(self.stack) >= MAX_NESTING:
            self.report(
                error(
                    loc,
                    f"expansions nested more than {MAX_NESTING} deep",
                    code="expansion-too-large",
                )
            )
            return
        self.stack.append(source)

    # -- the main loop ----------------------------------------------------------------

    def _run(self) -> None:
        with contextlib.suppress(_Abort):
            self._loop()
        self._end_definition()

    def _loop(self) -> None:
        while self.stack:
            src = self.stack[-1]
            if isinstance(src, _FileSource):
                if not src.started:
                    src.started = True
                    self.files.append(src.name)
                if self.pending is None:
                    self._copy_plain(src)
            item = src.next()
            if item is None:
                self.stack.pop()
                if isinstance(src, _FileSource):
                    self.include_check = src.saved_check
                continue
            self.work += 1
            if self.work > MAX_WORK:
                self._fatal(
                    error(
                        item[1],
                        f"configuration expands to more than {MAX_WORK} lines of work",
                        code="expansion-too-large",
                    )
                )
            text: str | None = item[0]
            loc = item[1]
            if item[2]:
                text = self._clean_raw(item[0], loc)
            if not text:
                continue
            if self.pending is not None:
                self._continue_definition(text, loc)
            else:
                self._process(text, loc)

    def _copy_plain(self, src: _FileSource) -> None:
        """Fast path: copy the plain lines ahead in ``src`` straight to the output.

        A plain line holds no meta-syntax, quotes, comments or escapes (and is no
        include): it only needs its blanks stripped and its braces split off, which is
        what the general path would do with it. Each line read counts as work, and the
        run stops where the general path would report too much work.
        """
        lines, name, out = src.lines, src.name, self.output
        start = i = src.index
        end = min(len(lines), start + max(0, MAX_WORK - self.work))
        try:
            while i < end:
                raw = lines[i]
                if _NOT_PLAIN.search(raw) is not None or len(raw) > MAX_LINE_LENGTH:
                    break
                text = raw.strip()
                if text.startswith("include"):
                    break
                i += 1
                if not text:
                    continue
                loc = SourceLoc(name, i)
                if len(text) == 1 or ("{" not in text and "}" not in text):
                    out.append((text, loc))  # a lone brace or a line without braces
                else:
                    out.extend((p, loc) for p in map(str.strip, _BRACES.split(text)) if p)
                if len(out) > MAX_OUTPUT_LINES:
                    self._output_full(loc)
        finally:
            self.work += i - start
            src.index = i

    def _output_full(self, loc: SourceLoc) -> None:
        self._fatal(
            error(
                loc,
                f"configuration expands to more than {MAX_OUTPUT_LINES} lines",
                code="expansion-too-large",
            )
        )

    def _clean_raw(self, text: str, loc: SourceLoc) -> str | None:
        text = text.rstrip("\r")
        if not text:
            # A truly empty line ends a multiline definition.
            self._end_definition()
            return None
        if "\0" in text:
            self.report(
                error(loc, "line contains a NUL character - ignoring line", code="nul-character")
            )
            return None
        if len(text) > MAX_LINE_LENGTH:
            self.report(
                error(
                    loc,
                    f"line longer than {MAX_LINE_LENGTH} characters - ignoring line",
                    code="line-too-long",
                )
            )
            return None
        return self._decomment(text, loc)

    def _decomment(self, text: str, loc: SourceLoc) -> str:
        result, open_quote = decomment(text)
        if open_quote:
            self.report(
                warning(loc, f"unterminated quote in '{result}'", code="unterminated-quote")
            )
        return result

    # -- definitions ------------------------------------------------------------------

    def _continue_definition(self, text: str, loc: SourceLoc) -> None:
        defn = self.pending
        assert defn is not None
        if text.endswith("\\"):
            segment = text[:-1].rstrip(BLANK)
            if segment:
                defn.segments.append((segment, loc))
        else:
            defn.segments.append((text, loc))
            self._end_definition()

    def _end_definition(self) -> None:
        if self.pending is not None and not self.pending.segments:
            self.pending.multiline = False
        self.pending = None

    def _define(self, name: str, value: str, continues: bool, loc: SourceLoc) -> None:
        if continues:
            defn = Definition(name, [(value, loc)] if value else [], multiline=True, loc=loc)
            self.pending = defn
        else:
            defn = Definition(name, [(value, loc)], loc=loc)
        self.defs.table[name] = defn

    # -- one logical line -------------------------------------------------------------

    def _active(self) -> list[Definition]:
        return [s.defn for s in self.stack if isinstance(s, _ListSource) and s.defn is not None]

    def _process(self, text: str, loc: SourceLoc) -> None:
        """Apply conditionals, definitions, repetition and expansion to one line."""
        for _ in range(MAX_PASSES):
            kept = apply_conditional(text, self.options.config_id)
            if not kept:
                return
            text = kept
            parsed = parse_definition(text) if text.startswith("$") else None
            if parsed is not None:
                self._define(*parsed, loc)
                return
            if is_seq_line(text):
                self._start_seq(text, loc)
                return
            if text.startswith("~") or "$" not in text:
                break
            try:
                expansion = self.defs.expand(text, loc, self.report, self._active())
            except ExpansionError as exc:
                self.report(exc.diagnostic)
                return
            if not expansion.changed:
                break
            for defn, segments in expansion.pending:
                if segments:
                    self._push(_ListSource(segments, defn), loc)
            text = self._decomment(expansion.text, loc)
            if not text or text[0] not in "@$~":
                break
        else:
            self.report(
                error(
                    loc,
                    f"line still changes after {MAX_PASSES} expansions",
                    code="expansion-too-large",
                )
            )
            return
        if text:
            self._emit(text, loc)

    def _start_seq(self, text: str, loc: SourceLoc) -> None:
        active = self._active()

        def expand_args(args: str) -> str:
            expansion = self.defs.expand(args, loc, self.report, active)
            if expansion.pending:
                raise SeqError("a parameter is a multiline definition")
            return expansion.text

        try:
            spec = parse_seq_line(text, expand_args)
        except SeqError as exc:
            self.report(error(loc, f"invalid {text[:4]} specification: {exc}", code="invalid-seq"))
            return
        except ExpansionError as exc:
            self.report(exc.diagnostic)
            return
        self._push(_SeqSource(spec, loc, self.defs), loc)

    def _emit(self, text: str, loc: SourceLoc) -> None:
        directive = include_directive(text)
        if directive is not None:
            self._include(directive[0], directive[1], loc)
            return
        words = text.split()
        if not words:
            return
        if words[0] == "include_check":
            self._set_include_check(words[1:])
        head, residue = split_brace(text)
        if residue in ("{", "}"):  # a lone brace needs no further processing
            head = head.strip()
            if head:
                self.output.append((head, loc))
            head, residue = residue, ""
        if residue:
            self._push(_ListSource(((residue, loc),), None), loc)
        head = head.strip()
        if head:
            self.output.append((head, loc))
            if len(self.output) > MAX_OUTPUT_LINES:
                self._fatal(
                    error(
                        loc,
                        f"configuration expands to more than {MAX_OUTPUT_LINES} lines",
                        code="expansion-too-large",
                    )
                )

    # -- includes ---------------------------------------------------------------------

    def _set_include_check(self, words: list[str]) -> None:
        names = {
            "read": IncludeCheck.READ,
            "match": IncludeCheck.MATCH,
            "wildcard_match": IncludeCheck.WILDCARD,
            "brace_match": IncludeCheck.BRACE,
        }
        if not words:
            self.include_check = IncludeCheck.ALL
            return
        for index, word in enumerate(words):
            sign = word[0] if word[0] in "+-" else ""
            flag = names.get(word[len(sign) :])
            if flag is None or (not sign and index > 0):
                continue  # the configuration parser reports bad include_check words
            if sign == "+":
                self.include_check |= flag
            elif sign == "-":
                self.include_check &= ~flag
            else:
                self.include_check = IncludeCheck.READ | flag

    def _include(self, variant: str, pattern: str, loc: SourceLoc) -> None:
        if len(pattern) >= 2 and pattern[0] == pattern[-1] == '"':
            pattern = pattern[1:-1]
        if not pattern:
            self.report(error(loc, f"include{variant} needs a file name", code="include-syntax"))
            return
        checks = self.include_check | VARIANT_CHECKS[variant]

        def problem(flag: IncludeCheck, message: str, code: str) -> None:
            make = error if checks & flag else warning
            self.report(make(loc, message, code=code))

        try:
            found = match_include(pattern, self._current_dir())
        except ValueError as exc:
            self.report(error(loc, f"include pattern '{pattern}': {exc}", code="include-syntax"))
            return
        if not found.paths:
            if found.missing:
                flag = IncludeCheck.BRACE if found.braces else IncludeCheck.MATCH
                problem(flag, f"config files missing '{pattern}'", "include-missing")
            else:
                problem(
                    IncludeCheck.WILDCARD,
                    f"no config files matched '{pattern}'",
                    "include-no-match",
                )
            return
        if found.missing:
            problem(
                IncludeCheck.BRACE, f"some config files missing: '{pattern}'", "include-missing"
            )
            if checks & IncludeCheck.BRACE:
                return
        chain = [s for s in self.stack if isinstance(s, _FileSource) and s.started]
        to_read: list[tuple[str, str, str]] = []
        for path in found.paths:
            real = os.path.realpath(path)
            looping = next((s for s in chain if s.real == real), None)
            if looping is not None:
                self.report(
                    error(
                        loc,
                        f"include loop: '{path}' is already being read"
                        f" ({' -> '.join(s.name for s in chain)} -> {path})",
                        hint="remove the include that leads back to a file being read",
                        code="include-loop",
                    )
                )
                continue
            if len(chain) >= MAX_INCLUDE_DEPTH:
                self.report(
                    error(
                        loc,
                        f"includes nested more than {MAX_INCLUDE_DEPTH} deep",
                        code="include-loop",
                    )
                )
                continue
            try:
                text = read_config_file(path)
            except FileProblem as exc:
                if exc.read_error:
                    self.report(error(loc, str(exc), code="unreadable-file"))
                else:
                    problem(IncludeCheck.READ, str(exc), "unreadable-file")
                continue
            to_read.append((path, real, text))
        for path, real, text in reversed(to_read):
            self._push_file(path, os.path.dirname(path) or ".", real, text)
