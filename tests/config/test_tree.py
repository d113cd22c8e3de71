"""Lexer and statement tree: braces anywhere, quotes, locations, structural errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.config.errors import ConfigError, SourceLoc
from pyvrrpd.config.lexer import tokenize_line
from pyvrrpd.config.tree import Node, parse_lines


def tree(text: str) -> tuple[Node, ...]:
    return parse_lines(
        (line, SourceLoc("t.conf", i + 1)) for i, line in enumerate(text.split("\n"))
    )


def shape(nodes: tuple[Node, ...] | None) -> object:
    if nodes is None:
        return None
    return [(n.words(), shape(n.children)) for n in nodes]


def test_block_on_one_line_and_on_own_lines() -> None:
    a = tree("vrrp_instance VI_1 {\n state MASTER\n}")
    b = tree("vrrp_instance VI_1\n{\nstate MASTER\n}")
    c = tree("vrrp_instance VI_1 { state MASTER }")
    assert (
        shape(a)
        == shape(b)
        == shape(c)
        == [(("vrrp_instance", "VI_1"), [(("state", "MASTER"), None)])]
    )


def test_close_brace_followed_by_statement_on_same_line() -> None:
    t = tree("a { b } c 1\nd { }")
    assert shape(t) == [(("a",), [(("b",), None)]), (("c", "1"), None), (("d",), [])]


def test_nested_blocks_keep_line_numbers() -> None:
    t = tree("virtual_server 10.0.0.1 80 {\n\n  real_server 10.0.0.2 80 {\n    weight 2\n  }\n}")
    vs = t[0]
    assert vs.loc == SourceLoc("t.conf", 1)
    assert vs.children is not None
    rs = vs.children[0]
    assert rs.loc.line == 3
    assert rs.children is not None and rs.children[0].loc.line == 4
    assert rs.args[0].loc.line == 3


def test_quoted_strings_keep_spaces_and_braces() -> None:
    toks = tokenize_line('notify "/bin/echo { x }" tail', SourceLoc("f", 1))
    assert [t.text for t in toks] == ["notify", "/bin/echo { x }", "tail"]
    assert toks[1].quoted and not toks[0].quoted


def test_quoted_brace_is_not_a_block() -> None:
    t = tree('script "{"')
    assert shape(t) == [(("script", "{"), None)]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a {\n b\n", 1, "never closed"),
        ("a\n}\n", 2, "without a matching"),
        ("{ b }", 1, "without a keyword"),
        ('a "unterminated', 1, "unterminated"),
    ],
)
def test_structural_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        tree(text)
    diag = info.value.diagnostics[0]
    assert diag.loc == SourceLoc("t.conf", line)
    assert fragment in diag.message


def test_long_lines() -> None:
    words = " ".join(f"w{i}" for i in range(5000))
    t = tree(f"k {words}")
    assert len(t[0].args) == 5000


@settings(max_examples=300, deadline=1000)
@given(st.text(alphabet=st.sampled_from(list('ab {}"\n\t#x1')), max_size=200))
def test_arbitrary_text_only_raises_config_error(text: str) -> None:
    try:
        tree(text)
    except ConfigError as exc:
        assert exc.diagnostics and exc.diagnostics[0].loc is not None
