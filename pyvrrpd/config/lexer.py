"""Split preprocessed lines into tokens; braces are tokens of their own outside quotes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import ConfigError, SourceLoc, error


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a configuration line, with where it was written."""

    text: str
    loc: SourceLoc
    quoted: bool = False

    @property
    def is_open(self) -> bool:
        return self.text == "{" and not self.quoted

    @property
    def is_close(self) -> bool:
        return self.text == "}" and not self.quoted


def tokenize_line(text: str, loc: SourceLoc) -> list[Token]:
    """Tokens of one line: words, quoted strings and braces (comments are already gone)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "{}":
            tokens.append(Token(ch, loc))
            i += 1
        elif ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ConfigError(
                    error(loc, "unterminated quoted string", "close the string with a double quote")
                )
            tokens.append(Token(text[i + 1 : end], loc, quoted=True))
            i = end + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{}"':
                j += 1
            tokens.append(Token(text[i:j], loc))
            i = j
    return tokens


def tokenize(lines: Iterable[tuple[str, SourceLoc]]) -> Iterator[list[Token]]:
    """Tokenize line by line, skipping lines that hold nothing."""
    for text, loc in lines:
        toks = tokenize_line(text, loc)
        if toks:
            yield toks
