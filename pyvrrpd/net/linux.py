"""The Linux NetBackend: rtnetlink, AF_PACKET announcements and /proc/sys.

Addresses and link lookups (the VRRP hot path) go through our own rtnetlink codec
(:mod:`pyvrrpd.net.rtnl`, :mod:`pyvrrpd.net.rtsock`): a VIP add costs tens of
microseconds instead of a millisecond or two. Routes, rules, macvlans and link changes,
and everything when a named namespace is given (``netns``, unless ``fast=True``), go
through pyroute2's AsyncIPRoute, imported on first use: importing pyroute2 costs more
than the daemon's whole start, and a VRRP-only configuration never needs it.

Everything happens in one network namespace, ours by default or a named one (``ip netns``)
for the lab and for keepalived's ``net_namespace``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import importlib
import ipaddress
import logging
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pyvrrpd.net import rtnl
from pyvrrpd.net.announce import Announcer
from pyvrrpd.net.backend import (
    AddressInfo,
    AddressSpec,
    IPAddress,
    LinkEvent,
    LinkInfo,
    NetError,
    RouteSpec,
    RuleAction,
    RuleSpec,
    VmacSpec,
)
from pyvrrpd.net.frames import (
    build_garp,
    build_unsolicited_na,
    format_mac,
    parse_mac,
    vrrp_mac,
)
from pyvrrpd.net.rtnl import RTMGRP_LINK, pyroute2_addr_args
from pyvrrpd.net.rtsock import RtSocket
from pyvrrpd.net.sysctl import Sysctl, ipv6_conf
from pyvrrpd.net.vmac_sysctl import VmacSysctls

log = logging.getLogger("pyvrrpd.net")

IFA_F_SECONDARY = 0x01
RTNH_F_ONLINK = 0x04

_ADD_OK = (errno.EEXIST,)
#: What :meth:`LinuxBackend._ipr_call` returns when the kernel's error was one to accept.
TOLERATED = object()
_DEL_OK = (errno.EADDRNOTAVAIL, errno.ESRCH, errno.ENOENT, errno.ENODEV)


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _netlink_error() -> type[Exception]:
    """pyroute2's NetlinkError (imports pyroute2: call only where it is in use)."""
    from pyroute2.netlink.exceptions import NetlinkError

    exc: type[Exception] = NetlinkError
    return exc


def _net_error(what: str, exc: Exception) -> NetError:
    code = getattr(exc, "code", None)
    return NetError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}", code)


async def _open_iproute(netns: str | None) -> Any:
    from pyroute2 import AsyncIPRoute

    ipr = AsyncIPRoute(netns=netns) if netns else AsyncIPRoute()
    await ipr.setup_endpoint()  # open the socket now, not on the first change
    return ipr


def _link_info(msg: Any) -> LinkInfo:
    mac = msg.get("address")
    return LinkInfo(
        index=msg["index"],
        name=msg.get("ifname"),
        mac=parse_mac(mac) if mac and mac.count(":") == 5 else b"",
        flags=msg["flags"],
        mtu=msg.get("mtu") or 0,
        kind=msg.get(("linkinfo", "kind")),
        parent=msg.get("link"),
    )


