"""Render a model as keepalived.conf text, YAML or JSON."""

from __future__ import annotations

import json

from .model import Config
from .schema import render_block, render_text, to_plain
from .spec import ROOT
from .yaml_front import dump_yaml, nodes_to_data

FORMATS = ("keepalived", "yaml", "json")


def render_keepalived(config: Config) -> str:
    """keepalived.conf text that parses back to ``config``."""
    return render_text(render_block(ROOT, config)) + "\n"


def render_yaml(config: Config) -> str:
    """pyvrrpd YAML that parses back to ``config``."""
    return dump_yaml(nodes_to_data(render_block(ROOT, config), ROOT))


def render_json(config: Config) -> str:
    """The model as JSON (locations left out), keys in model order."""
    return json.dumps(to_plain(config), indent=2) + "\n"


def render(config: Config, fmt: str) -> str:
    """Render in one of FORMATS."""
    if fmt == "keepalived":
        return render_keepalived(config)
    if fmt == "yaml":
        return render_yaml(config)
    if fmt == "json":
        return render_json(config)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
