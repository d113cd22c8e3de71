"""Reconcile a desired IPVS table with the kernel's: plan(desired, observed) -> [Op]. Pure.

What the kernel lets us edit in place (read from net/netfilter/ipvs/ip_vs_ctl.c,
ip_vs_edit_service() and __ip_vs_update_dest(), and checked in the VM tests):
- a service: scheduler, flags (persistence, one-packet, sh/mh flags), persistence
  timeout, netmask (granularity) and persistence engine -- everything but its key;
- a destination: forwarding method, weight, thresholds, tunnel type/port/flags --
  everything but its key (address, port).
So a difference in attributes is always one "set" (Edit*), never a delete and re-add,
and an identical object is left alone: a restarted daemon adopts the kernel's table
without a single write, and live connections keep their destination.

Order of the returned ops: service adds, service edits, destination adds, destination
edits, destination deletes, service deletes (capacity is added before it is removed; a
service's destinations exist only after it; a deleted service takes its destinations
with it, so they get no ops of their own). Within a group, ops are sorted by key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pyvrrpd.ipvs.model import Dest, DestKey, IpvsState, Service, ServiceEntry, ServiceKey


@dataclass(frozen=True, slots=True)
class AddService:
    """Create a service (IPVS_CMD_NEW_SERVICE)."""

    service: Service


@dataclass(frozen=True, slots=True)
class EditService:
    """Change a service's attributes in place (IPVS_CMD_SET_SERVICE)."""

    service: Service
    old: Service | None = None


@dataclass(frozen=True, slots=True)
class DelService:
    """Delete a service and, with it, its destinations (IPVS_CMD_DEL_SERVICE)."""

    key: ServiceKey


@dataclass(frozen=True, slots=True)
class AddDest:
    """Add a destination to a service (IPVS_CMD_NEW_DEST)."""

    service: ServiceKey
    dest: Dest


@dataclass(frozen=True, slots=True)
class EditDest:
    """Change a destination's attributes in place (IPVS_CMD_SET_DEST)."""

    service: ServiceKey
    dest: Dest
    old: Dest | None = None


@dataclass(frozen=True, slots=True)
class DelDest:
    """Remove a destination from a service (IPVS_CMD_DEL_DEST)."""

    service: ServiceKey
    key: DestKey


Op = AddService | EditService | DelService | AddDest | EditDest | DelDest


@dataclass(frozen=True, slots=True)
class OpResult:
    """The outcome of one op: errno 0 on success, else the kernel's errno and message."""

    op: Op
    errno: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the op succeeded."""
        return self.errno == 0

    def __str__(self) -> str:
        status = "ok" if self.ok else f"error {self.errno} ({self.message})"
        return f"{describe(self.op)}: {status}"


def describe(op: Op) -> str:
    """A one-line human description of an op, naming the object it touches."""
    match op:
        case AddService(service=s):
            return f"add service {s.key}"
        case EditService(service=s):
            return f"edit service {s.key}"
        case DelService(key=k):
            return f"delete service {k}"
        case AddDest(service=k, dest=d):
            return f"add destination {d.key} to {k}"
        case EditDest(service=k, dest=d):
            return f"edit destination {d.key} of {k}"
        case DelDest(service=k, key=dk):
            return f"delete destination {dk} from {k}"
    raise TypeError(f"not an op: {op!r}")  # pragma: no cover


def plan(
    desired: IpvsState,
    observed: IpvsState,
    *,
    owned: Collection[ServiceKey] | None = None,
    flush_unowned: bool = False,
) -> list[Op]:
    """Ops that turn `observed` into `desired`.

    Services in `observed` that are not desired are deleted only when their key is in
    `owned` (we configured them earlier) or `flush_unowned` is set; anything else in
    the kernel is left alone. A desired service is ours entirely: destinations in it
    that are not desired are deleted.
    """
    owned_keys = frozenset(owned or ())
    add_svc: list[AddService] = []
    edit_svc: list[EditService] = []
    add_dest: list[AddDest] = []
    edit_dest: list[EditDest] = []
    del_dest: list[DelDest] = []
    del_svc: list[DelService] = []

    for key in sorted(desired, key=ServiceKey.sort_key):
        want = desired[key]
        have = observed.get(key)
        if have is None:
            add_svc.append(AddService(want.service))
            add_dest.extend(AddDest(key, want.dests[dk]) for dk in _sorted(want.dests))
            continue
        if want.service != have.service:
            edit_svc.append(EditService(want.service, have.service))
        for dk in _sorted(want.dests):
            dest = want.dests[dk]
            old = have.dests.get(dk)
            if old is None:
                add_dest.append(AddDest(key, dest))
            elif old != dest:
                edit_dest.append(EditDest(key, dest, old))
        del_dest.extend(DelDest(key, dk) for dk in _sorted(have.dests) if dk not in want.dests)

    for key in sorted(observed, key=ServiceKey.sort_key):
        if key not in desired and (flush_unowned or key in owned_keys):
            del_svc.append(DelService(key))

    return [*add_svc, *edit_svc, *add_dest, *edit_dest, *del_dest, *del_svc]


def _sorted(dests: Collection[DestKey]) -> list[DestKey]:
    return sorted(dests, key=DestKey.sort_key)


def apply_to_state(state: IpvsState, ops: list[Op]) -> dict[ServiceKey, ServiceEntry]:
    """The table that results from applying `ops` to `state` (for tests and dry runs).

    Raises KeyError/ValueError where the kernel would refuse the op.
    """
    out: dict[ServiceKey, dict[DestKey, Dest]] = {k: dict(e.dests) for k, e in state.items()}
    svcs: dict[ServiceKey, Service] = {k: e.service for k, e in state.items()}
    for op in ops:
        match op:
            case AddService(service=s):
                if s.key in svcs:
                    raise ValueError(f"service {s.key} exists")
                svcs[s.key] = s
                out[s.key] = {}
            case EditService(service=s):
                if s.key not in svcs:
                    raise KeyError(s.key)
                svcs[s.key] = s
            case DelService(key=k):
                del svcs[k], out[k]
            case AddDest(service=k, dest=d):
                if d.key in out[k]:
                    raise ValueError(f"destination {d.key} exists in {k}")
                out[k][d.key] = d
            case EditDest(service=k, dest=d):
                if d.key not in out[k]:
                    raise KeyError(d.key)
                out[k][d.key] = d
            case DelDest(service=k, key=dk):
                del out[k][dk]
    return {k: ServiceEntry(svcs[k], out[k]) for k in svcs}
