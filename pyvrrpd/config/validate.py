"""Semantic validation of a whole model: both sides' checks and pitfall warnings."""

from __future__ import annotations

from . import validate_lvs, validate_vrrp
from .env import Environment
from .errors import Diagnostic
from .model import Config
from .schema import Ctx


def validate(config: Config, env: Environment) -> list[Diagnostic]:
    """Every semantic problem and pitfall in ``config``."""
    ctx = Ctx()
    validate_vrrp.check(config, env, ctx)
    validate_lvs.check(config, env, ctx)
    return ctx.diagnostics
