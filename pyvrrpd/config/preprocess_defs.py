"""Parameter definitions of keepalived.conf (``$NAME=value``) and their expansion.

Expansion follows keepalived's ``replace_param``: the replacement text is rescanned in
place, so values may refer to other definitions (resolved at use time, not at definition
time). Unlike keepalived, self-reference is detected and reported instead of looping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyvrrpd.config.errors import Diagnostic, SourceLoc, error, warning
from pyvrrpd.config.preprocess_text import BLANK, NAME_CHARS, NAME_START

#: Longest line (in characters) that reading or expansion may produce.
MAX_LINE_LENGTH = 64 * 1024
#: Most substitutions done on one line in one pass.
MAX_SUBSTITUTIONS = 10_000

Segment = tuple[str, SourceLoc]
StdFunction = Callable[[tuple[str, ...], SourceLoc], str]


class ExpansionError(Exception):
    """A line cannot be expanded; carries the diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass(eq=False)
class Definition:
    """One definition: its value lines (one unless multiline) and where it was written."""

    name: str
    segments: list[Segment] = field(default_factory=list)
    multiline: bool = False
    loc: SourceLoc | None = None
    fn: StdFunction | None = None
    min_params: int = 0
    max_params: int = 0
    numbers_only: bool = False

    @property
    def first(self) -> str:
        """The first value line (the whole value of a single-line definition)."""
        return self.segments[0][0] if self.segments else ""


@dataclass(frozen=True, slots=True)
class Expansion:
    """Result of expanding one line."""

    text: str
    changed: bool
    #: Remaining lines of multiline definitions expanded on this line, outermost first,
    #: each with the definition it belongs to.
    pending: tuple[tuple[Definition, tuple[Segment, ...]], ...]


Report = Callable[[Diagnostic], None]


@dataclass(frozen=True, slots=True)
class _Ref:
    defn: Definition
    end: int
    params: tuple[str, ...]


