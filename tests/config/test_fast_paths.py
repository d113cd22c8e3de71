"""The loader's fast paths give what the general paths give: plain preprocessor lines, the
statement tree of brace-only and plain lines, dotted-quad addresses, pre-parsed block
heads, and the garbage collector left as it was found."""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.config import preprocess_engine as engine_module
from pyvrrpd.config.convert import _fast_ipv4, parse_address
from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import ConfigError, SourceLoc
from pyvrrpd.config.lexer import Token
from pyvrrpd.config.load import load_config
from pyvrrpd.config.preprocess import preprocess_text
from pyvrrpd.config.schema import Ctx, build_block
from pyvrrpd.config.tree import Node, parse_lines

from .toyspec import SERVER, Server

# -- preprocessor: runs of plain lines ------------------------------------------------------


def where(text: str) -> list[tuple[int, str]]:
    return [(ln.loc.line, ln.text) for ln in preprocess_text(text, filename="f").lines]


def test_plain_lines_split_braces_and_keep_line_numbers() -> None:
    text = "a {\n\n  b 1\n\t}\n  c { d } e\n{\n}\n   \nf"
    assert where(text) == [
        (1, "a"),
        (1, "{"),
        (3, "b 1"),
        (4, "}"),
        (5, "c"),
        (5, "{"),
        (5, "d"),
        (5, "}"),
        (5, "e"),
        (6, "{"),
        (7, "}"),
        (9, "f"),
    ]


def test_plain_run_resumes_after_meta_syntax() -> None:
    text = "$X=val\na $X\nb {\n# note\n@nohost c\n@^nohost d $X\ne }\n$M=m1 \\\nm2\nf\n$M\ng"
    assert where(text) == [
        (2, "a val"),
        (3, "b"),
        (3, "{"),
        (6, "d val"),
        (7, "e"),
        (7, "}"),
        (10, "f"),
        (11, "m1"),
        (9, "m2"),  # a definition's later lines keep where they were written
        (12, "g"),
    ]


def test_include_between_plain_lines(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("i1\ni2 {\n}\n")
    text = "a\ninclude inc.conf\nb\n"
    lines = preprocess_text(text, filename="main", base_dir=str(tmp_path)).lines
    got = [(Path(ln.loc.file).name, ln.loc.line, ln.text) for ln in lines]
    assert got == [
        ("main", 1, "a"),
        ("inc.conf", 1, "i1"),
        ("inc.conf", 2, "i2"),
        ("inc.conf", 2, "{"),
        ("inc.conf", 3, "}"),
        ("main", 3, "b"),
    ]


@pytest.mark.parametrize("limit", [1, 7, 10])
def test_work_limit_is_reported_at_the_first_line_over_it(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(engine_module, "MAX_WORK", limit)
    text = "".join(f"k{i}\n" for i in range(20))
    with pytest.raises(ConfigError) as exc:
        preprocess_text(text, filename="f")
    assert [(d.loc, d.code) for d in exc.value.diagnostics] == [
        (SourceLoc("f", limit + 1), "expansion-too-large")
    ]


def test_work_limit_counts_meta_lines_before_the_plain_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "MAX_WORK", 4)
    with pytest.raises(ConfigError) as exc:
        preprocess_text("$A=1\n# c\nx\ny\nz\n", filename="f")
    assert [d.loc for d in exc.value.diagnostics] == [SourceLoc("f", 5)]


def test_output_limit_is_reported_at_the_line_that_passes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "MAX_OUTPUT_LINES", 5)
    with pytest.raises(ConfigError) as exc:
        preprocess_text("a\nb {\nc\nd }\ne\n", filename="f")
    assert [(d.loc, d.code) for d in exc.value.diagnostics] == [
        (SourceLoc("f", 4), "expansion-too-large")
    ]


# -- statement tree: lone braces and plain lines -------------------------------------------

_WORD = st.text(alphabet="abxy01._-/", min_size=1, max_size=6)
_ARG = st.one_of(
    _WORD.map(lambda w: (w, False)), st.text("a {}#", max_size=5).map(lambda w: (w, True))
)


