"""Line-level preprocessor of keepalived.conf (the "meta-syntax").

Turns configuration files into a flat sequence of text lines, each with the location the
user wrote it at. It handles, as keepalived 2.4's ``read_line`` does: comments (``#``/``!``
outside double quotes), ``include`` (and ``includer/m/w/b/a``) with globs and braces,
``@ID``/``@^ID`` conditional lines, ``$NAME=value`` definitions (multiline with a trailing
``\\``) and their use as ``$NAME``/``${NAME}``, the predefined ``${_PWD}``,
``${_INSTANCE}``, ``${_RANDOM [min [max]]}``, ``${_ENV VAR}``, ``${_HASH}``, ``${_BANG}``,
``~SEQ``/``~SEQx``/``~LST`` repetition, and keepalived's splitting of lines so that each
``{`` and ``}`` outside quotes stands on a line of its own.

Deliberate differences from keepalived: self-referencing definitions, include loops and
runaway repetition are reported instead of hanging; a line produced by a definition is
processed again (conditional, definition, ~SEQ) as keepalived's manual describes; lines
may be up to 64 KiB long (keepalived: 1 KiB).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from pyvrrpd.config.errors import ConfigError, Diagnostic, Severity, SourceLoc
from pyvrrpd.config.preprocess_engine import Engine, EngineOptions

__all__ = ["Line", "Preprocessed", "preprocess_file", "preprocess_text"]


class Line(NamedTuple):
    """One preprocessed configuration line and where the user wrote it (a named tuple:
    there is one per line, so construction cost matters)."""

    text: str  # comment-stripped, definitions expanded, stripped; never empty
    loc: SourceLoc


@dataclass(frozen=True, slots=True)
class Preprocessed:
    """The result of preprocessing: lines, warnings, and every file that was read."""

    lines: tuple[Line, ...]
    warnings: tuple[Diagnostic, ...]
    files: tuple[str, ...]


def _finish(engine: Engine) -> Preprocessed:
    diagnostics: list[Diagnostic] = []
    seen: set[tuple[SourceLoc | None, str]] = set()
    for diag in engine.diagnostics:
        key = (diag.loc, diag.message)
        if key not in seen:
            seen.add(key)
            diagnostics.append(diag)
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise ConfigError(diagnostics)
    lines = tuple(map(Line._make, engine.output))
    # The engine outlives this call as cyclic garbage (its built-in definitions refer
    # back to it): drop its copy of every line now, not at the next full collection.
    engine.output.clear()
    return Preprocessed(lines=lines, warnings=tuple(diagnostics), files=tuple(engine.files))


def _options(
    config_id: str | None,
    instance: str | None,
    env: Mapping[str, str] | None,
    rng: random.Random | None,
) -> EngineOptions:
    return EngineOptions(
        config_id=config_id,
        instance=instance if instance is not None else config_id,
        env=dict(env) if env is not None else {},
        rng=rng if rng is not None else random.Random(0),
    )


def preprocess_file(
    path: str | os.PathLike[str],
    *,
    config_id: str | None = None,
    instance: str | None = None,
    env: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> Preprocessed:
    """Preprocess the configuration file at ``path`` and everything it includes.

    ``config_id`` is matched by ``@ID`` lines (None: no ``@ID`` line applies, every
    ``@^ID`` line does). ``${_INSTANCE}`` gives ``instance``, by default ``config_id``
    (keepalived uses its ``-i`` config id). ``env`` serves ``${_ENV VAR}`` (default: empty)
    and ``rng`` serves ``${_RANDOM}`` (default: seeded with 0, so output is repeatable).
    Raises ConfigError carrying every error (and warning) found.
    """
    engine = Engine(_options(config_id, instance, env, rng))
    engine.run_file(os.fspath(path))
    return _finish(engine)


def preprocess_text(
    text: str,
    *,
    filename: str = "<string>",
    base_dir: str = ".",
    config_id: str | None = None,
    instance: str | None = None,
    env: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> Preprocessed:
    """Preprocess configuration ``text`` as if read from ``filename`` in ``base_dir``.

    Relative includes and ``${_PWD}`` use ``base_dir``; other arguments are as for
    :func:`preprocess_file`.
    """
    engine = Engine(_options(config_id, instance, env, rng))
    engine.run_text(text, filename, base_dir)
    return _finish(engine)
