"""Fuzz the configuration front end (``load_config``): mutated real configurations
(etc/ and keepalived's samples), as text and as bytes, give a LoadResult or ConfigError,
never another exception and never a hang (a time limit per example).

Long mode: ``python -m bench.fuzz --config-cases 100000``.
"""

from __future__ import annotations

import contextlib
import random
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrpd.config.errors import ConfigError, Severity
from pyvrrpd.config.load import LoadResult, load_config

from .mutate import SAMPLES, corpus_configs, corpus_tokens, mutate_config, mutate_config_bytes

TIME_LIMIT = 10.0  # per example; generous so a busy CI machine does not fail on slowness
CONFIGS = corpus_configs()
TOKENS = corpus_tokens(CONFIGS)
NAMES = [name for name, _ in CONFIGS]
TEXT = dict(CONFIGS)


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"load_config took over {TIME_LIMIT} s")


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the body after ``seconds`` (SIGALRM; main thread only)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_bytes(name: str, data: bytes) -> LoadResult | ConfigError:
    """load_config on ``data`` written as ``name`` (the suffix picks the syntax)."""
    suffix = ".yaml" if name.endswith(".yaml") else ".conf"
    with tempfile.TemporaryDirectory(prefix="pyvrrpd-fuzz-") as tmp:
        path = Path(tmp) / f"keepalived{suffix}"
        path.write_bytes(data)
        try:
            with time_limit(TIME_LIMIT):
                result = load_config(path)
        except ConfigError as exc:
            assert exc.diagnostics, "ConfigError without a diagnostic"
            assert any(d.severity is Severity.ERROR for d in exc.diagnostics)
            return exc
    assert isinstance(result, LoadResult)
    assert result.syntax == ("yaml" if suffix == ".yaml" else "keepalived")
    for d in result.diagnostics:
        assert d.message and d.severity in (Severity.ERROR, Severity.WARNING)
    return result


fast = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_corpus_itself_loads() -> None:
    """The unmutated seeds reach the model (so mutations start from deep inputs)."""
    assert len(CONFIGS) >= 6
    for name, text in CONFIGS:
        res = load_bytes(name, text.encode())
        assert isinstance(res, LoadResult), f"{name}: {res}"


def test_keepalived_samples_are_in_the_corpus() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent (the shared corpus of keepalived samples)")
    assert sum(1 for n in NAMES if n.startswith("keepalived.conf")) >= 20


@fast
@given(st.sampled_from(NAMES), st.randoms(use_true_random=False))
def test_mutated_configs(name: str, rng: random.Random) -> None:
    load_bytes(name, mutate_config(TEXT[name], rng, TOKENS).encode())


@fast
@given(st.sampled_from(NAMES), st.randoms(use_true_random=False))
def test_byte_mutated_configs(name: str, rng: random.Random) -> None:
    load_bytes(name, mutate_config_bytes(TEXT[name].encode(), rng))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes(data: bytes, yaml: bool) -> None:
    load_bytes("x.yaml" if yaml else "x.conf", data)


def test_mutations_reach_both_outcomes() -> None:
    """Seeded mutations give both outcomes, models with errors among them."""
    rng = random.Random(7)
    seen = {"config_error": 0, "clean": 0, "with_errors": 0}
    for _ in range(300):
        name = rng.choice(NAMES)
        res = load_bytes(name, mutate_config(TEXT[name], rng, TOKENS).encode())
        if isinstance(res, ConfigError):
            seen["config_error"] += 1
        else:
            seen["with_errors" if res.errors else "clean"] += 1
    assert all(v >= 10 for v in seen.values()), seen
