"""Statements and blocks: the syntax tree shared by the keepalived and YAML front ends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .errors import ConfigError, SourceLoc, error
from .lexer import Token, tokenize


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
        return tuple(t.text for t in self.args)

    def words(self) -> tuple[str, ...]:
        """Keyword and arguments as plain text."""
        return (self.keyword, *self.arg_texts)


class _Builder:
    def __init__(self) -> None:
        # Stack of (opening node head, children so far).
        self.stack: list[tuple[list[Token], list[Node]]] = [([], [])]
        self.pending: list[Token] | None = None  # a statement waiting to see if a block follows

    def flush(self) -> None:
        if self.pending:
            head = self.pending
            self.stack[-1][1].append(Node(head[0].text, tuple(head[1:]), None, head[0].loc))
        self.pending = None

    def open(self, tok: Token) -> None:
        head = self.pending
        self.pending = None
        if not head:
            raise ConfigError(
                error(tok.loc, "'{' without a keyword before it", "put the block's keyword first")
            )
        self.stack.append((head, []))

    def close(self, tok: Token) -> None:
        self.flush()
        if len(self.stack) == 1:
            raise ConfigError(
                error(tok.loc, "'}' without a matching '{'", "remove it or open the block")
            )
        head, children = self.stack.pop()
        self.stack[-1][1].append(Node(head[0].text, tuple(head[1:]), tuple(children), head[0].loc))

    def line(self, toks: list[Token]) -> None:
        if len(toks) == 1 and toks[0].is_close:  # the common lone "}"
            self.close(toks[0])
            return
        if not any(t.text in "{}" and not t.quoted for t in toks):  # a plain statement
            self.flush()
            self.pending = toks
            return
        self._line(toks)

    def _line(self, toks: list[Token]) -> None:
        # A line that starts with '{' opens a block for the pending statement.
        if not toks[0].is_open:
            self.flush()
        current: list[Token] = []
        for tok in toks:
            if tok.is_open:
                if current:
                    self.flush()
                    self.pending = current
                    current = []
                self.open(tok)
            elif tok.is_close:
                if current:
                    self.flush()
                    self.pending = current
                    current = []
                self.close(tok)
            else:
                current.append(tok)
        if current:
            self.flush()
            self.pending = current


def parse_lines(lines: Iterable[tuple[str, SourceLoc]]) -> tuple[Node, ...]:
    """Build the statement tree of preprocessed lines."""
    b = _Builder()
    for toks in tokenize(lines):
        b.line(toks)
    b.flush()
    if len(b.stack) > 1:
        head = b.stack[-1][0]
        raise ConfigError(
            error(
                head[0].loc,
                f"block '{head[0].text}' is never closed",
                "add the missing '}'",
            )
        )
    return tuple(b.stack[0][1])
