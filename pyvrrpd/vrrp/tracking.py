"""Which trackers each instance follows, and the effective priority they give (pure).

The shell reports tracked objects' states (interfaces up/down, scripts, files) by name;
this table knows which instances follow each object with which weight, and returns the
instances whose effective priority or fault changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..config.model import Config, VrrpInstance
from ..config.model_vrrp_items import TrackedObject, Weight
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
    kinds: list[tuple[TrackerKind, Sequence[TrackedObject], Mapping[str, Weight], int]] = [
        (
            TrackerKind.SCRIPT,
            inst.track_scripts,
            {s.name: s.weight for s in config.vrrp_scripts},
            0,
        ),
        (TrackerKind.FILE, inst.track_files, {f.name: f.weight for f in config.track_files}, 1),
        (
            TrackerKind.PROCESS,
            inst.track_processes,
            {p.name: p.weight for p in config.track_processes},
            0,
        ),
    ]
    for kind, lines, weights, default in kinds:
        for t in lines:
            base = weights.get(t.name)
            weight = t.weight if t.weight is not None else (base.value if base else default)
            reverse = t.reverse if t.reverse is not None else (base.reverse if base else False)
            out.append(TrackerStatus(t.name, kind, None, weight, reverse))
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
