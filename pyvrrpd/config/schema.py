"""Declarative keyword tables and the engine that turns statement trees into the model.

Each configuration block (``global_defs``, ``vrrp_instance``, ``real_server``...) is a
:class:`BlockSpec`: a frozen dataclass of the model plus a table of :class:`Kw` entries.
One table drives three things, so they cannot drift apart: building the model from a
keepalived (or YAML) statement tree, rendering the model back to statements, and the
shape of the YAML front end.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .convert import Conv, Invalid
from .errors import Diagnostic, SourceLoc, error, warning
from .tree import Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Located:
    """Base of every model block: where it was written, and where each field was set."""

    loc: SourceLoc | None = field(default=None, compare=False, repr=False)
    locs: Mapping[str, SourceLoc] = field(default_factory=dict, compare=False, repr=False)


class Mode(enum.Enum):
    """How a keyword stores its value in the block being built."""

    SET = "set"  # field = value (the last occurrence wins, as in keepalived)
    APPEND = "append"  # field += (value,)
    FLAG = "flag"  # field = Kw.const; no arguments
    BLOCK = "block"  # a nested block built by Kw.spec (repeat: appended)
    LINES = "lines"  # a block whose every line is one value parsed by Kw.conv
    RECOGNISED = "recognised"  # known keepalived keyword pyvrrpd does not act on yet
    IGNORED = "ignored"  # accepted silently (e.g. obsolete, no effect in keepalived either)


@dataclass(frozen=True)
class Kw:
    """One keyword of a block."""

    name: str
    field: str | None = None
    conv: Conv[Any] | None = None
    mode: Mode = Mode.SET
    const: Any = True
    spec: BlockSpec | None = None
    repeat: bool = False
    aliases: tuple[str, ...] = ()
    note: str | None = None
    parse_node: Callable[[Node, Ctx], Any] | None = None
    render_value: Callable[[Any], list[RNode]] | None = None
    deprecated_by: str | None = None

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class BlockSpec:
    """A block: its model class, keyword table, head (arguments) and final check."""

    name: str
    cls: type[Any]
    keywords: Sequence[Kw]
    head: Conv[dict[str, Any]] | None = None
    head_fields: tuple[str, ...] = ()
    finish: Callable[[Any, Ctx], Any] | None = None
    doc: str = ""

    def table(self) -> dict[str, Kw]:
        """Keyword (and alias) to entry; built once per spec."""
        out = _TABLES.get(id(self))
        if out is None:
            out = {name: kw for kw in self.keywords for name in kw.names()}
            _TABLES[id(self)] = out
        return out


_TABLES: dict[int, dict[str, Kw]] = {}  # specs are module constants: id() is stable


@dataclass
class Ctx:
    """Collects diagnostics while a tree is built; knows every block for suggestions."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    all_specs: Mapping[str, BlockSpec] = field(default_factory=dict)

    def error(
        self, loc: SourceLoc | None, msg: str, hint: str | None = None, code: str | None = None
    ) -> None:
        self.diagnostics.append(error(loc, msg, hint, code))

    def warn(
        self, loc: SourceLoc | None, msg: str, hint: str | None = None, code: str | None = None
    ) -> None:
        self.diagnostics.append(warning(loc, msg, hint, code))


