"""An in-memory IPVS backend for fast tests: the kernel's rules and errnos, no kernel.

It refuses what the 6.1 kernel refuses (checked in tests/ipvs/test_kernel_vm.py against
the real one) with the same errno, and records every write request it is sent.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Collection, Iterable, Sequence

from pyvrrpd.ipvs.model import (
    Dest,
    DestKey,
    FwdMethod,
    LvsTimeouts,
    Service,
    ServiceEntry,
    ServiceKey,
    SyncDaemon,
    SyncState,
    TunType,
)
from pyvrrpd.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    EditDest,
    EditService,
    Op,
    OpResult,
)

KERNEL_SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf"}
)
"""Schedulers Debian's 6.1 kernel ships as modules (no "twos" before 6.7)."""


class FakeError(Exception):
    """A refused request, carrying the kernel's errno."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.errno = code


class FakeIpvs:
    """Same interface as KernelIpvs; the table lives in `services`/`dests`.

    `calls` lists every write op (and flush/timeouts/daemon call) in order; `writes`
    counts them. `fail` maps an op to an errno to inject a failure.
    """

    def __init__(
        self,
        schedulers: Iterable[str] = KERNEL_SCHEDULERS,
        pe_names: Iterable[str] = ("sip",),
    ) -> None:
        self.schedulers = frozenset(schedulers)
        self.pe_names = frozenset(pe_names)
        self.services: dict[ServiceKey, Service] = {}
        self.dests: dict[ServiceKey, dict[DestKey, Dest]] = {}
        self.timeouts = LvsTimeouts(tcp=900, tcp_fin=120, udp=300)
        self.running: dict[SyncState, SyncDaemon] = {}
        self.calls: list[object] = []
        self.dumps = 0  # dump() calls
        self.fail: dict[Op, int] = {}

    @property
    def writes(self) -> int:
        """How many write requests were sent."""
        return len(self.calls)

    async def __aenter__(self) -> FakeIpvs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        """Nothing to close."""

    async def dump(
        self, keys: Collection[ServiceKey] | None = None
    ) -> dict[ServiceKey, ServiceEntry]:
        """A copy of the table (or of the services ``keys`` names)."""
        self.dumps += 1
        return {
            k: ServiceEntry(s, dict(self.dests[k]))
            for k, s in self.services.items()
            if keys is None or k in keys
        }

    async def apply(self, ops: Sequence[Op]) -> list[OpResult]:
        """Apply ops in order; one result per op, kernel errnos, never raises."""
        results = []
        for op in ops:
            self.calls.append(op)
            try:
                if op in self.fail:
                    raise FakeError(self.fail[op])
                self._apply(op)
            except FakeError as exc:
                results.append(OpResult(op, exc.errno, _message(exc.errno)))
            else:
                results.append(OpResult(op))
        return results

    async def flush(self) -> None:
        """Delete every service."""
        self.calls.append("flush")
        self.services.clear()
        self.dests.clear()

    async def set_timeouts(self, timeouts: LvsTimeouts) -> None:
        """Set the non-zero timeouts."""
        self.calls.append(timeouts)
        old = self.timeouts
        self.timeouts = LvsTimeouts(
            timeouts.tcp or old.tcp, timeouts.tcp_fin or old.tcp_fin, timeouts.udp or old.udp
        )

    async def get_timeouts(self) -> LvsTimeouts:
        """The current timeouts."""
        return self.timeouts

    async def start_daemon(self, daemon: SyncDaemon) -> None:
        """Start a sync daemon; EEXIST when that role already runs."""
        self.calls.append(daemon)
        if daemon.state in self.running:
            raise FakeError(errno.EEXIST)
        self.running[daemon.state] = daemon

    async def stop_daemon(self, state: SyncState) -> None:
        """Stop a sync daemon; ESRCH when it does not run."""
        self.calls.append(("stop", state))
        if self.running.pop(state, None) is None:
            raise FakeError(errno.ESRCH)

    async def daemons(self) -> list[SyncDaemon]:
        """The running daemons, master first."""
        return [self.running[s] for s in sorted(self.running)]

    # --- the kernel's rules ---------------------------------------------------------

    def _service(self, key: ServiceKey) -> Service:
        svc = self.services.get(key)
        if svc is None:
            raise FakeError(errno.ESRCH)
        return svc

    def _check_service(self, svc: Service) -> None:
        if svc.scheduler != "none" and svc.scheduler not in self.schedulers:
            raise FakeError(errno.ENOENT)
        if svc.pe_name and svc.pe_name not in self.pe_names:
            raise FakeError(errno.ENOENT)

    def _check_dest(self, svc: Service, dest: Dest) -> None:
        # same order as ip_vs_genl_set_cmd() then ip_vs_add_dest()/ip_vs_edit_dest()
        if dest.family is not svc.key.family and dest.fwd is not FwdMethod.TUN:
            raise FakeError(errno.EINVAL)
        if dest.l_threshold > dest.u_threshold:
            raise FakeError(errno.ERANGE)
        if dest.tun_type is TunType.GUE and dest.tun_port == 0:
            raise FakeError(errno.EINVAL)

    def _apply(self, op: Op) -> None:
        match op:
            case AddService(service=s):
                if s.key in self.services:
                    raise FakeError(errno.EEXIST)
                self._check_service(s)
                self.services[s.key] = s
                self.dests[s.key] = {}
            case EditService(service=s):
                self._service(s.key)
                self._check_service(s)
                self.services[s.key] = s
            case DelService(key=k):
                self._service(k)
                del self.services[k], self.dests[k]
            case AddDest(service=k, dest=d):
                self._check_dest(self._service(k), d)
                if d.key in self.dests[k]:
                    raise FakeError(errno.EEXIST)
                self.dests[k][d.key] = d
            case EditDest(service=k, dest=d):
                self._check_dest(self._service(k), d)
                if d.key not in self.dests[k]:
                    raise FakeError(errno.ENOENT)
                self.dests[k][d.key] = d
            case DelDest(service=k, key=dk):
                self._service(k)
                if self.dests[k].pop(dk, None) is None:
                    raise FakeError(errno.ENOENT)


def _message(code: int) -> str:
    return f"{errno.errorcode.get(code, '?')}: {os.strerror(code)}"
