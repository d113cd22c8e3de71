"""Tests of the keepalived.conf preprocessor (comments, includes, conditionals, definitions,
~SEQ/~LST), with golden files under golden/preprocess/."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from pyvrrpd.config import preprocess_engine as engine_module
from pyvrrpd.config.errors import ConfigError, Severity, SourceLoc
from pyvrrpd.config.preprocess import Line, preprocess_file, preprocess_text

GOLDEN = Path(__file__).parent / "golden" / "preprocess"
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "keepalived-samples"


def texts(result: object) -> list[str]:
    assert hasattr(result, "lines")
    return [line.text for line in result.lines]


def where(lines: tuple[Line, ...]) -> list[tuple[int, str]]:
    return [(line.loc.line, line.text) for line in lines]


def error_of(exc: pytest.ExceptionInfo[ConfigError], code: str) -> list[tuple[str, int]]:
    return [
        (Path(d.loc.file).name if d.loc else "", d.loc.line if d.loc else 0)
        for d in exc.value.diagnostics
        if d.code == code and d.severity is Severity.ERROR
    ]


# -- golden files -------------------------------------------------------------------------


def render(path: Path) -> list[str]:
    """Render a preprocessing run as golden lines: ``LINE: text`` / ``E|W LINE: code``."""
    text = path.read_text()
    match = re.search(r"^# config_id: (\S+)", text, re.M)
    config_id = match.group(1) if match else None
    out: list[str] = []
    try:
        result = preprocess_file(path, config_id=config_id, rng=random.Random(1))
        diagnostics = list(result.warnings)
        for line in result.lines:
            assert line.loc.file == str(path)
            out.append(f"{line.loc.line}: {line.text}")
    except ConfigError as exc:
        diagnostics = exc.diagnostics
    for diag in diagnostics:
        assert diag.loc is not None and diag.loc.file == str(path)
        kind = "E" if diag.severity is Severity.ERROR else "W"
        out.append(f"{kind} {diag.loc.line}: {diag.code}")
    return out


def expected(path: Path) -> list[str]:
    lines = path.with_suffix(".expected").read_text().splitlines()
    return [line.split("  # ")[0] if line[:2] in ("E ", "W ") else line for line in lines]


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.conf")))
def test_golden(name: str) -> None:
    path = GOLDEN / name
    assert render(path) == expected(path)


def test_golden_set_is_complete() -> None:
    names = {p.stem for p in GOLDEN.glob("*.conf")}
    assert {"comments", "conditional", "definitions", "multiline", "seq", "recursive"} <= names
    assert names == {p.stem for p in GOLDEN.glob("*.expected")}


# -- comments, whitespace, decoding ------------------------------------------------------


def test_crlf_and_whitespace_lines() -> None:
    result = preprocess_text("a 1\r\n   \r\n\t\r\n  b 2  \r\n")
    assert where(result.lines) == [(1, "a 1"), (4, "b 2")]


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_bytes(b"router_id \xff\xfe\n")
    result = preprocess_file(conf)
    assert texts(result) == ["router_id \ufffd\ufffd"]
    assert result.files == (str(conf),)


def test_nul_character_is_an_error() -> None:
    with pytest.raises(ConfigError) as exc:
        preprocess_text("ok\nbad\0line\n", filename="n.conf")
    assert error_of(exc, "nul-character") == [("n.conf", 2)]


def test_missing_top_level_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        preprocess_file(tmp_path / "nope.conf")
    assert "nope.conf" in str(exc.value)


# -- conditionals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_id", "expected_lines"),
    [("main", ["a", "c"]), ("backup", ["b", "d"]), (None, ["c", "d"])],
)
def test_conditionals(config_id: str | None, expected_lines: list[str]) -> None:
    text = "@main a\n@backup b\n@^backup c\n@^main d\n"
    assert texts(preprocess_text(text, config_id=config_id)) == expected_lines


# -- predefined definitions ---------------------------------------------------------------


def test_predefined(tmp_path: Path) -> None:
    text = "p ${_PWD}\ni ${_INSTANCE}\ne ${_ENV HOME} [${_ENV UNSET}]\nh x${_HASH}y\nb ${_BANG}\n"
    result = preprocess_text(text, base_dir=str(tmp_path), instance="inst", env={"HOME": "/h"})
    assert texts(result) == [f"p {tmp_path}", "i inst", "e /h []", "h x", "b"]


def test_instance_defaults_to_config_id() -> None:
    assert texts(preprocess_text("i ${_INSTANCE}", config_id="node1")) == ["i node1"]


def test_random_uses_given_rng_and_bounds() -> None:
    text = "~SEQ(I, 1, 50) ${_RANDOM 3 7} ${_RANDOM}\n"
    first = texts(preprocess_text(text, rng=random.Random(42)))
    assert first == texts(preprocess_text(text, rng=random.Random(42)))
    pairs = [tuple(map(int, line.split())) for line in first]
    assert len(pairs) == 50
    assert all(3 <= a <= 7 and 0 <= b <= 32767 for a, b in pairs)
    assert {a for a, _ in pairs} == {3, 4, 5, 6, 7}


def test_predefined_can_be_overridden() -> None:
    assert texts(preprocess_text("$_HASH=H\nx ${_HASH}\n")) == ["x H"]


# -- definitions: limits ------------------------------------------------------------------


def test_self_reference_is_reported_not_hung() -> None:
    with pytest.raises(ConfigError) as exc:
        preprocess_text("$IF=$IF\n\ninterface $IF\n", filename="r.conf")
    assert error_of(exc, "recursive-definition") == [("r.conf", 1)]
    assert "r.conf:3" in exc.value.diagnostics[0].message


def test_multiline_self_reference_is_reported() -> None:
    text = "$M= \\\n a \\\n $M\n\n$M\n"
    with pytest.raises(ConfigError) as exc:
        preprocess_text(text, filename="m.conf")
    assert error_of(exc, "recursive-definition") == [("m.conf", 1)]


def test_unused_self_reference_is_fine() -> None:
    assert texts(preprocess_text("$IF=$IF\nx 1\n")) == ["x 1"]


def test_exponential_expansion_is_capped() -> None:
    text = "$A0=xxxxxxxx\n" + "".join(f"$A{i}=${{A{i - 1}}}${{A{i - 1}}}\n" for i in range(1, 40))
    with pytest.raises(ConfigError) as exc:
        preprocess_text(text + "v ${A39}\n")
    assert any(d.code == "expansion-too-large" for d in exc.value.diagnostics)


@pytest.mark.parametrize("body", ["x", ""])
def test_nested_seq_is_capped(monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    monkeypatch.setattr(engine_module, "MAX_OUTPUT_LINES", 5000)
    monkeypatch.setattr(engine_module, "MAX_WORK", 20000)
    with pytest.raises(ConfigError) as exc:
        preprocess_text(f"~SEQ(A, 900000) ~SEQ(B, 900000) ~SEQ(C, 9) {body}\n", filename="s")
    assert [(d.loc, d.code) for d in exc.value.diagnostics] == [
        (SourceLoc("s", 1), "expansion-too-large")
    ]


def test_single_seq_count_is_capped() -> None:
    with pytest.raises(ConfigError) as exc:
        preprocess_text("~SEQ(A, 0, 1, 99999999999) x\n")
    assert "limit" in exc.value.diagnostics[0].message


def test_seq_redefines_after_block() -> None:
    assert texts(preprocess_text("~SEQ(N, 1, 2) a $N\nlast $N\n")) == ["a 1", "a 2", "last 2"]


def test_seq_inside_multiline_definition() -> None:
    text = "$BLOCK= \\\nopen \\\n~SEQ(I, 1, 2) item $I \\\nclose\n$BLOCK\n"
    result = preprocess_text(text)
    assert where(result.lines) == [(5, "open"), (3, "item 1"), (3, "item 2"), (4, "close")]


def test_seq_over_multiline_definition() -> None:
    text = "$B= \\\nx ${I} \\\ny ${I}\n~SEQ(I, 1, 2) $B\n"
    assert texts(preprocess_text(text)) == ["x 1", "y 1", "x 2", "y 2"]


# -- includes -----------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_glob_sorted_nested_and_relative(tmp_path: Path) -> None:
    main = write(tmp_path / "keepalived.conf", "top 1\ninclude conf.d/*.conf\ntop 3\n")
    write(tmp_path / "conf.d" / "b.conf", "b 1\ninclude sub/x.conf\nb 3\n")
    write(tmp_path / "conf.d" / "a.conf", "a 1\n")
    write(tmp_path / "conf.d" / "sub" / "x.conf", "x 1 ${_PWD}\n")
    write(tmp_path / "conf.d" / "ignored.txt", "nope\n")
    result = preprocess_file(main)
    d = tmp_path / "conf.d"
    got = [
        (Path(line.loc.file).relative_to(tmp_path).as_posix(), line.loc.line, line.text)
        for line in result.lines
    ]
    assert got == [
        ("keepalived.conf", 1, "top 1"),
        ("conf.d/a.conf", 1, "a 1"),
        ("conf.d/b.conf", 1, "b 1"),
        ("conf.d/sub/x.conf", 1, f"x 1 {d / 'sub'}"),
        ("conf.d/b.conf", 3, "b 3"),
        ("keepalived.conf", 3, "top 3"),
    ]
    assert [Path(f).name for f in result.files] == ["keepalived.conf", "a.conf", "b.conf", "x.conf"]


def test_include_braces_keep_alternative_order(tmp_path: Path) -> None:
    main = write(tmp_path / "k.conf", "include {z,a}.inc\n")
    write(tmp_path / "a.inc", "from a\n")
    write(tmp_path / "z.inc", "from z\n")
    assert texts(preprocess_file(main)) == ["from z", "from a"]


def test_include_absolute_quoted_and_conditional(tmp_path: Path) -> None:
    inc = write(tmp_path / "x y.inc", "inside\n")
    main = write(tmp_path / "k.conf", f'@main include "{inc}"\n@other include {inc}\nend\n')
    assert texts(preprocess_file(main, config_id="main")) == ["inside", "end"]
    assert texts(preprocess_file(main, config_id="x")) == ["end"]


def test_include_through_definition(tmp_path: Path) -> None:
    write(tmp_path / "d" / "v.inc", "vi\n")
    main = write(tmp_path / "k.conf", "$DIR=d\ninclude ${DIR}/v.inc\n")
    assert texts(preprocess_file(main)) == ["vi"]


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "m\ninclude a.conf\n")
    write(tmp_path / "a.conf", "a\n\ninclude main.conf\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(main)
    assert error_of(exc, "include-loop") == [("a.conf", 3)]
    assert "main.conf" in exc.value.diagnostics[0].message


def test_self_include_is_a_loop(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "include *.conf\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(main)
    assert error_of(exc, "include-loop") == [("main.conf", 1)]


def test_sibling_includes_are_not_loops(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "include inc/*.conf\ninclude inc/a.conf\n")
    write(tmp_path / "inc" / "a.conf", "a\n")
    write(tmp_path / "inc" / "b.conf", "include a.conf\n")
    assert texts(preprocess_file(main)) == ["a", "a", "a"]


def test_include_no_match_is_a_warning(tmp_path: Path) -> None:
    main = write(tmp_path / "k.conf", "include none/*.conf\ninclude missing.conf\nx\n")
    (tmp_path / "none").mkdir()
    result = preprocess_file(main)
    assert texts(result) == ["x"]
    assert [(w.loc.line if w.loc else 0, w.code) for w in result.warnings] == [
        (1, "include-no-match"),
        (2, "include-missing"),
    ]
    assert all(w.severity is Severity.WARNING for w in result.warnings)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("includea none/*.conf", "include-no-match"),
        ("includew none/*.conf", "include-no-match"),
        ("includem missing.conf", "include-missing"),
        ("includeb {a,missing}.inc", "include-missing"),
    ],
)
def test_include_variants_make_errors(tmp_path: Path, line: str, code: str) -> None:
    (tmp_path / "none").mkdir()
    write(tmp_path / "a.inc", "a\n")
    main = write(tmp_path / "k.conf", f"x\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(main)
    assert error_of(exc, code) == [("k.conf", 2)]


def test_include_check_keyword_makes_errors(tmp_path: Path) -> None:
    main = write(tmp_path / "k.conf", "include_check match\ninclude missing.conf\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(main)
    assert error_of(exc, "include-missing") == [("k.conf", 2)]


def test_unreadable_include_is_an_error(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone", tmp_path / "dangling.conf")
    main = write(tmp_path / "k.conf", "x\ninclude dangling.conf\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(main)
    assert error_of(exc, "unreadable-file") == [("k.conf", 2)]


def test_directory_and_executable_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "inc" / "dir.conf").mkdir(parents=True)
    exe = write(tmp_path / "inc" / "exe.conf", "exe\n")
    exe.chmod(0o755)
    write(tmp_path / "inc" / "ok.conf", "ok\n")
    main = write(tmp_path / "k.conf", "include inc/*\n")
    result = preprocess_file(main)
    assert texts(result) == ["ok"]
    assert sorted(w.code or "" for w in result.warnings) == ["unreadable-file"] * 2
    strict = write(tmp_path / "s.conf", "includer inc/*\n")
    with pytest.raises(ConfigError) as exc:
        preprocess_file(strict)
    assert error_of(exc, "unreadable-file") == [("s.conf", 1), ("s.conf", 1)]


def test_include_without_name_is_an_error() -> None:
    with pytest.raises(ConfigError) as exc:
        preprocess_text("include\n", filename="k.conf")
    assert error_of(exc, "include-syntax") == [("k.conf", 1)]


def test_definitions_carry_into_included_files(tmp_path: Path) -> None:
    write(tmp_path / "i.conf", "$B=2\nuse $A\n")
    main = write(tmp_path / "k.conf", "$A=1\ninclude i.conf\nback $B\n")
    assert texts(preprocess_file(main)) == ["use 1", "back 2"]


# -- the keepalived sample corpus ---------------------------------------------------------


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("keepalived.conf.*")) if CORPUS.is_dir() else []


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not present at {CORPUS}")
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_preprocesses(path: Path) -> None:
    result = preprocess_file(path, config_id="high")
    assert result.lines and result.warnings == ()
    for line in result.lines:
        assert line.text == line.text.strip() and line.text
        assert line.loc.file == str(path)
    opened = sum(line.text == "{" for line in result.lines)
    assert opened == sum(line.text == "}" for line in result.lines) > 0


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not present at {CORPUS}")
@pytest.mark.parametrize(
    ("config_id", "present", "absent"),
    [
        ("high", {"net_namespace high", "priority 170"}, {"net_namespace low", "priority 85"}),
        ("low", {"net_namespace low", "priority 85"}, {"net_namespace high", "priority 170"}),
        (None, set(), {"net_namespace low", "priority 85", "net_namespace high", "priority 170"}),
    ],
)
def test_corpus_conditional_conf(
    config_id: str | None, present: set[str], absent: set[str]
) -> None:
    path = CORPUS / "keepalived.conf.conditional_conf"
    result = preprocess_file(path, config_id=config_id)
    got = set(texts(result))
    assert present <= got and not absent & got
    locs = {line.text: line.loc for line in result.lines}
    if config_id == "high":
        assert locs["priority 170"] == SourceLoc(str(path), 19)
