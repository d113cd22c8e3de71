"""Load a configuration file (keepalived.conf or YAML) into the model with diagnostics."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .env import Environment
from .errors import ConfigError, Diagnostic, Severity, SourceLoc, error
from .model import Config
from .schema import Ctx, build_block, iter_specs
from .spec import ROOT
from .tree import Node, parse_lines
from .validate import validate

KEEPALIVED_DEFAULT = "/etc/keepalived/keepalived.conf"
PYVRRPD_DEFAULT = "/etc/pyvrrpd/pyvrrpd.yaml"


@dataclass(frozen=True)
class LoadResult:
    """A loaded configuration and everything said about it."""

    config: Config
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...]
    syntax: str  # "keepalived" or "yaml"

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)


def default_config_path() -> str:
    """keepalived's default file, falling back to pyvrrpd's YAML default."""
    if os.path.exists(KEEPALIVED_DEFAULT) or not os.path.exists(PYVRRPD_DEFAULT):
        return KEEPALIVED_DEFAULT
    return PYVRRPD_DEFAULT


def detect_syntax(path: str, head: str) -> str:
    """``yaml`` for .yaml/.yml files, ``keepalived`` for .conf files (a keepalived.conf is
    never reinterpreted); any other name: ``yaml`` when the first statement line looks
    like YAML (``---`` or ``key:``), else ``keepalived``."""
    if path.endswith((".yaml", ".yml")):
        return "yaml"
    if path.endswith(".conf"):
        return "keepalived"
    for raw in head.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        return "yaml" if line == "---" or (line.endswith(":") and " " not in line) else "keepalived"
    return "keepalived"


def build_config(nodes: Sequence[Node], ctx: Ctx) -> Config:
    """Build the model from a statement tree (from either front end)."""
    ctx.all_specs = {f"{s.name}#{id(s)}": s for s in iter_specs(ROOT)}
    config = build_block(ROOT, None, nodes, ctx)
    assert isinstance(config, Config)
    return config


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a configuration is loaded.

    Loading allocates a few objects per line (lines, tokens, nodes, model blocks) and
    nearly all of them stay alive until the model is built, so the collector's periodic
    passes over the growing heap find nothing to free yet cost about a third of the load
    time on large files. The load runs synchronously, so nothing else is held off; cycles
    made meanwhile are collected at the next pass after it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_config(
    path: str | os.PathLike[str],
    *,
    config_id: str | None = None,
    env: Environment | None = None,
    syntax: str | None = None,
) -> LoadResult:
    """Read, preprocess, parse, build and validate a configuration file.

    Raises ConfigError only when no model can be built at all (unreadable file, broken
    block structure, preprocessor errors); other problems come back as diagnostics.
    """
    with _gc_paused():
        return _load(os.fspath(path), config_id, env or Environment(), syntax)


def _load(path: str, config_id: str | None, env: Environment, syntax: str | None) -> LoadResult:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        raise ConfigError(
            error(
                SourceLoc(path, 0),
                f"cannot read configuration: {exc.strerror}",
                "check the path given with -f/--config",
                "unreadable",
            )
        ) from None
    syntax = syntax or detect_syntax(path, head)
    ctx = Ctx()
    if syntax == "yaml":
        from .yaml_front import yaml_to_nodes

        nodes = yaml_to_nodes(Path(path).read_text("utf-8", "replace"), path, ROOT)
        files: tuple[str, ...] = (path,)
    else:
        from .preprocess import preprocess_file

        pre = preprocess_file(path, config_id=config_id)
        ctx.diagnostics.extend(pre.warnings)
        nodes = parse_lines(pre.lines)
        files = pre.files
    config = build_config(nodes, ctx)
    diags = [*ctx.diagnostics, *validate(config, env)]
    return LoadResult(config, tuple(diags), files, syntax)