def iter_specs(root: BlockSpec) -> Iterator[BlockSpec]:
    """Every block spec reachable from ``root`` (each once)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        spec = stack.pop()
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        yield spec
        stack.extend(kw.spec for kw in spec.keywords if kw.spec is not None)


def _field_default(cls: type[Any], name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return dataclasses.MISSING
    raise KeyError(f"{cls.__name__} has no field {name}")


# ---------------------------------------------------------------------------------------
# Building


def build_block(
    spec: BlockSpec,
    node: Node | None,
    children: Sequence[Node],
    ctx: Ctx,
    *,
    head: Mapping[str, Any] | None = None,
) -> Any:
    """Build one model block from a statement (its head arguments) and its children.

    ``head``: the head arguments already parsed by ``spec.head`` (they are not parsed
    again).
    """
    acc: dict[str, Any] = {}
    locs: dict[str, SourceLoc] = {}
    if spec.head is not None and node is not None:
        try:
            acc.update(spec.head.parse(node.arg_texts) if head is None else head)
        except Invalid as exc:
            ctx.error(node.loc, f"{spec.name}: {exc.message}", exc.hint, "bad-value")
            return None
        for name in acc:
            locs[name] = node.loc
    elif node is not None and node.args:
        ctx.error(
            node.loc,
            f"'{spec.name}' takes no arguments before its block",
            f"remove '{' '.join(node.arg_texts)}'",
            "bad-value",
        )
    table = spec.table()
    for child in children:
        kw = table.get(child.keyword)
        if kw is None:
            _unknown(spec, child, ctx)
            continue
        _apply(spec, kw, child, acc, locs, ctx)
    for key, value in list(acc.items()):
        if isinstance(value, list):
            acc[key] = tuple(value)
    loc = node.loc if node is not None else None
    obj = spec.cls(**acc, loc=loc, locs=locs)
    if spec.finish is not None:
        obj = spec.finish(obj, ctx)
    return obj


def _apply(
    spec: BlockSpec, kw: Kw, node: Node, acc: dict[str, Any], locs: dict[str, SourceLoc], ctx: Ctx
) -> None:
    if kw.deprecated_by:
        ctx.warn(
            node.loc, f"'{node.keyword}' is deprecated", f"use '{kw.deprecated_by}'", "deprecated"
        )
    if kw.mode is Mode.IGNORED:
        return
    if kw.mode is Mode.RECOGNISED:
        note = f" ({kw.note})" if kw.note else ""
        ctx.warn(
            node.loc,
            f"'{node.keyword}' is recognised, not supported yet{note}",
            "pyvrrpd accepts it and ignores it",
            "not-supported",
        )
        return
    if kw.mode not in (Mode.BLOCK, Mode.LINES) and node.children is not None:
        ctx.error(
            node.loc,
            f"'{node.keyword}' does not take a block",
            "remove the braces",
            "unexpected-block",
        )
        return
    try:
        if kw.parse_node is not None:
            value = kw.parse_node(node, ctx)
        elif kw.mode is Mode.FLAG:
            if node.args:
                raise Invalid("takes no value", f"remove '{' '.join(node.arg_texts)}'")
            value = kw.const
        elif kw.mode is Mode.BLOCK:
            assert kw.spec is not None
            if node.children is None:
                raise Invalid("needs a block", f"write '{node.keyword} ... {{ ... }}'")
            value = build_block(kw.spec, node, node.children, ctx)
            if value is None:
                return
        elif kw.mode is Mode.LINES:
            value = _parse_lines(kw, node, ctx)
        else:
            assert kw.conv is not None
            args = node.arg_texts
            if kw.conv.nargs == 1 and len(args) > 1:
                args = _extra_words(spec, kw, node, ctx)
            value = kw.conv.parse(args)
    except Invalid as exc:
        where = f"{spec.name} {node.keyword}" if spec.name else node.keyword
        ctx.error(node.loc, f"{where}: {exc.message}", exc.hint, "bad-value")
        return
    if kw.field is None:
        return
    locs.setdefault(kw.field, node.loc)
    if kw.repeat or kw.mode is Mode.APPEND:
        acc.setdefault(kw.field, []).append(value)
    elif kw.mode is Mode.LINES and kw.field in acc:
        acc[kw.field] = (*acc[kw.field], *value)  # repeated list blocks accumulate
    else:
        acc[kw.field] = value


def _extra_words(spec: BlockSpec, kw: Kw, node: Node, ctx: Ctx) -> tuple[str, ...]:
    """keepalived takes the first word of a one-value keyword and ignores the rest: so do
    we, with a warning (and a pointer when the rest is another keyword of the block)."""
    rest = node.arg_texts[1:]
    hint = "remove the extra words"
    if rest[0] in spec.table():
        hint = f"put '{' '.join(rest)}' on a line of its own: as written it is ignored"
    ctx.warn(
        node.loc,
        f"'{node.keyword}' takes one value; '{' '.join(rest)}' is ignored",
        hint,
        "extra-words",
    )
    return node.arg_texts[:1]


def _parse_lines(kw: Kw, node: Node, ctx: Ctx) -> tuple[Any, ...]:
    assert kw.conv is not None
    if node.children is None:
        if node.args:  # "keyword item" on one line is accepted for list blocks
            items: Sequence[Node] = [Node(node.args[0].text, node.args[1:], None, node.loc)]
        else:
            raise Invalid("needs a block of entries", f"write '{node.keyword} {{ ... }}'")
    else:
        items = node.children
    out = []
    for item in items:
        if item.children is not None:
            ctx.error(item.loc, f"{node.keyword}: unexpected block in list", None, "bad-value")
            continue
        try:
            out.append(kw.conv.parse(item.words()))
        except Invalid as exc:
            ctx.error(item.loc, f"{node.keyword}: {exc.message}", exc.hint, "bad-value")
    return tuple(out)


def _unknown(spec: BlockSpec, node: Node, ctx: Ctx) -> None:
    name = node.keyword
    owners = [s.name for s in ctx.all_specs.values() if name in s.table() and s is not spec]
    where = f"in {spec.name}" if spec.name else "at top level"
    if owners:
        ctx.error(
            node.loc,
            f"'{name}' is not valid {where}",
            f"'{name}' belongs in {' or '.join(sorted(set(owners)))}",
            "misplaced-keyword",
        )
        return
    close = difflib.get_close_matches(name, list(spec.table()), n=1, cutoff=0.75)
    hint = f"did you mean '{close[0]}'?" if close else "check the spelling in keepalived.conf(5)"
    ctx.error(node.loc, f"unknown keyword '{name}' {where}", hint, "unknown-keyword")


# ---------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class RNode:
    """A statement to render: words and, for a block, children."""

    words: tuple[str, ...]
    children: tuple[RNode, ...] | None = None


def render_block(spec: BlockSpec, obj: Any) -> tuple[RNode, ...]:
    """The statements that rebuild ``obj`` (fields equal to their defaults are left out)."""
    out: list[RNode] = []
    done: set[str] = set()  # fields already rendered (aliases and flag pairs share fields)
    for kw in spec.keywords:
        if kw.field is None or kw.mode in (Mode.RECOGNISED, Mode.IGNORED) or kw.deprecated_by:
            continue
        if kw.field in done:
            continue
        value = getattr(obj, kw.field)
        default = _field_default(spec.cls, kw.field)
        if kw.mode is Mode.FLAG:
            if value == kw.const and value != default:
                out.append(RNode((kw.name,)))
                done.add(kw.field)
            continue
        if value == default:
            continue
        done.add(kw.field)
        if kw.render_value is not None:
            out.extend(kw.render_value(value))
            continue
        items = value if (kw.repeat or kw.mode is Mode.APPEND) else (value,)
        for item in items:
            out.append(_render_one(kw, item))
    return tuple(out)


def _render_one(kw: Kw, item: Any) -> RNode:
    if kw.mode is Mode.BLOCK:
        assert kw.spec is not None
        head = kw.spec.head.fmt(_head_values(kw.spec, item)) if kw.spec.head else ()
        return RNode((kw.name, *head), render_block(kw.spec, item))
    assert kw.conv is not None
    if kw.mode is Mode.LINES:
        return RNode((kw.name,), tuple(RNode(kw.conv.fmt(x)) for x in item))
    return RNode((kw.name, *kw.conv.fmt(item)))


def _head_values(spec: BlockSpec, obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in spec.head_fields}


_SPECIAL = set(' \t{}#!"')


def quote(word: str) -> str:
    """Quote a word for keepalived.conf when it holds blanks or special characters."""
    if word and not (_SPECIAL & set(word)):
        return word
    return '"' + word.replace('"', "'") + '"'


def render_text(nodes: Sequence[RNode], indent: int = 0) -> str:
    """keepalived.conf text of rendered statements."""
    lines: list[str] = []
    pad = "    " * indent
    for n in nodes:
        head = " ".join(quote(w) for w in n.words)
        if n.children is None:
            lines.append(pad + head)
        else:
            lines.append(pad + head + " {")
            body = render_text(n.children, indent + 1)
            if body:
                lines.append(body)
            lines.append(pad + "}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Plain data (JSON)


def to_plain(obj: Any) -> Any:
    """Turn a model object into JSON-able data (locations left out)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name not in ("loc", "locs")
        }
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value)
    if isinstance(obj, tuple | list | frozenset | set):
        return [to_plain(x) for x in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)