class LinkWatcher:
    """An async iterator of LinkEvent; :meth:`start` subscribes (iteration starts it too).

    Subscribes to RTMGRP_LINK first, then dumps the links to learn their state, so no
    change between the two is missed; only changes of (IFF_UP and IFF_RUNNING) are yielded.
    ``fast`` (default: no `netns`) uses our rtnetlink socket, else pyroute2's. When the
    kernel drops notifications (socket overrun) the fast watcher dumps again and yields
    the differences.
    """

    def __init__(self, netns: str | None, *, fast: bool | None = None) -> None:
        self.netns = netns
        self.fast = netns is None if fast is None else fast
        self._rt: RtSocket | None = None
        self._ipr: Any = None
        self._known: dict[int, LinkInfo] = {}
        self._pending: list[LinkEvent] = []
        self._messages: AsyncIterator[Any] | None = None

    async def start(self) -> None:
        """Subscribe and take the initial snapshot (idempotent)."""
        if self._rt is not None or self._ipr is not None:
            return
        if self.fast:
            self._rt = await RtSocket.open(self.netns, groups=RTMGRP_LINK)
            for info in await self._dump():
                self._known[info.index] = info
            return
        from pyroute2.netlink.rtnl import RTMGRP_LINK as groups

        self._ipr = await _open_iproute(self.netns)
        await self._ipr.bind(groups=groups)
        async for msg in await self._ipr.link("dump"):
            info = _link_info(msg)
            self._known[info.index] = info

    async def _dump(self) -> list[LinkInfo]:
        assert self._rt is not None
        return [rtnl.decode_link(m) for m in await self._rt.ask(rtnl.link_dump)]

    def __aiter__(self) -> LinkWatcher:
        return self

    async def __anext__(self) -> LinkEvent:
        await self.start()
        while not self._pending:
            if self._rt is not None:
                await self._next_fast(self._rt)
                continue
            if self._messages is None:
                self._messages = self._ipr.get()
            try:
                msg = await anext(self._messages)
            except StopAsyncIteration:
                self._messages = None
                continue
            event = msg.get("event")
            if event in ("RTM_NEWLINK", "RTM_DELLINK"):
                self._consider(event == "RTM_DELLINK", _link_info(msg))
        return self._pending.pop(0)

    async def _next_fast(self, rt: RtSocket) -> None:
        msg = await rt.next_event()
        if msg is None:  # overrun: notifications were lost, compare a fresh dump
            log.warning("link notifications lost (socket overrun): dumping the links again")
            while True:
                try:
                    now = {info.index: info for info in await self._dump()}
                    break
                except NetError as exc:
                    if exc.errno == errno.EBADF:
                        raise
                    log.warning("link dump failed: %s; trying again", exc)
                    await asyncio.sleep(0.1)
            for index in [i for i in self._known if i not in now]:
                self._consider(True, self._known[index])
            for info in now.values():
                self._consider(False, info)
            return
        if msg.type not in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
            return
        try:
            info = rtnl.decode_link(msg)
        except rtnl.RtnlDecodeError as exc:
            log.warning("undecodable link notification: %s", exc)
            return
        self._consider(msg.type == rtnl.RTM_DELLINK, info)

    def _consider(self, deleted: bool, info: LinkInfo) -> None:
        index = info.index
        old = self._known.pop(index, None) if deleted else self._known.get(index)
        if deleted:
            if old is None:
                return
            up = False
        else:
            up = info.up
            self._known[index] = info
        if old is None or old.up != up:
            name = info.name or (old.name if old is not None else "")
            self._pending.append(LinkEvent(name or "", index, up))

    async def aclose(self) -> None:
        """Unsubscribe."""
        if self._rt is not None:
            self._rt.close()
            self._rt = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


def _link_get(ifname: str, seq: int) -> bytes:
    return rtnl.link_get(seq, ifname)


