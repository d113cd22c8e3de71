"""Pitfall warnings of the VRRP side: valid keepalived configs that likely misbehave."""

from __future__ import annotations

from typing import Any

from .env import Environment
from .errors import SourceLoc
from .model import Config
from .model_vrrp import PRIO_OWNER, State
from .schema import Ctx

PITFALL = "pitfall"


def _loc(obj: Any, field: str | None = None) -> SourceLoc | None:
    if field is not None and field in obj.locs:
        loc: SourceLoc = obj.locs[field]
        return loc
    return obj.loc  # type: ignore[no-any-return]


def check(config: Config, env: Environment, ctx: Ctx) -> None:
    """Add pitfall warnings (code ``pitfall``) for ``config`` to ``ctx``."""
    g = config.global_defs
    _scripts_without_security(config, ctx)
    scripts = {s.name: s for s in config.vrrp_scripts}
    for inst in config.vrrp_instances:
        name = inst.name
        if inst.state is State.MASTER and inst.priority is None:
            ctx.warn(
                _loc(inst, "state"),
                f"({name}) 'state MASTER' without 'priority' makes this "
                "node the address owner (priority 255)",
                "set an explicit priority below 255 unless this node really owns the addresses",
                PITFALL,
            )
        if inst.priority == PRIO_OWNER and inst.state is State.BACKUP:
            ctx.warn(
                _loc(inst, "priority"),
                f"({name}) priority 255 (address owner) with "
                "'state BACKUP': the owner always becomes MASTER",
                "use a priority below 255 for a backup node",
                PITFALL,
            )
        if inst.effective_strict(g) and inst.accept is None and inst.effective_priority != 255:
            ctx.warn(
                _loc(inst, "strict_mode") if "strict_mode" in inst.locs else _loc(g, "vrrp_strict"),
                f"({name}) strict mode implies no_accept: the "
                "virtual addresses will not answer (ping, connections) on this node",
                "add 'accept' if services must be reached on the VIPs",
                PITFALL,
            )
        for t in inst.track_scripts:
            s = scripts.get(t.name)
            weight = t.weight if t.weight is not None else (s.weight.value if s else None)
            if weight == 0:
                ctx.warn(
                    t.loc,
                    f"({name}) track_script {t.name} has weight 0: a failing check "
                    "puts the instance in FAULT state",
                    "give a weight (e.g. 'weight -20') to lower the priority instead",
                    PITFALL,
                )
        for t in (*inst.track_interfaces, *inst.track_files, *inst.track_processes):
            if t.weight == 0 and inst.effective_priority != PRIO_OWNER:
                ctx.warn(
                    t.loc,
                    f"({name}) tracker {t.name} has weight 0: its failure puts the "
                    "instance in FAULT state",
                    "use a non-zero weight to change priority instead",
                    PITFALL,
                )
    for sg in config.vrrp_sync_groups:
        ints = {}
        for member in sg.group:
            found = config.instance(member)
            if found is not None:
                ints[member] = found.advert_int
        if len(set(ints.values())) > 1:
            ctx.warn(
                sg.loc,
                f"sync group {sg.name} members use different advert_int "
                f"({', '.join(f'{k}={v:g}' for k, v in ints.items())})",
                "use one advert_int so members fail over together",
                PITFALL,
            )


def _scripts_without_security(config: Config, ctx: Ctx) -> None:
    g = config.global_defs
    if g.enable_script_security:
        return
    for obj in (*config.vrrp_scripts, *config.vrrp_instances, *config.vrrp_sync_groups):
        for field in (
            "script",
            "notify",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
        ):
            if getattr(obj, field, None):
                ctx.warn(
                    _loc(obj, field),
                    "scripts are configured but enable_script_security is "
                    "not set: keepalived runs them as root and refuses unsafe ones",
                    "add 'enable_script_security' (and script_user) to global_defs",
                    PITFALL,
                )
                return
