"""The declarative engine: build, diagnostics with locations, render round trip, JSON."""

from __future__ import annotations

from typing import Any

import pytest

from pyvrrpd.config.errors import Severity, SourceLoc
from pyvrrpd.config.schema import Ctx, build_block, iter_specs, render_block, render_text, to_plain
from pyvrrpd.config.tree import parse_lines

from .toyspec import ROOT, Color, Root


def build(text: str) -> tuple[Root, Ctx]:
    nodes = parse_lines((ln, SourceLoc("t.conf", i + 1)) for i, ln in enumerate(text.split("\n")))
    ctx = Ctx(all_specs={str(id(s)): s for s in iter_specs(ROOT)})
    obj = build_block(ROOT, None, nodes, ctx)
    assert isinstance(obj, Root)
    return obj, ctx


def messages(ctx: Ctx) -> list[tuple[int, str, str]]:
    return [(d.loc.line if d.loc else 0, d.severity.value, d.message) for d in ctx.diagnostics]


SAMPLE = """count 7
colour blue
label "two words"
disabled
item a {
  size 4
  tag x
  tag y
}
item b { }
server 10.0.0.1 80 {
  weight 5
}
addresses {
  10.0.0.9/24 dev eth0
  10.0.0.10
}
note alpha beta
note gamma
opts { size 9 }"""


def test_builds_every_mode() -> None:
    root, ctx = build(SAMPLE)
    assert ctx.diagnostics == []
    assert root.count == 7 and root.color is Color.BLUE and root.label == "two words"
    assert root.enabled is False
    assert [(i.name, i.size, i.tags) for i in root.items] == [("a", 4, ("x", "y")), ("b", 1, ())]
    assert (root.servers[0].address, root.servers[0].port, root.servers[0].weight) == (
        "10.0.0.1",
        80,
        5,
    )
    assert root.addresses == ("10.0.0.9/24 dev eth0", "10.0.0.10")
    assert root.notes == (("alpha", "beta"), ("gamma",))
    assert root.opts.size == 9


def test_locations_are_recorded() -> None:
    root, _ = build(SAMPLE)
    assert root.locs["count"] == SourceLoc("t.conf", 1)
    assert root.items[0].loc == SourceLoc("t.conf", 5)
    assert root.items[0].locs["size"].line == 6
    assert root.servers[0].locs["port"].line == 11


def test_defaults_when_absent() -> None:
    root, ctx = build("")
    assert root == Root()
    assert ctx.diagnostics == []


@pytest.mark.parametrize(
    ("text", "line", "severity", "fragment"),
    [
        ("count 300", 1, "error", "out of range"),
        ("count x", 1, "error", "not a number"),
        ("count", 1, "error", "missing value"),
        ("colour green", 1, "error", "expected one of red, blue"),
        ("cuont 3", 1, "error", "unknown keyword 'cuont'"),
        ("\nsize 3", 2, "error", "'size' is not valid at top level"),
        ("disabled yes", 1, "error", "takes no value"),
        ("fancy 1 2", 1, "warning", "recognised, not supported yet"),
        ("old_count 2", 1, "warning", "deprecated"),
        ("server 10.0.0.1 { }", 1, "error", "expected ADDRESS PORT"),
        ("count 1 { }", 1, "error", "does not take a block"),
        ("\nopts", 2, "error", "needs a block"),
        ("opts x { }", 1, "error", "takes no arguments"),
    ],
)
def test_diagnostics(text: str, line: int, severity: str, fragment: str) -> None:
    _, ctx = build(text)
    assert ctx.diagnostics, "expected a diagnostic"
    d = ctx.diagnostics[0]
    assert d.loc is not None and d.loc.line == line
    assert d.severity is Severity(severity)
    assert fragment in d.message


def test_did_you_mean_hint() -> None:
    _, ctx = build("cuont 3")
    assert ctx.diagnostics[0].hint == "did you mean 'count'?"


def test_misplaced_keyword_hint_names_owner() -> None:
    _, ctx = build("weight 3")
    assert ctx.diagnostics[0].hint is not None and "server" in ctx.diagnostics[0].hint


def test_bad_value_keeps_default_and_goes_on() -> None:
    root, ctx = build("count 999\nlabel ok")
    assert root.count == 3 and root.label == "ok"
    assert len(ctx.diagnostics) == 1


def test_render_round_trip() -> None:
    root, _ = build(SAMPLE)
    text = render_text(render_block(ROOT, root))
    again, ctx = build(text)
    assert ctx.diagnostics == []
    assert again == root
    assert 'label "two words"' in text


def test_render_leaves_defaults_out() -> None:
    root, _ = build("count 3\nopts { }")
    assert render_text(render_block(ROOT, root)) == ""


def test_to_plain_is_json_shaped() -> None:
    root, _ = build(SAMPLE)
    plain: Any = to_plain(root)
    assert plain["color"] == "blue"
    assert plain["servers"][0] == {"address": "10.0.0.1", "port": 80, "weight": 5}
    assert "loc" not in plain and "locs" not in plain


def test_extra_words_after_one_value_are_ignored_with_a_warning() -> None:
    root, ctx = build("label one two\ncount 5 color blue")
    assert root.label == "one" and root.count == 5
    assert [d.severity for d in ctx.diagnostics] == [Severity.WARNING, Severity.WARNING]
    assert "'two' is ignored" in ctx.diagnostics[0].message
    hint = ctx.diagnostics[1].hint
    assert hint is not None and "on a line of its own" in hint
