"""Which trackers each instance follows, and the effective priority they give (pure).

The shell reports tracked objects' states (interfaces up/down, scripts, files) by name;
this table knows which instances follow each object with which weight, and returns the
instances whose effective priority or fault changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..config.model import Config, VrrpInstance
from .priority import PriorityResult, TrackerKind, TrackerStatus, effective_priority


@dataclass(frozen=True, slots=True)
class Follow:
    """One instance following one tracked object."""

    instance: str
    status: TrackerStatus


def follows_of(config: Config, inst: VrrpInstance) -> list[TrackerStatus]:
    """The trackers of one instance, with keepalived's weights.

    The instance's own interface is tracked with weight 0 (FAULT when down) unless
    ``dont_track_primary``; ``track_interface`` lines default to weight 0; scripts and
    files default to their own block's weight.
    """
    out: list[TrackerStatus] = []
    if inst.interface and not inst.dont_track_primary:
        out.append(TrackerStatus(inst.interface, TrackerKind.INTERFACE))
    for t in inst.track_interfaces:
        if t.name == inst.interface and not inst.dont_track_primary:
            continue
        out.append(
            TrackerStatus(t.name, TrackerKind.INTERFACE, None, t.weight or 0, bool(t.reverse))
        )
    scripts = {s.name: s for s in config.vrrp_scripts}
    for t in inst.track_scripts:
        script = scripts.get(t.name)
        base = script.weight if script is not None else None
        weight = t.weight if t.weight is not None else (base.value if base else 0)
        reverse = t.reverse if t.reverse is not None else (base.reverse if base else False)
        out.append(TrackerStatus(t.name, TrackerKind.SCRIPT, None, weight, reverse))
    files = {f.name: f for f in config.track_files}
    for t in inst.track_files:
        tf = files.get(t.name)
        fbase = tf.weight if tf is not None else None
        weight = t.weight if t.weight is not None else (fbase.value if fbase else 1)
        reverse = t.reverse if t.reverse is not None else (fbase.reverse if fbase else False)
        out.append(TrackerStatus(t.name, TrackerKind.FILE, None, weight, reverse))
    procs = {p.name: p for p in config.track_processes}
    for t in inst.track_processes:
        tp = procs.get(t.name)
        pbase = tp.weight if tp is not None else None
        weight = t.weight if t.weight is not None else (pbase.value if pbase else 0)
        reverse = t.reverse if t.reverse is not None else (pbase.reverse if pbase else False)
        out.append(TrackerStatus(t.name, TrackerKind.PROCESS, None, weight, reverse))
    return out


class TrackerTable:
    """Tracker states per instance and the effective priority they give."""

    def __init__(self, base: dict[str, int], trackers: dict[str, list[TrackerStatus]]) -> None:
        self.base = dict(base)
        self.trackers = {name: list(ts) for name, ts in trackers.items()}
        self.results: dict[str, PriorityResult] = {
            name: effective_priority(self.base[name], ts) for name, ts in self.trackers.items()
        }

    def names(self, kind: TrackerKind) -> set[str]:
        """Every tracked object of one kind."""
        return {t.name for ts in self.trackers.values() for t in ts if t.kind is kind}

    def update(
        self, kind: TrackerKind, name: str, up: bool | None = None, value: int | None = None
    ) -> list[tuple[str, PriorityResult]]:
        """Record a new state; return (instance, result) for every instance that changed."""
        changed: list[tuple[str, PriorityResult]] = []
        for inst, ts in self.trackers.items():
            touched = False
            for i, t in enumerate(ts):
                if t.kind is kind and t.name == name:
                    ts[i] = replace(t, up=up, value=value)
                    touched = True
            if touched:
                result = effective_priority(self.base[inst], ts)
                if result != self.results[inst]:
                    self.results[inst] = result
                    changed.append((inst, result))
        return changed

    def statuses(self, instance: str) -> Iterable[TrackerStatus]:
        """Current tracker states of one instance."""
        return tuple(self.trackers.get(instance, ()))