class LinuxBackend:
    """NetBackend on the running kernel; use ``async with LinuxBackend(netns) as net``.

    ``fast`` (default: no `netns`) sends address and link requests on our own rtnetlink
    socket; pyroute2 is then imported only when a route, rule or macvlan is first needed.
    """

    def __init__(self, netns: str | None = None, *, fast: bool | None = None) -> None:
        self.netns = netns
        self.fast = netns is None if fast is None else fast
        self.sysctl = Sysctl(netns)
        self.vmacs = VmacSysctls(self.sysctl)
        self._ipr: Any = None
        self._rt: RtSocket | None = None
        self._opened = False
        self._ipr_lock = asyncio.Lock()
        self._announcer: Announcer | None = None
        self._vmac_parents: dict[str, str] = {}
        # Interface indexes for address changes, which fail with ENODEV (and look the
        # name up again) when the interface has gone; a takeover's first address add
        # then needs no lookup.
        self._addr_index: dict[str, int] = {}

    async def __aenter__(self) -> LinuxBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the netlink and packet sockets."""
        self._opened = True
        if self.fast:
            if self._rt is None:
                self._rt = await RtSocket.open(self.netns)
        elif self._ipr is None:
            self._ipr = await _open_iproute(self.netns)
        if self._announcer is None:
            self._announcer = await Announcer.open(self.netns)

    async def close(self) -> None:
        """Restore sysctls changed for macvlans (the macvlans stay) and close the sockets."""
        await self.vmacs.restore_all_rp_filter()
        self._opened = False
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._rt is not None:
            self._rt.close()
            self._rt = None
        if self._announcer is not None:
            self._announcer.close()
            self._announcer = None

    @property
    def rt(self) -> RtSocket:
        """Our rtnetlink socket (RuntimeError before open() or when not ``fast``)."""
        if self._rt is None:
            raise RuntimeError("LinuxBackend used before open() (or without fast)")
        return self._rt

    async def iproute(self) -> Any:
        """pyroute2's AsyncIPRoute, opened on first use (RuntimeError before open()).

        The first use imports pyroute2 on a worker thread, so the event loop keeps
        sending adverts meanwhile.
        """
        if not self._opened:
            raise RuntimeError("LinuxBackend used before open()")
        async with self._ipr_lock:
            if self._ipr is None:
                if "pyroute2" not in sys.modules:
                    await asyncio.to_thread(importlib.import_module, "pyroute2")
                self._ipr = await _open_iproute(self.netns)
        return self._ipr

    async def _ipr_call(
        self, what: str, ok: tuple[int, ...], method: str, *args: Any, **kw: Any
    ) -> Any:
        """``await ipr.<method>(...)``; a NetlinkError with a code in `ok` is success (None)."""
        ipr = await self.iproute()
        netlink_error = _netlink_error()
        try:
            return await getattr(ipr, method)(*args, **kw)
        except netlink_error as exc:
            if getattr(exc, "code", None) in ok:
                return TOLERATED
            raise _net_error(what, exc) from exc

    async def _index(self, ifname: str) -> int:
        if self.netns is None:  # our own namespace: one ioctl instead of a netlink round trip
            try:
                return socket.if_nametoindex(ifname)
            except OSError:
                raise NetError(f"interface {ifname}: no such device", errno.ENODEV) from None
        return (await self.get_link(ifname)).index

    # -- links ---------------------------------------------------------------------

    async def get_link(self, ifname: str) -> LinkInfo:
        """Look an interface up by name; NetError(ENODEV) if absent."""
        if not self.fast:
            (msg,) = await self._ipr_call(f"interface {ifname}", (), "link", "get", ifname=ifname)
            return _link_info(msg)
        try:
            replies = await self.rt.ask(lambda seq: rtnl.link_get(seq, ifname))
        except NetError as exc:
            raise NetError(f"interface {ifname}: {exc}", exc.errno) from exc
        infos = [rtnl.decode_link(m) for m in replies if m.type == rtnl.RTM_NEWLINK]
        if len(infos) != 1:
            raise NetError(f"interface {ifname}: {len(infos)} replies to RTM_GETLINK")
        return infos[0]

    async def links(self) -> list[LinkInfo]:
        """All interfaces."""
        if not self.fast:
            return [_link_info(m) async for m in await self._ipr_call("links", (), "link", "dump")]
        replies = await self.rt.ask(rtnl.link_dump)
        return [rtnl.decode_link(m) for m in replies if m.type == rtnl.RTM_NEWLINK]

    async def set_link_up(self, ifname: str, up: bool = True) -> None:
        """Set an interface administratively up or down."""
        index = await self._index(ifname)
        state = "up" if up else "down"
        await self._ipr_call(f"set {ifname} {state}", (), "link", "set", index=index, state=state)

    def watch_links(self) -> LinkWatcher:
        """Up/running changes from RTM_NEWLINK/RTM_DELLINK events on a socket of its own."""
        return LinkWatcher(self.netns, fast=self.fast)

    # -- addresses -----------------------------------------------------------------

    async def _address_index(self, ifname: str, fresh: bool) -> int:
        if not fresh:
            index = self._addr_index.get(ifname)
            if index is not None:
                return index
        index = self._addr_index[ifname] = await self._index(ifname)
        return index

    async def _address_request(
        self, kind: int, spec: AddressSpec, what: str, ok: tuple[int, ...]
    ) -> None:
        """RTM_NEWADDR/RTM_DELADDR on our socket; a cached index that has gone is looked
        up again once."""
        for fresh in (False, True):
            index = await self._address_index(spec.dev, fresh)
            try:
                await self.rt.ask(functools.partial(rtnl.address_message, kind, spec, index))
                return
            except NetError as exc:
                if exc.errno == errno.ENODEV and not fresh:
                    self._addr_index.pop(spec.dev, None)
                    continue
                if exc.errno not in ok:
                    raise NetError(f"{what}: {exc}", exc.errno) from exc
                return

    def warm(self, specs: Sequence[AddressSpec]) -> None:
        """Before a takeover: look the interfaces up (our namespace) and build the address
        requests and announcement frames once, so the real ones run on warm code."""
        if not self.fast or self._rt is None:
            return
        for dev in dict.fromkeys(spec.dev for spec in specs):
            self._rt.touch(functools.partial(_link_get, dev))
        for spec in specs:
            index = self._addr_index.get(spec.dev)
            if index is None and self.netns is None:
                try:
                    index = self._addr_index[spec.dev] = socket.if_nametoindex(spec.dev)
                except OSError:
                    continue
            if index is not None:
                rtnl.address_message(rtnl.RTM_NEWADDR, spec, index, 0)
            ip = spec.address.ip
            if isinstance(ip, ipaddress.IPv4Address):
                build_garp(bytes(6), ip)
            else:
                build_unsolicited_na(bytes(6), ip)

    async def add_address(self, spec: AddressSpec) -> None:
        """Add an address (IPv6: NODAD unless ``nodad`` is False; keepalived's lifetimes)."""
        what = f"add {spec.address} dev {spec.dev}"
        if self.fast:
            await self._address_request(rtnl.RTM_NEWADDR, spec, what, _ADD_OK)
            return
        index = await self._index(spec.dev)
        await self._ipr_call(what, _ADD_OK, "addr", "add", **pyroute2_addr_args(spec, index, True))

    async def remove_address(self, spec: AddressSpec) -> None:
        """Remove an address; absent address or interface is success."""
        what = f"remove {spec.address} dev {spec.dev}"
        try:
            if self.fast:
                await self._address_request(rtnl.RTM_DELADDR, spec, what, _DEL_OK)
                return
            index = await self._index(spec.dev)
        except NetError as exc:
            if exc.errno == errno.ENODEV:
                return
            raise
        args = pyroute2_addr_args(spec, index, False)
        await self._ipr_call(what, _DEL_OK, "addr", "del", **args)

    async def list_addresses(self, ifname: str, version: int | None = None) -> list[AddressInfo]:
        """Addresses of `ifname`, in the kernel's order (primary IPv4 first)."""
        index = await self._index(ifname)
        family = _family(version) if version is not None else rtnl.AF_UNSPEC
        if self.fast:
            replies = await self.rt.ask(lambda seq: rtnl.address_dump(seq, family))
            found = (rtnl.decode_address(m) for m in replies if m.type == rtnl.RTM_NEWADDR)
            return [a.info() for a in found if a.index == index]
        kwargs: dict[str, Any] = {"index": index}
        if version is not None:
            kwargs["family"] = family
        out = []
        async for msg in await self._ipr_call(
            f"addresses of {ifname}", (), "addr", "dump", **kwargs
        ):
            if msg["index"] != index:
                continue
            addr = msg.get("local") or msg.get("address")
            iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
            flags = msg.get_attr("IFA_FLAGS")
            out.append(
                AddressInfo(
                    address=iface,
                    ifindex=index,
                    label=msg.get("label"),
                    scope=msg["scope"],
                    flags=flags if flags is not None else msg["flags"],
                )
            )
        return out

    async def primary_address(self, ifname: str, version: int) -> IPAddress | None:
        """First primary IPv4 address, or the first IPv6 link-local address."""
        for info in await self.list_addresses(ifname, version):
            if version == 4 and not info.flags & IFA_F_SECONDARY:
                return info.address.ip
            if version == 6 and info.address.ip.is_link_local:
                return info.address.ip
        return None

    # -- routes and rules ----------------------------------------------------------

    async def _route_args(self, spec: RouteSpec) -> dict[str, Any]:
        args: dict[str, Any] = {"family": _family(spec.family), "type": int(spec.type)}
        if spec.dst is not None:
            args["dst"] = str(spec.dst.network_address)
            args["dst_len"] = spec.dst.prefixlen
        else:
            args["dst_len"] = 0
        if spec.gateway is not None:
            args["gateway"] = str(spec.gateway)
        if spec.dev is not None:
            args["oif"] = await self._index(spec.dev)
        if spec.src is not None:
            args["prefsrc"] = str(spec.src)
        args["table"] = spec.table if spec.table is not None else 254
        if spec.metric is not None:
            args["priority"] = spec.metric
        if spec.scope is not None:
            args["scope"] = int(spec.scope)
        # keepalived marks its routes "proto keepalived" (18) unless told otherwise
        args["proto"] = spec.protocol if spec.protocol is not None else 18
        if spec.onlink:
            args["flags"] = RTNH_F_ONLINK
        if spec.tos:
            args["tos"] = spec.tos
        if spec.mtu is not None:
            args["metrics"] = {"mtu": spec.mtu}
        if spec.nexthops:
            hops = []
            for nh in spec.nexthops:
                hop: dict[str, Any] = {"hops": nh.weight - 1}
                if nh.gateway is not None:
                    hop["gateway"] = str(nh.gateway)
                if nh.dev is not None:
                    hop["oif"] = await self._index(nh.dev)
                if nh.onlink:
                    hop["flags"] = RTNH_F_ONLINK
                hops.append(hop)
            args["multipath"] = hops
        return args

    async def add_route(self, spec: RouteSpec) -> None:
        """Add a route; an identical one present is success."""
        args = await self._route_args(spec)
        await self._ipr_call(f"add route {spec.dst or 'default'}", _ADD_OK, "route", "add", **args)

    async def remove_route(self, spec: RouteSpec) -> None:
        """Remove a route; absent is success."""
        try:
            args = await self._route_args(spec)
        except NetError as exc:
            if exc.errno == errno.ENODEV:
                return
            raise
        args.pop("proto", None)
        what = f"remove route {spec.dst or 'default'}"
        await self._ipr_call(what, _DEL_OK, "route", "del", **args)

    @staticmethod
    def _rule_args(spec: RuleSpec) -> dict[str, Any]:
        args: dict[str, Any] = {"family": _family(spec.family), "action": int(spec.action)}
        if spec.src is not None:
            args["src"] = str(spec.src.network_address)
            args["src_len"] = spec.src.prefixlen
        if spec.dst is not None:
            args["dst"] = str(spec.dst.network_address)
            args["dst_len"] = spec.dst.prefixlen
        if spec.action == RuleAction.TABLE:
            args["table"] = spec.table if spec.table is not None else 254
        if spec.goto is not None:
            args["goto"] = spec.goto
        if spec.priority is not None:
            args["priority"] = spec.priority
        if spec.iif is not None:
            args["iifname"] = spec.iif
        if spec.oif is not None:
            args["oifname"] = spec.oif
        if spec.fwmark is not None:
            args["fwmark"] = spec.fwmark
            if spec.fwmask is not None:
                args["fwmask"] = spec.fwmask
        if spec.tos:
            args["tos"] = spec.tos
        return args

    async def add_rule(self, spec: RuleSpec) -> None:
        """Add a policy rule; an identical one present is success."""
        await self._ipr_call("add rule", _ADD_OK, "rule", "add", **self._rule_args(spec))

    async def remove_rule(self, spec: RuleSpec) -> None:
        """Remove a policy rule; absent is success."""
        await self._ipr_call("remove rule", _DEL_OK, "rule", "del", **self._rule_args(spec))

    # -- announcements -------------------------------------------------------------

    def _sender(self) -> Announcer:
        if self._announcer is None:
            raise RuntimeError("LinuxBackend used before open()")
        return self._announcer

    async def send_garp(
        self, ifname: str, address: ipaddress.IPv4Address, mac: bytes | None = None
    ) -> None:
        """Broadcast a gratuitous ARP for `address` on `ifname`."""
        if mac is None:
            mac = (await self.get_link(ifname)).mac
        await self._sender().garp(ifname, mac, address)

    async def send_na(
        self,
        ifname: str,
        address: ipaddress.IPv6Address,
        mac: bytes | None = None,
        router: bool | None = None,
    ) -> None:
        """Send an unsolicited NA; the router flag follows the interface's forwarding."""
        if mac is None:
            mac = (await self.get_link(ifname)).mac
        if router is None:
            try:
                router = await self.sysctl.get_int(ipv6_conf(ifname, "forwarding")) == 1
            except (OSError, ValueError):
                router = False
        await self._sender().unsolicited_na(ifname, mac, address, router=router)

    # -- macvlan (use_vmac) --------------------------------------------------------

    async def create_vmac(self, spec: VmacSpec) -> LinkInfo:
        """Create the macvlan (mode private, VRRP MAC), configure it and bring it up."""
        parent = await self.get_link(spec.parent)
        mac = spec.mac if spec.mac is not None else vrrp_mac(spec.vrid, spec.version)
        name = spec.ifname
        added = await self._ipr_call(
            f"create macvlan {name} on {spec.parent}",
            (errno.EEXIST,),
            "link",
            "add",
            ifname=name,
            kind="macvlan",
            link=parent.index,
            macvlan_mode="private",
            address=format_mac(mac),
        )
        if added is TOLERATED:  # EEXIST: reuse it if it is ours
            found = await self.get_link(name)
            if found.kind != "macvlan" or found.parent != parent.index:
                raise NetError(f"{name} exists and is not a macvlan of {spec.parent}")
            await self._ipr_call(
                f"set {name} address", (), "link", "set", index=found.index, address=format_mac(mac)
            )
        if name not in self._vmac_parents:
            await self.vmacs.clear_all_rp_filter([parent.name])
            await self.vmacs.setup_vmac(name, parent.name, spec.version)
            self._vmac_parents[name] = parent.name
        info = await self.get_link(name)
        await self._ipr_call(f"set {name} up", (), "link", "set", index=info.index, state="up")
        if spec.version == 6:
            await self._copy_link_local(parent.name, name)
        return await self.get_link(name)

    async def _copy_link_local(self, parent: str, name: str) -> None:
        """Give the macvlan the parent's link-local address, the source of IPv6 adverts."""
        source = await self.primary_address(parent, 6)
        if source is None:
            return
        spec = AddressSpec(address=ipaddress.ip_interface(f"{source}/64"), dev=name, nodad=True)
        try:
            await self.add_address(spec)
        except NetError as exc:
            detail = str(exc).split(": ", 1)[-1]
            raise NetError(f"link-local {source} on macvlan: {detail}", exc.errno) from exc

    async def delete_vmac(self, ifname: str) -> None:
        """Delete the macvlan (absent is success) and undo its parent's settings."""
        await self._ipr_call(f"delete macvlan {ifname}", _DEL_OK, "link", "del", ifname=ifname)
        parent = self._vmac_parents.pop(ifname, None)
        if parent is not None:
            await self.vmacs.teardown_vmac(parent)
        if not self._vmac_parents:
            await self.vmacs.restore_all_rp_filter()
