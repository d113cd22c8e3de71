"""Helpers of the balancer tests: configs from keepalived.conf text."""

from __future__ import annotations

from pyvrrpd.config.errors import Severity, SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.model import Config
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines


def conf(text: str) -> Config:
    """The model of keepalived.conf ``text``; fails the test on a build error."""
    lines = text.split("\n")
    nodes = parse_lines((ln, SourceLoc("t.conf", i + 1)) for i, ln in enumerate(lines))
    ctx = Ctx()
    config = build_config(nodes, ctx)
    errors = [d for d in ctx.diagnostics if d.severity is Severity.ERROR]
    assert not errors, errors
    return config
