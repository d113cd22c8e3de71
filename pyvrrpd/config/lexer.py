"""Split preprocessed lines into tokens; braces are tokens of their own outside quotes."""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ConfigError, SourceLoc, error


class Token(NamedTuple):
    """One word of a configuration line, with where it was written.

    A named tuple rather than a frozen dataclass: configurations have tens of thousands
    of tokens and tuple construction is several times cheaper.
    """

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
    if '"' not in text and "{" not in text and "}" not in text:  # the common case
        return [Token(w, loc) for w in text.split()]
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
