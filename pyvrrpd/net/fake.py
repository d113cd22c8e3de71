"""A NetBackend in memory: records every call and keeps a small model of the kernel.

For fast tests of the VRRP shell: addresses, routes and rules are sets with the same
idempotence as the kernel; links can be added, flipped up and down (which feeds every
:meth:`FakeNetBackend.watch_links` iterator) and failures can be injected per method.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pyvrrpd.net.backend import (
    AddressInfo,
    AddressSpec,
    IPAddress,
    LinkEvent,
    LinkInfo,
    NetError,
    RouteSpec,
    RuleSpec,
    VmacSpec,
)
from pyvrrpd.net.frames import vrrp_mac

IFF_UP_RUNNING = 0x41


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: method name and its arguments."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class FakeNetBackend:
    """Implements NetBackend without touching the system."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.links: dict[str, LinkInfo] = {}
        self.addresses: dict[str, list[AddressSpec]] = {}
        self.routes: list[RouteSpec] = []
        self.rules: list[RuleSpec] = []
        self.vmacs: dict[str, VmacSpec] = {}
        self.failures: dict[str, list[NetError]] = {}
        self._watchers: list[asyncio.Queue[LinkEvent]] = []
        self._next_index = 1
        self.warmed: list[tuple[AddressSpec, ...]] = []  # warm() calls (not in `calls`)

    # -- test controls -------------------------------------------------------------

    def add_link(self, name: str, mac: bytes | None = None, up: bool = True) -> LinkInfo:
        """Create an interface (MAC 02:00:00:00:00:INDEX unless given)."""
        index = self._next_index
        self._next_index += 1
        info = LinkInfo(
            index=index,
            name=name,
            mac=mac if mac is not None else bytes((2, 0, 0, 0, 0, index & 0xFF)),
            flags=IFF_UP_RUNNING if up else 0,
            mtu=1500,
        )
        self.links[name] = info
        self.addresses.setdefault(name, [])
        return info

    def set_link(self, name: str, up: bool) -> None:
        """Flip an interface's state; watchers see a LinkEvent if it changed."""
        info = self._link(name)
        if info.up == up:
            return
        self.links[name] = replace(info, flags=IFF_UP_RUNNING if up else 0)
        self._emit(LinkEvent(name, info.index, up))

    def remove_link(self, name: str) -> None:
        """Delete an interface (watchers see it go down)."""
        info = self.links.pop(name)
        self.addresses.pop(name, None)
        if info.up:
            self._emit(LinkEvent(name, info.index, False))

    def fail_next(self, method: str, error: NetError) -> None:
        """Make the next call of `method` raise `error`."""
        self.failures.setdefault(method, []).append(error)

    def called(self, method: str) -> list[Call]:
        """Recorded calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    def has_address(self, ifname: str, address: str) -> bool:
        """Whether ``"10.0.0.1/24"``-style `address` is on `ifname`."""
        want = ipaddress.ip_interface(address)
        return any(s.address == want for s in self.addresses.get(ifname, []))

    # -- internals -----------------------------------------------------------------

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(method, args, kwargs))
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def _link(self, name: str) -> LinkInfo:
        try:
            return self.links[name]
        except KeyError:
            raise NetError(f"interface {name}: No such device", errno.ENODEV) from None

    def _emit(self, event: LinkEvent) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)

    # -- NetBackend ----------------------------------------------------------------

    def warm(self, specs: Sequence[AddressSpec]) -> None:
        """Note the preparation (it changes nothing, so it is not a recorded call)."""
        self.warmed.append(tuple(specs))

    async def add_address(self, spec: AddressSpec) -> None:
        """Add (idempotent); NetError(ENODEV) for an unknown interface."""
        self._record("add_address", spec)
        self._link(spec.dev)
        present = self.addresses[spec.dev]
        if not any(s.address == spec.address for s in present):
            present.append(spec)

    async def remove_address(self, spec: AddressSpec) -> None:
        """Remove (idempotent)."""
        self._record("remove_address", spec)
        present = self.addresses.get(spec.dev, [])
        self.addresses[spec.dev] = [s for s in present if s.address != spec.address]

    async def list_addresses(self, ifname: str, version: int | None = None) -> list[AddressInfo]:
        """The addresses added so far."""
        self._record("list_addresses", ifname, version)
        index = self._link(ifname).index
        return [
            AddressInfo(s.address, index, s.label, int(s.scope), 0x02 if s.nodad else 0)
            for s in self.addresses[ifname]
            if version is None or s.version == version
        ]

    async def add_route(self, spec: RouteSpec) -> None:
        """Add (idempotent)."""
        self._record("add_route", spec)
        if spec not in self.routes:
            self.routes.append(spec)

    async def remove_route(self, spec: RouteSpec) -> None:
        """Remove (idempotent)."""
        self._record("remove_route", spec)
        self.routes = [r for r in self.routes if r != spec]

    async def add_rule(self, spec: RuleSpec) -> None:
        """Add (idempotent)."""
        self._record("add_rule", spec)
        if spec not in self.rules:
            self.rules.append(spec)

    async def remove_rule(self, spec: RuleSpec) -> None:
        """Remove (idempotent)."""
        self._record("remove_rule", spec)
        self.rules = [r for r in self.rules if r != spec]

    async def send_garp(
        self, ifname: str, address: ipaddress.IPv4Address, mac: bytes | None = None
    ) -> None:
        """Record a gratuitous ARP (with the MAC it would carry)."""
        self._record("send_garp", ifname, address, mac=mac or self._link(ifname).mac)

    async def send_na(
        self,
        ifname: str,
        address: ipaddress.IPv6Address,
        mac: bytes | None = None,
        router: bool | None = None,
    ) -> None:
        """Record an unsolicited NA."""
        self._record("send_na", ifname, address, mac=mac or self._link(ifname).mac, router=router)

    async def create_vmac(self, spec: VmacSpec) -> LinkInfo:
        """Create a macvlan link with the VRRP MAC."""
        self._record("create_vmac", spec)
        parent = self._link(spec.parent)
        mac = spec.mac if spec.mac is not None else vrrp_mac(spec.vrid, spec.version)
        existing = self.links.get(spec.ifname)
        if existing is not None and spec.ifname not in self.vmacs:
            raise NetError(f"{spec.ifname} exists and is not a macvlan", errno.EEXIST)
        if existing is None:
            info = self.add_link(spec.ifname, mac=mac)
            self.links[spec.ifname] = replace(info, kind="macvlan", parent=parent.index)
        self.vmacs[spec.ifname] = spec
        return self.links[spec.ifname]

    async def delete_vmac(self, ifname: str) -> None:
        """Delete a macvlan (idempotent)."""
        self._record("delete_vmac", ifname)
        if self.vmacs.pop(ifname, None) is not None:
            self.remove_link(ifname)

    async def get_link(self, ifname: str) -> LinkInfo:
        """The link, or NetError(ENODEV)."""
        self._record("get_link", ifname)
        return self._link(ifname)

    async def primary_address(self, ifname: str, version: int) -> IPAddress | None:
        """First IPv4 address, or first IPv6 link-local, added so far."""
        self._record("primary_address", ifname, version)
        for spec in self.addresses.get(ifname, []):
            ip = spec.address.ip
            if spec.version == version and (version == 4 or ip.is_link_local):
                return ip
        return None

    def watch_links(self) -> FakeLinkWatch:
        """Events from set_link/remove_link from now on."""
        return FakeLinkWatch(self)


class FakeLinkWatch:
    """LinkWatch over a FakeNetBackend; subscribed from creation."""

    def __init__(self, backend: FakeNetBackend) -> None:
        self._backend = backend
        self._queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        backend._watchers.append(self._queue)

    async def start(self) -> None:
        """Nothing to do: subscribed at creation."""

    def __aiter__(self) -> FakeLinkWatch:
        return self

    async def __anext__(self) -> LinkEvent:
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop receiving events."""
        if self._queue in self._backend._watchers:
            self._backend._watchers.remove(self._queue)
