"""Crash takeover: the state file of what we hold, and ``pyvrrpctl release``.

While it runs, the daemon keeps ``/run/pyvrrpd/state.json`` (replaced atomically on
each change) listing the VIPs it installed and, for every instance that is MASTER,
what a priority-0 advert needs (interface, family, VRID, version, source, destinations,
authentication, checksum form, addresses, interval). A clean stop empties it.

After a crash (``kill -9``, OOM), ``pyvrrpctl release`` (systemd's ExecStopPost) reads
it, removes those VIPs and sends one priority-0 advert per recorded master, so the
backup takes over after its skew time instead of the whole master-down interval; after
a clean stop there is nothing recorded, and release does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import socket
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .vrrp.packet import Advert, ChecksumForm, IPAddress, encode_advert
from .vrrp.transport import SocketOptions, open_socket

if TYPE_CHECKING:
    from .vrrp.engine import VrrpEngine
    from .vrrp.instance import VrrpInstance

log = logging.getLogger("pyvrrpd")

DEFAULT_STATE = "/run/pyvrrpd/state.json"
STATE_VERSION = 1

_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


@dataclass(frozen=True, slots=True)
class VipRecord:
    """An address we installed: ``10.0.0.1/24`` on ``eth0``."""

    instance: str
    address: str
    dev: str


@dataclass(frozen=True, slots=True)
class MasterRecord:
    """What a priority-0 advert of one master instance needs."""

    instance: str
    ifname: str
    family: int
    vrid: int
    version: int
    src: str
    destinations: tuple[str, ...]
    mcast_group: str
    auth_type: int
    auth_data: str  # hex
    checksum: str
    addresses: tuple[str, ...]
    advert_int: float

    def advert(self) -> Advert:
        """The priority-0 advert."""
        return Advert(
            version=self.version,
            vrid=self.vrid,
            priority=0,
            max_adver_int=round(self.advert_int * 100),
            addresses=tuple(ipaddress.ip_address(a) for a in self.addresses),
            family=self.family,
            auth_type=self.auth_type,
            auth_data=bytes.fromhex(self.auth_data).ljust(8, b"\0") if self.version == 2 else b"",
        )

    def payload(self, dst: IPAddress) -> bytes:
        """The encoded priority-0 message for one destination."""
        return encode_advert(
            self.advert(),
            src=ipaddress.ip_address(self.src),
            dst=dst,
            checksum_form=ChecksumForm(self.checksum),
            mcast_group=ipaddress.ip_address(self.mcast_group),
        )


@dataclass(frozen=True, slots=True)
class HeldState:
    """The whole state file."""

    pid: int
    vips: tuple[VipRecord, ...] = ()
    masters: tuple[MasterRecord, ...] = ()
    version: int = STATE_VERSION
    netns: str = ""  # the daemon's network namespace, e.g. "net:[4026531840]"

    @property
    def empty(self) -> bool:
        return not self.vips and not self.masters

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> HeldState:
        """Parse a state file (ValueError when it is not one)."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("not a pyvrrpd state file (or another version)")
        try:
            return cls(
                pid=int(data["pid"]),
                netns=str(data.get("netns", "")),
                vips=tuple(VipRecord(**v) for v in data.get("vips", ())),
                masters=tuple(
                    MasterRecord(
                        **{
                            **m,
                            "destinations": tuple(m["destinations"]),
                            "addresses": tuple(m["addresses"]),
                        }
                    )
                    for m in data.get("masters", ())
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed state file: {exc}") from exc


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temp file in the same directory, 0600)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_netns() -> str:
    """Our network namespace's identity (``net:[inode]``), or "" when unknown."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return ""


def read_state(path: str) -> HeldState | None:
    """The state file, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as fh:
            return HeldState.from_json(fh.read())
    except FileNotFoundError:
        return None


# ------------------------------------------------------------------ the daemon's side


def master_record(inst: VrrpInstance, ifname: str) -> MasterRecord:
    """The record of a master instance sending from ``ifname``."""
    s = inst.settings
    dests = [str(p) for p in s.peers] if s.unicast else [str(s.mcast_group)]
    return MasterRecord(
        instance=s.name,
        ifname=ifname,
        family=s.family,
        vrid=s.vrid,
        version=s.version,
        src=str(inst.address),
        destinations=tuple(dests),
        mcast_group=str(s.mcast_group),
        auth_type=int(s.auth_type),
        auth_data=s.auth_data.hex(),
        checksum=s.checksum.value,
        addresses=tuple(str(a) for a in s.advert_addresses),
        advert_int=s.advert_int,
    )


def vip_records(inst: VrrpInstance) -> list[VipRecord]:
    """The addresses an instance installs as master."""
    s = inst.settings
    return [VipRecord(s.name, str(v.address), v.dev) for v in (*s.vips, *s.excluded_vips)]


class StateRecorder:
    """Keeps the state file in step with the engine's masters (on every state action)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.vips_on: set[str] = set()  # instances whose VIPs are installed
        self.last: str | None = None
        self.writes = 0
        self.engine: VrrpEngine | None = None
        self.netns = current_netns()
        self.disabled = False
        self._lock: int | None = None
        self._refresh_pending = False
        self._fingerprint_written: tuple[object, ...] | None = None

    def _locked(self) -> bool:
        """Hold ``PATH.lock`` for our lifetime: one daemon per state file."""
        if self._lock is not None or self.disabled:
            return not self.disabled
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("state file %s disabled: %s", self.path, exc)
            self.disabled = True
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning(
                "state file %s is used by another pyvrrpd (use --state-file); not recording",
                self.path,
            )
            self.disabled = True
            return False
        self._lock = fd
        return True

    def attach(self, engine: VrrpEngine | None) -> None:
        """Listen to every instance of ``engine`` (again after a reload); write now."""
        self.engine = engine
        if engine is not None:
            for inst in engine.instances.values():
                if self._on_action not in inst.listeners:
                    inst.listeners.append(self._on_action)
            self.vips_on &= set(engine.instances)
        self.refresh()

    def _on_action(self, inst: VrrpInstance, action: object) -> None:
        kind = type(action).__name__
        if kind == "AddVips":
            self.vips_on.add(inst.name)
        elif kind in ("RemoveVips", "Stopped"):
            self.vips_on.discard(inst.name)
        # Written once the current callbacks are done: the listener runs between adding the
        # VIPs and the gratuitous ARP, and the fsync'd write costs milliseconds.
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        if self._refresh_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests driving the recorder by hand)
            self.refresh()
            return
        self._refresh_pending = True

        def run() -> None:
            self._refresh_pending = False
            self.refresh()

        loop.call_soon(run)

    def held(self) -> HeldState:
        """What we hold now."""
        vips: list[VipRecord] = []
        masters: list[MasterRecord] = []
        engine = self.engine
        if engine is not None:
            for name, inst in engine.instances.items():
                if name in self.vips_on:
                    vips += vip_records(inst)
                if inst.fsm.state.value == "MASTER":
                    # the interface its adverts leave from (the VMAC unless vmac_xmit_base)
                    ifname = engine.rx_if.get(name, inst.settings.ifname)
                    masters.append(master_record(inst, ifname))
        return HeldState(os.getpid(), tuple(vips), tuple(masters), netns=self.netns)

    def _fingerprint(self) -> tuple[object, ...]:
        """What the file's content is made of, cheaply: building the records and their
        JSON for hundreds of instances every second costs more than sending the adverts."""
        engine = self.engine
        if engine is None:
            return (None,)
        rx_if = engine.rx_if
        parts = tuple(
            (name, id(inst), id(inst.settings), inst.address, inst.fsm.state, rx_if.get(name))
            for name, inst in engine.instances.items()
        )
        return (frozenset(self.vips_on), parts)

    def refresh(self) -> None:
        """Write the file when what we hold changed."""
        fingerprint = self._fingerprint()
        if fingerprint == self._fingerprint_written:
            return
        self.write(self.held())
        if self.last is not None:  # (not refused or failed: try again next time)
            self._fingerprint_written = fingerprint

    def write(self, state: HeldState) -> None:
        text = state.to_json()
        if text == self.last or not self._locked():
            return
        try:
            write_atomic(self.path, text)
        except OSError as exc:
            log.warning("cannot write state file %s: %s", self.path, exc)
            return
        self.last = text
        self.writes += 1

    def clear(self) -> None:
        """A clean stop: nothing is held any more."""
        self.engine = None
        self.vips_on.clear()
        self._fingerprint_written = None
        self.write(HeldState(os.getpid(), netns=self.netns))
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


# --------------------------------------------------------------------- the release


@dataclass
class ReleaseReport:
    """What ``release`` did."""

    removed: list[str] = field(default_factory=list)
    adverts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: str = ""

    def lines(self) -> list[str]:
        out = [f"removed {a}" for a in self.removed]
        out += [f"sent priority 0 for {a}" for a in self.adverts]
        out += [f"error: {e}" for e in self.errors]
        if self.refused:
            out.append(f"refused: {self.refused}")
        return out or ["nothing to release"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not us)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ancillary(family: int, ifindex: int, src: IPAddress) -> list[tuple[int, int, bytes]]:
    if family == 6:
        return [(socket.IPPROTO_IPV6, _IPV6_PKTINFO, src.packed + struct.pack("=I", ifindex))]
    return [(socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=i4s4s", ifindex, src.packed, bytes(4)))]


def send_priority_zero(rec: MasterRecord) -> int:
    """Send the priority-0 advert of one record to each destination; returns how many."""
    ifindex = socket.if_nametoindex(rec.ifname)
    af = socket.AF_INET if rec.family == 4 else socket.AF_INET6
    src = ipaddress.ip_address(rec.src)
    sock = open_socket(SocketOptions(af, rec.ifname, ifindex, None))
    sent = 0
    try:
        sock.setblocking(True)
        for d in rec.destinations:
            dst = ipaddress.ip_address(d)
            addr: tuple[Any, ...] = (str(dst), 0, 0, ifindex) if rec.family == 6 else (str(dst), 0)
            sock.sendmsg([rec.payload(dst)], _ancillary(rec.family, ifindex, src), 0, addr)
            sent += 1
    finally:
        sock.close()
    return sent


async def _remove_vips(vips: Iterable[VipRecord], report: ReleaseReport) -> None:
    from .net.backend import AddressSpec
    from .net.linux import LinuxBackend

    async with LinuxBackend() as net:
        for v in vips:
            try:
                spec = AddressSpec(address=ipaddress.ip_interface(v.address), dev=v.dev)
                await net.remove_address(spec)
                report.removed.append(f"{v.address} dev {v.dev} ({v.instance})")
            except Exception as exc:
                report.errors.append(f"remove {v.address} dev {v.dev}: {exc}")


def release(path: str = DEFAULT_STATE, *, force: bool = False) -> ReleaseReport:
    """Give up what a dead daemon held: priority-0 adverts first, then the VIPs.

    Refuses while the recorded process is alive (unless ``force``): that daemon still
    owns its VIPs. The file is emptied afterwards, so a second run does nothing.
    """
    report = ReleaseReport()
    try:
        state = read_state(path)
    except (OSError, ValueError) as exc:
        report.errors.append(f"{path}: {exc}")
        return report
    if state is None or state.empty:
        return report
    if pid_alive(state.pid) and not force:
        report.refused = f"pyvrrpd (pid {state.pid}) is still running"
        return report
    here = current_netns()
    if state.netns and here and state.netns != here and not force:
        report.refused = (
            f"recorded in network namespace {state.netns}, this is {here}: "
            "run release there (ip netns exec NS pyvrrpctl release)"
        )
        return report
    for rec in state.masters:
        try:
            send_priority_zero(rec)
            report.adverts.append(f"{rec.instance} (VRID {rec.vrid} on {rec.ifname})")
        except OSError as exc:
            report.errors.append(f"advert of {rec.instance}: {exc}")
    if state.vips:
        asyncio.run(_remove_vips(state.vips, report))
    try:
        write_atomic(path, HeldState(state.pid, netns=state.netns).to_json())
    except OSError as exc:
        report.errors.append(f"cannot empty {path}: {exc}")
    return report
