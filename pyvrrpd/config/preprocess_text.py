"""Lexical helpers of the keepalived.conf preprocessor: comments, braces, numbers.

These work on one line of text at a time and know nothing about files or definitions.
"""

from __future__ import annotations

import re

BLANK = " \t"
NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
NAME_CHARS = NAME_START | frozenset("0123456789")


def is_name(text: str) -> bool:
    """True if ``text`` is a valid definition name (``[A-Za-z_][A-Za-z0-9_]*``)."""
    return bool(text) and text[0] in NAME_START and all(c in NAME_CHARS for c in text)


_SPECIAL = re.compile(r'["\\#!]')


def decomment(line: str) -> tuple[str, bool]:
    """Strip comments and surrounding blanks from one line.

    ``#`` and ``!`` start a comment outside double quotes; ``\\#`` and ``\\!`` outside
    quotes stand for the literal characters. A final unescaped backslash is kept (with
    the blanks before it removed) so that callers can see a continuation.
    Returns the text and whether a double quote was left open.
    """
    if _SPECIAL.search(line) is None:  # the common case: nothing to interpret
        return line.strip(BLANK), False
    text = line.lstrip(BLANK)
    out: list[str] = []
    quote = False
    cont = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            quote = not quote
        elif c == "\\":
            if i + 1 >= n:
                cont = True
                break
            nxt = text[i + 1]
            if not quote and nxt in "#!":
                out.append(nxt)
            else:
                out.append(c)
                out.append(nxt)
            i += 2
            continue
        elif c in "#!" and not quote:
            break
        out.append(c)
        i += 1
    result = "".join(out).rstrip(BLANK)
    if cont:
        result += "\\"
    return result, quote


def split_brace(text: str) -> tuple[str, str]:
    """Split a line at its first ``{`` or ``}`` outside double quotes, as keepalived does.

    Returns ``(head, residue)``: a line starting with a brace gives the brace alone as
    head; otherwise head is the text before the brace. ``residue`` ('' if none) is the
    remaining text, to be processed again as a line of its own.
    """
    pos = -1
    if text[:1] in ("{", "}"):
        pos = 0
    elif '"' not in text:  # no quotes: the first brace is where it is
        found = [p for p in (text.find("{"), text.find("}")) if p >= 0]
        pos = min(found) if found else -1
    else:
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                close = text.find('"', i + 1)
                if close < 0:
                    break
                i = close + 1
                continue
            if c in "{}":
                pos = i
                break
            i += 1
    if pos < 0:
        return text, ""
    if pos == 0:
        return text[0], text[1:].strip(BLANK)
    return text[:pos].rstrip(BLANK), text[pos:].rstrip(BLANK)


def strtol(text: str, pos: int) -> tuple[int, int]:
    """Parse an integer like C ``strtol(s, &end, 0)``: returns (value, end position).

    Leading blanks, a sign, ``0x`` hex and leading-``0`` octal are accepted; when no
    digits are found the value is 0 and the end position is ``pos`` (nothing consumed).
    """
    i = pos
    n = len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and text[i] in "+-":
        neg = text[i] == "-"
        i += 1
    base = 10
    digits = "0123456789"
    if text[i : i + 2].lower() == "0x" and i + 2 < n and text[i + 2] in "0123456789abcdefABCDEF":
        base = 16
        digits = "0123456789abcdefABCDEF"
        i += 2
    elif text[i : i + 1] == "0":
        base = 8
        digits = "01234567"
    start = i
    while i < n and text[i] in digits:
        i += 1
    if i == start:
        return 0, pos
    value = int(text[start:i], base)
    return (-value if neg else value), i


def apply_conditional(text: str, config_id: str | None) -> str | None:
    """Handle an ``@ID rest`` / ``@^ID rest`` line; other lines are returned unchanged.

    Returns the rest of the line when it applies to ``config_id``, else None.
    """
    if not text.startswith("@"):
        return text
    negate = text.startswith("@^")
    ofs = 2 if negate else 1
    ends = [p for p in (text.find(" ", ofs), text.find("\t", ofs)) if p >= 0]
    if not ends:
        return None
    end = min(ends)
    matches = config_id is not None and text[ofs:end] == config_id
    if matches == negate:
        return None
    return text[end:].lstrip(BLANK)


INCLUDE_VARIANTS = "rmwba"


def include_directive(text: str) -> tuple[str, str] | None:
    """Recognise ``include``/``include[rmwba]`` lines: returns (variant, pattern) or None.

    ``variant`` is '' for plain include. ``pattern`` may be '' when nothing follows.
    """
    if not text.startswith("include"):
        return None
    rest = text[7:]
    if rest == "":
        return "", ""
    if rest[0].isspace():
        return "", rest.strip()
    if rest[0] in INCLUDE_VARIANTS and (len(rest) == 1 or rest[1].isspace()):
        return rest[0], rest[1:].strip()
    return None
