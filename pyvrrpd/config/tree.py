"""Statements and blocks: the syntax tree shared by the keepalived and YAML front ends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .errors import ConfigError, SourceLoc, error
from .lexer import Token, tokenize_line


class Node(NamedTuple):
    """A statement: a keyword, its arguments and, for a block, its children.

    (A named tuple for cheap construction; see :class:`~pyvrrpd.config.lexer.Token`.)
    """

    keyword: str
    args: tuple[Token, ...]
    children: tuple[Node, ...] | None
    loc: SourceLoc

    @property
    def arg_texts(self) -> tuple[str, ...]:
        return tuple([t.text for t in self.args])

    def words(self) -> tuple[str, ...]:
        """Keyword and arguments as plain text."""
        return (self.keyword, *self.arg_texts)


_Head = tuple[str, tuple[Token, ...], SourceLoc]  # keyword, arguments, location


def _head(toks: list[Token]) -> _Head:
    return toks[0].text, tuple(toks[1:]), toks[0].loc


class _Builder:
    def __init__(self) -> None:
        # Stack of (opening statement's head, children so far).
        self.stack: list[tuple[_Head | None, list[Node]]] = [(None, [])]
        self.pending: _Head | None = None  # a statement waiting to see if a block follows

    def flush(self) -> None:
        if self.pending is not None:
            keyword, args, loc = self.pending
            self.stack[-1][1].append(Node(keyword, args, None, loc))
            self.pending = None

    def open(self, loc: SourceLoc) -> None:
        head = self.pending
        self.pending = None
        if head is None:
            raise ConfigError(
                error(loc, "'{' without a keyword before it", "put the block's keyword first")
            )
        self.stack.append((head, []))

    def close(self, loc: SourceLoc) -> None:
        self.flush()
        if len(self.stack) == 1:
            raise ConfigError(
                error(loc, "'}' without a matching '{'", "remove it or open the block")
            )
        head, children = self.stack.pop()
        assert head is not None
        keyword, args, head_loc = head
        self.stack[-1][1].append(Node(keyword, args, tuple(children), head_loc))

    def statement(self, words: list[str], loc: SourceLoc) -> None:
        """A line of plain words (no quotes, no braces): a statement of its own."""
        self.flush()
        self.pending = (words[0], tuple([Token(w, loc) for w in words[1:]]), loc)

    def line(self, toks: list[Token]) -> None:
        """A line of tokens in general: braces may open and close blocks anywhere in it."""
        # A line that starts with '{' opens a block for the pending statement.
        if not toks[0].is_open:
            self.flush()
        current: list[Token] = []
        for tok in toks:
            if tok.is_open or tok.is_close:
                if current:
                    self.flush()
                    self.pending = _head(current)
                    current = []
                if tok.is_open:
                    self.open(tok.loc)
                else:
                    self.close(tok.loc)
            else:
                current.append(tok)
        if current:
            self.flush()
            self.pending = _head(current)


def parse_lines(lines: Iterable[tuple[str, SourceLoc]]) -> tuple[Node, ...]:
    """Build the statement tree of preprocessed lines."""
    b = _Builder()
    for text, loc in lines:
        # The preprocessor puts every brace on a line of its own and most other lines
        # are plain words: those need neither the tokenizer nor Token objects for braces.
        if text == "}":
            b.close(loc)
        elif text == "{":
            b.open(loc)
        elif '"' in text or "{" in text or "}" in text:
            toks = tokenize_line(text, loc)
            if toks:
                b.line(toks)
        else:
            words = text.split()
            if words:
                b.statement(words, loc)
    b.flush()
    if len(b.stack) > 1:
        head = b.stack[-1][0]
        assert head is not None
        raise ConfigError(
            error(head[2], f"block '{head[0]}' is never closed", "add the missing '}'")
        )
    return tuple(b.stack[0][1])
