"""Every script a configuration would execute, with where it was written (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SourceLoc
from .model import Config
from .model_checks import MiscCheck

_NOTIFY_FIELDS = (
    "notify",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify_deleted",
    "notify_master_rx_lower_pri",
)


@dataclass(frozen=True, slots=True)
class ScriptUse:
    """One configured command line: its text, location and what runs it."""

    command: str
    loc: SourceLoc | None
    what: str


def _loc(obj: object, field: str) -> SourceLoc | None:
    locs = getattr(obj, "locs", {})
    loc: SourceLoc | None = locs.get(field, getattr(obj, "loc", None))
    return loc


def scripts_used(config: Config) -> list[ScriptUse]:
    """Scripts that would run: tracked vrrp_scripts, notify scripts, LVS scripts."""
    out: list[ScriptUse] = []
    tracked = {t.name for i in config.vrrp_instances for t in i.track_scripts}
    tracked |= {t.name for g in config.vrrp_sync_groups for t in g.track_scripts}
    for s in config.vrrp_scripts:
        if s.script and s.name in tracked:
            out.append(ScriptUse(s.script, _loc(s, "script"), f"vrrp_script {s.name}"))
    for obj in (*config.vrrp_instances, *config.vrrp_sync_groups):
        for field in _NOTIFY_FIELDS:
            text = getattr(obj, field, None)
            if text:
                out.append(ScriptUse(text, _loc(obj, field), f"{getattr(obj, 'name', '')} {field}"))
    g = config.global_defs
    for field in (
        "notify_fifo_script",
        "vrrp_notify_fifo_script",
        "lvs_notify_fifo_script",
        "startup_script",
        "shutdown_script",
    ):
        text = getattr(g, field, None)
        if text:
            out.append(ScriptUse(text, _loc(g, field), field))
    for vs in config.virtual_servers:
        for field in ("quorum_up", "quorum_down"):
            text = getattr(vs, field, None)
            if text:
                out.append(ScriptUse(str(text), _loc(vs, field), field))
        for rs in vs.real_servers:
            for field in ("notify_up", "notify_down"):
                text = getattr(rs, field, None)
                if text:
                    out.append(ScriptUse(str(text), _loc(rs, field), field))
            for chk in rs.checkers:
                if isinstance(chk, MiscCheck) and chk.misc_path:
                    out.append(
                        ScriptUse(" ".join(chk.misc_path), _loc(chk, "misc_path"), "MISC_CHECK")
                    )
    return out
