"""The YAML front end: YAML documents to the shared statement tree, and back.

The YAML shape mirrors keepalived.conf block for block, keyed by keepalived's keyword
names (see docs/yaml-schema.md). It is turned into the same :class:`Node` tree as the
keepalived parser produces, so one builder makes the model and diagnostics carry YAML
line numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from .errors import ConfigError, SourceLoc, error
from .lexer import Token
from .schema import BlockSpec, Kw, Mode, RNode
from .tree import Node


def yaml_to_nodes(text: str, filename: str, root: BlockSpec) -> tuple[Node, ...]:
    """Parse YAML text into statements shaped by ``root``'s keyword tables."""
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            error(
                SourceLoc(filename, line),
                f"YAML syntax error: {problem}",
                "fix the YAML syntax (indentation, colons, quotes)",
                "yaml-syntax",
            )
        ) from None
    if doc is None:
        return ()
    conv = _Converter(filename)
    if not isinstance(doc, yaml.MappingNode):
        raise ConfigError(
            error(
                conv.loc(doc),
                "the YAML document must be a mapping of keepalived blocks",
                "start with keys such as global_defs: or vrrp_instance:",
                "yaml-shape",
            )
        )
    return tuple(conv.mapping(doc, root))


class _Converter:
    def __init__(self, filename: str) -> None:
        self.filename = filename

    def loc(self, node: yaml.Node) -> SourceLoc:
        return SourceLoc(self.filename, node.start_mark.line + 1)

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(error(self.loc(node), message, hint, "yaml-shape"))

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value)

    def words(self, node: yaml.Node, split: bool) -> list[Token]:
        loc = self.loc(node)
        if isinstance(node, yaml.ScalarNode):
            if node.value == "" and node.tag.endswith(":null"):
                return []
            parts = str(node.value).split() if split else [str(node.value)]
            return [Token(p, loc, quoted=not split) for p in parts]
        if isinstance(node, yaml.SequenceNode):
            return [
                Token(self.scalar(item, "a list item"), self.loc(item), True) for item in node.value
            ]
        raise self.fail(node, "expected a value or a list of values")

    def mapping(
        self, node: yaml.MappingNode, spec: BlockSpec, skip: Sequence[str] = ()
    ) -> list[Node]:
        table = spec.table()
        out: list[Node] = []
        for key_node, value in node.value:
            key = self.scalar(key_node, "a key")
            if key in skip:
                continue
            out.extend(self.entry(key, self.loc(key_node), value, table.get(key)))
        return out

    def entry(self, key: str, loc: SourceLoc, value: yaml.Node, kw: Kw | None) -> list[Node]:
        if kw is None or kw.mode in (Mode.RECOGNISED, Mode.IGNORED):
            # Let the builder report it (unknown / recognised) at this line.
            args = () if isinstance(value, yaml.MappingNode) else tuple(self.words(value, True))
            return [Node(key, args, None, loc)]
        if kw.mode is Mode.BLOCK:
            assert kw.spec is not None
            return self.blocks(key, loc, value, kw.spec)
        if kw.mode is Mode.LINES:
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            children = []
            for item in items:
                toks = self.words(item, True)
                if toks:
                    children.append(Node(toks[0].text, tuple(toks[1:]), None, self.loc(item)))
            return [Node(key, (), tuple(children), loc)]
        if kw.mode is Mode.FLAG:
            flag = self.scalar(value, key).lower()
            if flag in ("true", "yes", "on", ""):
                return [Node(key, (), None, loc)]
            if flag in ("false", "no", "off"):
                return []
            raise self.fail(value, f"'{key}' is a flag: write true or false")
        split = kw.conv is None or kw.conv.nargs != 1
        if (kw.repeat or kw.mode is Mode.APPEND) and isinstance(value, yaml.SequenceNode):
            return [
                Node(key, tuple(self.words(item, split)), None, self.loc(item))
                for item in value.value
            ]
        return [Node(key, tuple(self.words(value, split)), None, loc)]

    def blocks(self, key: str, loc: SourceLoc, value: yaml.Node, spec: BlockSpec) -> list[Node]:
        if spec.head_fields == ("name",) and isinstance(value, yaml.MappingNode):
            out = []
            for name_node, body in value.value:
                name = Token(self.scalar(name_node, "a block name"), self.loc(name_node), True)
                out.append(Node(key, (name,), tuple(self.body(body, spec)), self.loc(name_node)))
            return out
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        out = []
        for item in items:
            head: list[Token] = []
            if spec.head is not None:
                if not isinstance(item, yaml.MappingNode):
                    raise self.fail(
                        item, f"each '{key}' must be a mapping with " + ", ".join(spec.head_fields)
                    )
                fields: dict[str, Any] = {}
                for k, v in item.value:
                    field_name = self.scalar(k, "a key")
                    if field_name in spec.head_fields:
                        fields[field_name] = self.scalar(v, field_name)
                try:
                    words = spec.head.fmt(fields)
                except KeyError as exc:  # a field the head needs is missing
                    raise self.fail(
                        item, f"'{key}' needs {exc.args[0]} (one of {', '.join(spec.head_fields)})"
                    ) from None
                head = [Token(w, self.loc(item), True) for w in words]
            out.append(
                Node(
                    key,
                    tuple(head),
                    tuple(self.body(item, spec, skip=spec.head_fields)),
                    self.loc(item),
                )
            )
        return out

    def body(self, node: yaml.Node, spec: BlockSpec, skip: Sequence[str] = ()) -> list[Node]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"the body of '{spec.name}' must be a mapping")
        return self.mapping(node, spec, skip)


# ---------------------------------------------------------------------------------------
# Model (rendered statements) to YAML


def nodes_to_data(nodes: Sequence[RNode], spec: BlockSpec) -> dict[str, Any]:
    """Plain YAML data for rendered statements of a block."""
    table = spec.table()
    data: dict[str, Any] = {}
    for n in nodes:
        key, args = n.words[0], n.words[1:]
        kw = table.get(key)
        if kw is None:
            data[key] = " ".join(args)
            continue
        if kw.mode is Mode.BLOCK:
            assert kw.spec is not None
            sub = kw.spec
            body = nodes_to_data(n.children or (), sub)
            if sub.head_fields == ("name",):
                data.setdefault(key, {})[args[0]] = body
            elif sub.head is not None:
                head = {k: _plain(v) for k, v in sub.head.parse(args).items() if v is not None}
                data.setdefault(key, []).append({**head, **body})
            elif kw.repeat:
                data.setdefault(key, []).append(body)
            else:
                data[key] = body
        elif kw.mode is Mode.LINES:
            data.setdefault(key, []).extend(" ".join(c.words) for c in n.children or ())
        elif kw.mode is Mode.FLAG:
            data[key] = True
        else:
            one = kw.conv is not None and kw.conv.nargs == 1
            value: Any = _scalar(args[0]) if one and args else _join(args)
            if kw.repeat or kw.mode is Mode.APPEND:
                data.setdefault(key, []).append(value)
            else:
                data[key] = value
    return data


def _join(args: Sequence[str]) -> Any:
    if any(not a or any(c.isspace() for c in a) for a in args):
        return list(args)
    if len(args) == 1:
        return _scalar(args[0])
    return " ".join(args)


def _scalar(word: str) -> Any:
    """A plain integer for digit strings (reads better in YAML), else the word."""
    if word.isdigit() and (word == "0" or not word.startswith("0")):
        return int(word)
    return word


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(getattr(value, "value", value))


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML text of plain data, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
