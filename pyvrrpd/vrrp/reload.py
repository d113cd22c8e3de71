"""What a configuration reload changes on the VRRP side (pure).

Each instance is classified by comparing its resolved settings (and trackers and sync
group) before and after:

- unchanged: left alone (state, timers and VIPs kept; no advert, no address change);
- addresses: only VIPs, excluded VIPs, routes or rules differ: changed in place;
- priority: only the base priority differs (not to or from 255): fed to the machine;
- restart: anything else (interface, VRID, version, timers, trackers, sync group...):
  the instance leaves (priority 0 when master) and starts again in BACKUP;
- removed / added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .priority import TrackerStatus
from .settings import InstanceSettings

_ADDRESS_FIELDS = {"vips": (), "excluded_vips": (), "routes": (), "rules": (), "problems": ()}
_NOTIFY_FIELDS = {
    n: None for n in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")
}


@dataclass(frozen=True, slots=True)
class InstanceView:
    """What decides how an instance reloads: settings, trackers, sync group members."""

    settings: InstanceSettings
    trackers: tuple[TrackerStatus, ...] = ()
    group: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class VrrpReloadPlan:
    """Instance names by what a reload does to them."""

    unchanged: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    @property
    def changes_anything(self) -> bool:
        return bool(self.addresses or self.priority or self.restart or self.removed or self.added)


def _core(s: InstanceSettings) -> InstanceSettings:
    return replace(s, **_ADDRESS_FIELDS, **_NOTIFY_FIELDS)  # type: ignore[arg-type]


def classify(old: InstanceView, new: InstanceView) -> frozenset[str]:
    """{"restart"}, or a subset of {"addresses", "priority"} (empty: unchanged)."""
    if old.trackers != new.trackers or old.group != new.group:
        return frozenset({"restart"})
    a, b = _core(old.settings), _core(new.settings)
    if replace(a, priority=0) != replace(b, priority=0) or (
        a.priority != b.priority and 255 in (a.priority, b.priority)
    ):
        return frozenset({"restart"})
    out = set()
    if a.priority != b.priority:
        out.add("priority")
    if any(getattr(old.settings, f) != getattr(new.settings, f) for f in _ADDRESS_FIELDS):
        out.add("addresses")
    return frozenset(out)


def plan_reload(old: Mapping[str, InstanceView], new: Mapping[str, InstanceView]) -> VrrpReloadPlan:
    """Classify every instance of the old and new configurations."""
    out: dict[str, list[str]] = {k: [] for k in ("unchanged", "addresses", "priority", "restart")}
    for name, view in new.items():
        if name in old:
            kinds = classify(old[name], view)
            for kind in kinds or ("unchanged",):
                out[kind].append(name)
    return VrrpReloadPlan(
        unchanged=tuple(out["unchanged"]),
        addresses=tuple(out["addresses"]),
        priority=tuple(out["priority"]),
        restart=tuple(out["restart"]),
        removed=tuple(n for n in old if n not in new),
        added=tuple(n for n in new if n not in old),
    )
