"""The YAML front end builds the same model as keepalived syntax, with YAML line numbers."""

from __future__ import annotations

import pytest

from pyvrrpd.config.errors import ConfigError, SourceLoc
from pyvrrpd.config.schema import Ctx, build_block, iter_specs, render_block
from pyvrrpd.config.tree import Node, parse_lines
from pyvrrpd.config.yaml_front import dump_yaml, nodes_to_data, yaml_to_nodes

from .test_schema import SAMPLE
from .toyspec import ROOT, Root


def build_nodes(nodes: tuple[Node, ...] | list[Node]) -> tuple[Root, Ctx]:
    ctx = Ctx(all_specs={str(id(s)): s for s in iter_specs(ROOT)})
    obj = build_block(ROOT, None, nodes, ctx)
    assert isinstance(obj, Root)
    return obj, ctx


def from_yaml(text: str) -> tuple[Root, Ctx]:
    return build_nodes(yaml_to_nodes(text, "t.yaml", ROOT))


def from_conf(text: str) -> Root:
    nodes = parse_lines((ln, SourceLoc("t.conf", i + 1)) for i, ln in enumerate(text.split("\n")))
    return build_nodes(nodes)[0]


YAML = """
count: 7
color: blue
label: two words
disabled: true
item:
  a:
    size: 4
    tag: [x, y]
  b:
server:
  - address: 10.0.0.1
    port: 80
    weight: 5
addresses:
  - 10.0.0.9/24 dev eth0
  - 10.0.0.10
note:
  - alpha beta
  - gamma
opts:
  size: 9
"""


def test_yaml_builds_same_model_as_keepalived_syntax() -> None:
    root, ctx = from_yaml(YAML)
    assert ctx.diagnostics == []
    assert root == from_conf(SAMPLE)


def test_yaml_errors_carry_yaml_lines() -> None:
    _, ctx = from_yaml("count: 7\nserver:\n  - address: 10.0.0.1\n    port: 80\n    wieght: 5\n")
    d = ctx.diagnostics[0]
    assert d.loc == SourceLoc("t.yaml", 5)
    assert "wieght" in d.message and d.hint == "did you mean 'weight'?"


def test_yaml_value_errors_point_at_value_line() -> None:
    _, ctx = from_yaml("label: x\ncount: 900\n")
    assert ctx.diagnostics[0].loc == SourceLoc("t.yaml", 2)


@pytest.mark.parametrize(
    ("text", "line"),
    [("count: [1\n", 2), ("- a\n- b\n", 1), ("disabled: maybe\n", 1)],
)
def test_yaml_shape_errors(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        from_yaml(text)
    assert info.value.diagnostics[0].loc is not None
    assert info.value.diagnostics[0].loc.line == line


def test_model_to_yaml_and_back() -> None:
    root = from_conf(SAMPLE)
    text = dump_yaml(nodes_to_data(render_block(ROOT, root), ROOT))
    again, ctx = from_yaml(text)
    assert ctx.diagnostics == []
    assert again == root


def test_empty_document() -> None:
    root, _ = from_yaml("")
    assert root == Root()