@st.composite
def _trees(draw: Any, depth: int = 0) -> list[tuple[str, list[tuple[str, bool]], Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        args = draw(st.lists(_ARG, max_size=3))
        kids = draw(_trees(depth + 1)) if depth < 3 and draw(st.booleans()) else None
        out.append((draw(_WORD), args, kids))
    return out


def _word(text: str, quoted: bool) -> str:
    return f'"{text}"' if quoted else text


def _own_lines(tree: list[Any]) -> Iterator[str]:
    """The preprocessor's layout: every brace on a line of its own."""
    for kw, args, kids in tree:
        yield " ".join([kw, *(_word(*a) for a in args)])
        if kids is not None:
            yield "{"
            yield from _own_lines(kids)
            yield "}"


def _inline(tree: list[Any]) -> str:
    parts = []
    for kw, args, kids in tree:
        parts.append(" ".join([kw, *(_word(*a) for a in args)]))
        if kids is not None:
            parts.append("{ " + _inline(kids) + " }")
        parts.append("\n")
    return " ".join(parts)


def _shape(nodes: tuple[Node, ...] | None) -> Any:
    if nodes is None:
        return None
    return [(n.keyword, [(t.text, t.quoted) for t in n.args], _shape(n.children)) for n in nodes]


def _expected(tree: list[Any] | None) -> Any:
    if tree is None:
        return None
    return [(kw, list(args), _expected(kids)) for kw, args, kids in tree]


def _parse(lines: list[str]) -> tuple[Node, ...]:
    return parse_lines((ln, SourceLoc("t", i + 1)) for i, ln in enumerate(lines))


@settings(max_examples=200, deadline=None)
@given(_trees())
def test_tree_is_the_same_in_every_layout(tree: list[Any]) -> None:
    own = _own_lines(tree)
    lines = list(own)
    nodes = _parse(lines)
    assert _shape(nodes) == _expected(tree)
    assert _shape(_parse(_inline(tree).split("\n"))) == _expected(tree)
    # the lone braces indented (so not taken by the fast path) give the very same nodes
    assert _parse([f" {ln}" if ln in ("{", "}") else ln for ln in lines]) == nodes

    def check_locs(ns: tuple[Node, ...] | None) -> None:
        for n in ns or ():
            assert lines[n.loc.line - 1].split()[0] in (n.keyword, f'"{n.keyword}"')
            assert all(t.loc == n.loc for t in n.args)
            check_locs(n.children)

    check_locs(nodes)


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        (["a", "{", "b"], 1, "never closed"),
        (["a", "}"], 2, "without a matching"),
        (["{"], 1, "without a keyword"),
        (["a", "{", "}", "{"], 4, "without a keyword"),
    ],
)
def test_brace_lines_report_structural_errors(lines: list[str], line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _parse(lines)
    diag = exc.value.diagnostics[0]
    assert diag.loc == SourceLoc("t", line) and fragment in diag.message


# -- addresses -----------------------------------------------------------------------------


@given(st.integers(0, 2**32 - 1))
def test_fast_ipv4_reads_every_dotted_quad(value: int) -> None:
    addr = ipaddress.IPv4Address(value)
    assert _fast_ipv4(str(addr)) == addr


@given(st.text(alphabet="0123456789.x ", max_size=20))
def test_fast_ipv4_takes_only_canonical_dotted_quads(word: str) -> None:
    got = _fast_ipv4(word)
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(word)
    except ValueError:
        expected = None
    assert got == expected


@pytest.mark.parametrize(
    "word", ["256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", "\uff11.2.3.4"]
)
def test_fast_ipv4_rejects(word: str) -> None:
    assert _fast_ipv4(word) is None


def test_parse_address_still_reads_ipv6_and_zones() -> None:
    assert parse_address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")


# -- block heads parsed once ---------------------------------------------------------------


def test_build_block_uses_a_pre_parsed_head() -> None:
    # The statement's own head ("only-one-word") would not parse: it is not parsed again.
    node = Node("server", (Token("only-one-word", SourceLoc("t", 3)),), (), SourceLoc("t", 3))
    ctx = Ctx()
    obj = build_block(SERVER, node, (), ctx, head={"address": "10.0.0.1", "port": 80})
    assert obj == Server(address="10.0.0.1", port=80) and not ctx.diagnostics
    assert obj.locs == {"address": SourceLoc("t", 3), "port": SourceLoc("t", 3)}
    build_block(SERVER, node, (), ctx)
    assert [d.code for d in ctx.diagnostics] == ["bad-value"]


# -- garbage collector ---------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_load_leaves_the_collector_as_it_was(tmp_path: Path, enabled: bool) -> None:
    good = tmp_path / "k.conf"
    good.write_text("global_defs {\n router_id X\n}\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("global_defs {\n")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert load_config(good, env=Environment()).config.global_defs.router_id == "X"
        assert gc.isenabled() is enabled
        with pytest.raises(ConfigError):
            load_config(bad, env=Environment())
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_syntax_is_chosen_by_suffix_then_content() -> None:
    from pyvrrpd.config.load import detect_syntax

    assert detect_syntax("keepalived.conf", "(:\n") == "keepalived"  # found by hypothesis
    assert detect_syntax("a.conf", "---\nglobal_defs:\n") == "keepalived"
    assert detect_syntax("a.yml", "global_defs {\n") == "yaml"
    assert detect_syntax("config", "# c\nglobal_defs:\n") == "yaml"
    assert detect_syntax("config", "global_defs {\n") == "keepalived"
