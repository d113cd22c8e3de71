"""Fuzz tests of the preprocessor: arbitrary input gives lines or ConfigError, never
another exception and never a hang."""

from __future__ import annotations

import contextlib
import random
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrpd.config.errors import ConfigError, Severity
from pyvrrpd.config.preprocess import Preprocessed, preprocess_file, preprocess_text

TIME_LIMIT = 20.0  # generous: a loaded CI machine must not turn slowness into a failure

FRAGMENTS = [
    "$A=",
    "$B=",
    "$A=$B",
    "$B=$A",
    "$M= \\",
    "\\",
    "$A",
    "${A}",
    "${B}",
    "$M",
    "${M}",
    "${_RANDOM}",
    "${_RANDOM 1 3}",
    "${_RANDOM 9 1}",
    "${_ENV X}",
    "${_ENV}",
    "${_PWD}",
    "${_HASH}",
    "${_BANG}",
    "${_INSTANCE}",
    "@main",
    "@^main",
    "@other",
    "~SEQ(I, 3)",
    "~SEQx(I, 0x10, 0x12)",
    "~SEQ(I, 1, 0, 2)",
    "~LST(I, a, b)",
    "~LST({I, J}, {1,2},{3})",
    "~SEQ(",
    "~LST(",
    "$I",
    "${I}",
    "${J}",
    "include",
    "include nothing*",
    "includea x",
    "{",
    "}",
    '"',
    "#",
    "!",
    "\\#",
    " ",
    "\t",
    "\r",
    "\0",
    "vrrp_instance",
    "x",
    "1",
]


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("preprocessing took too long")


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) if the body runs longer than ``seconds``."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_result(result: Preprocessed, n_lines: int | None = None) -> None:
    for line in result.lines:
        assert line.text and line.text == line.text.strip()
        assert line.loc.line >= 1
        if n_lines is not None:
            assert line.loc.line <= n_lines
    assert all(w.severity is Severity.WARNING for w in result.warnings)


def run_text(text: str, base_dir: str = "/nonexistent-dir-for-fuzz") -> None:
    try:
        with time_limit(TIME_LIMIT):
            result = preprocess_text(
                text, base_dir=base_dir, config_id="main", env={"X": "y"}, rng=random.Random(0)
            )
    except ConfigError as exc:
        assert exc.diagnostics
        assert any(d.severity is Severity.ERROR for d in exc.diagnostics)
        return
    check_result(result, text.count("\n") + 1)


meta_line = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=8).map(
    "".join
)
meta_text = st.lists(meta_line, max_size=25).map("\n".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta_text)
def test_meta_syntax_text(text: str) -> None:
    run_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    run_text(text)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keepalived.conf"
        path.write_bytes(data)
        try:
            with time_limit(TIME_LIMIT):
                result = preprocess_file(path, config_id="main")
        except ConfigError as exc:
            assert exc.diagnostics
            return
        check_result(result, data.count(b"\n") + 1)
        assert result.files == (str(path),)


include_line = st.sampled_from(
    [
        "include a.conf",
        "include b.conf",
        "include *.conf",
        "include sub/*.conf",
        "include ../*.conf",
        "includea none.conf",
        "x",
        "$D=1",
        "${D}",
        "{",
        "}",
    ]
)
tree = st.dictionaries(
    st.sampled_from(["a.conf", "b.conf", "sub/c.conf"]),
    st.lists(include_line, max_size=5).map("\n".join),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(include_line, max_size=5).map("\n".join), tree)
def test_random_include_trees(main: str, files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sub").mkdir()
        for name, body in files.items():
            (root / name).write_text(body)
        (root / "main.cfg").write_text(main)
        try:
            with time_limit(TIME_LIMIT):
                result = preprocess_file(root / "main.cfg")
        except ConfigError as exc:
            assert all(d.code for d in exc.diagnostics)
            return
        check_result(result)
        assert result.files[0] == str(root / "main.cfg")