class Definitions:
    """The table of definitions, keyed by name; later definitions replace earlier ones."""

    def __init__(self) -> None:
        self.table: dict[str, Definition] = {}

    def add_std(
        self,
        name: str,
        fn: StdFunction,
        min_params: int = 0,
        max_params: int = 0,
        numbers_only: bool = False,
    ) -> None:
        """Install a predefined definition whose value is computed at each use."""
        self.table[name] = Definition(
            name, fn=fn, min_params=min_params, max_params=max_params, numbers_only=numbers_only
        )

    def set(self, name: str, value: str, loc: SourceLoc) -> Definition:
        """Define (or redefine) a single-line definition written at ``loc``."""
        defn = Definition(name, [(value, loc)], loc=loc)
        self.table[name] = defn
        return defn

    def expand(
        self, text: str, loc: SourceLoc, report: Report, active: Sequence[Definition] = ()
    ) -> Expansion:
        """Replace every known ``$NAME`` / ``${NAME}`` / ``${NAME params}`` in ``text``.

        ``active`` are the multiline definitions whose lines are being expanded (the
        line comes from inside them). Raises ExpansionError on self-reference or when the
        line grows too long.
        """
        changed = False
        pending: list[tuple[Definition, tuple[Segment, ...]]] = []
        # Definitions whose replacement text is still being scanned, with the distance of
        # the end of that text from the end of the line (invariant under edits before it).
        regions: list[tuple[Definition, int]] = []
        subs = 0
        pos = text.find("$")
        while 0 <= pos < len(text) - 1:
            ref = self._match(text, pos, loc, report)
            if ref is None:
                pos = text.find("$", pos + 1)
                continue
            defn = ref.defn
            n = len(text)
            regions = [r for r in regions if n - r[1] > pos]
            if any(d is defn for d in active) or any(
                d is defn and n - dist >= ref.end for d, dist in regions
            ):
                where = defn.loc if defn.loc is not None else loc
                raise ExpansionError(
                    error(
                        where,
                        f"definition ${defn.name} refers to itself (expanding line {loc})",
                        hint="a definition may not use its own name, directly or through others",
                        code="recursive-definition",
                    )
                )
            subs += 1
            if subs > MAX_SUBSTITUTIONS:
                raise ExpansionError(
                    error(
                        loc,
                        f"too many definition substitutions (more than {MAX_SUBSTITUTIONS})",
                        code="expansion-too-large",
                    )
                )
            value = defn.fn(ref.params, loc) if defn.fn is not None else defn.first
            if defn.multiline:
                pending.append((defn, tuple(defn.segments[1:])))
            text = text[:pos] + value + text[ref.end :]
            if len(text) > MAX_LINE_LENGTH:
                raise ExpansionError(
                    error(
                        loc,
                        f"line longer than {MAX_LINE_LENGTH} characters after expanding"
                        f" ${defn.name}",
                        code="expansion-too-large",
                    )
                )
            changed = True
            regions.append((defn, len(text) - (pos + len(value))))
            if value.lstrip(BLANK).startswith("~"):
                break
            pos = text.find("$", pos)
        return Expansion(text, changed, tuple(pending))

    def _match(self, text: str, pos: int, loc: SourceLoc, report: Report) -> _Ref | None:
        """Recognise a reference to a known definition at ``text[pos] == '$'``."""
        n = len(text)
        i = pos + 1
        braces = text[i] == "{"
        if braces:
            i += 1
        if i >= n or text[i] not in NAME_START:
            return None
        j = i + 1
        while j < n and text[j] in NAME_CHARS:
            j += 1
        name = text[i:j]
        params: tuple[str, ...] = ()
        if braces:
            k = j
            while k < n and (text[k] in BLANK or text[k] in NAME_CHARS):
                k += 1
            if k >= n or text[k] != "}":
                return None
            inner = text[j:k]
            if inner and inner[-1] in BLANK:
                return None
            params = tuple(inner.split())
            end = k + 1
        else:
            end = j
            if j < n and text[j] not in " \t,)":
                defn = self.table.get(name)
                if defn is not None:
                    report(
                        warning(
                            loc,
                            f"${name} followed by {text[j]!r} is not replaced",
                            hint=f"write ${{{name}}} to use the definition here",
                            code="definition-not-replaced",
                        )
                    )
                return None
        defn = self.table.get(name)
        if defn is None:
            return None
        if defn.multiline and end != n:
            report(
                warning(
                    loc,
                    f"multiline definition ${name} is only replaced at the end of a line",
                    code="definition-not-replaced",
                )
            )
            return None
        if params:
            if defn.max_params == 0:
                return None
            if defn.numbers_only and not all(p.isascii() and p.isdigit() for p in params):
                report(
                    error(
                        loc,
                        f"definition {name} requires numeric parameters only",
                        code="definition-parameters",
                    )
                )
                return None
        if not defn.min_params <= len(params) <= defn.max_params:
            report(
                error(
                    loc,
                    f"definition {name} requires between {defn.min_params} and"
                    f" {defn.max_params} parameters, {len(params)} specified",
                    code="definition-parameters",
                )
            )
            return None
        return _Ref(defn, end, params)


def parse_definition(text: str) -> tuple[str, str, bool] | None:
    """Recognise ``$NAME=value``: returns (name, first value line, continues) or None.

    ``continues`` is True when the value ends with a backslash (a multiline definition);
    the returned value then has the backslash and the blanks before it removed.
    """
    if len(text) < 3 or text[0] != "$" or text[1] not in NAME_START:
        return None
    eq = text.find("=", 2)
    if eq < 0 or not all(c in NAME_CHARS for c in text[2:eq]):
        return None
    value = text[eq + 1 :].lstrip(BLANK)
    if value.endswith("\\"):
        return text[1:eq], value[:-1].rstrip(BLANK), True
    return text[1:eq], value, False
