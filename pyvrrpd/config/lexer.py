"""Split preprocessed lines into tokens; braces are tokens of their own outside quotes."""

from __future__ import annotations

import re
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


_TOKEN = re.compile(r'"([^"]*)"|([{}])|([^\s{}"]+)|(")')


def tokenize_line(text: str, loc: SourceLoc) -> list[Token]:
    """Tokens of one line: words, quoted strings and braces (comments are already gone)."""
    tokens: list[Token] = []
    for quoted, brace, word, stray in _TOKEN.findall(text):
        if word:
            tokens.append(Token(word, loc))
        elif brace:
            tokens.append(Token(brace, loc))
        elif stray:
            raise ConfigError(
                error(loc, "unterminated quoted string", "close the string with a double quote")
            )
        else:
            tokens.append(Token(quoted, loc, quoted=True))
    return tokens


def tokenize(lines: Iterable[tuple[str, SourceLoc]]) -> Iterator[list[Token]]:
    """Tokenize line by line, skipping lines that hold nothing."""
    for text, loc in lines:
        toks = tokenize_line(text, loc)
        if toks:
            yield toks
