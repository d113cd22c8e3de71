"""The Linux NetBackend: rtnetlink through pyroute2's AsyncIPRoute (its only importer here),
AF_PACKET announcements and /proc/sys.

Everything happens in one network namespace, ours by default or a named one (``ip netns``)
for the lab and for keepalived's ``net_namespace``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

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
from pyvrrpd.net.frames import format_mac, parse_mac, vrrp_mac
from pyvrrpd.net.sysctl import Sysctl, ipv6_conf
from pyvrrpd.net.vmac_sysctl import VmacSysctls

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
RTNH_F_ONLINK = 0x04

_ADD_OK = (errno.EEXIST,)
_DEL_OK = (errno.EADDRNOTAVAIL, errno.ESRCH, errno.ENOENT, errno.ENODEV)


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _net_error(what: str, exc: NetlinkError) -> NetError:
    return NetError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}", exc.code)


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
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._ipr: Any = None
        self._known: dict[int, bool] = {}
        self._pending: list[LinkEvent] = []
        self._messages: AsyncIterator[Any] | None = None

    async def start(self) -> None:
        """Subscribe and take the initial snapshot (idempotent)."""
        if self._ipr is not None:
            return
        self._ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
        await self._ipr.bind(groups=RTMGRP_LINK)
        async for msg in await self._ipr.link("dump"):
            self._known[msg["index"]] = _link_info(msg).up

    def __aiter__(self) -> LinkWatcher:
        return self

    async def __anext__(self) -> LinkEvent:
        await self.start()
        while not self._pending:
            if self._messages is None:
                self._messages = self._ipr.get()
            try:
                msg = await anext(self._messages)
            except StopAsyncIteration:
                self._messages = None
                continue
            self._consider(msg)
        return self._pending.pop(0)

    def _consider(self, msg: Any) -> None:
        event = msg.get("event")
        if event not in ("RTM_NEWLINK", "RTM_DELLINK"):
            return
        index = msg["index"]
        if event == "RTM_DELLINK":
            was, up = self._known.pop(index, None), False
        else:
            was, up = self._known.get(index), _link_info(msg).up
            self._known[index] = up
        if was is None and event == "RTM_DELLINK":
            return
        if was != up:
            self._pending.append(LinkEvent(msg.get("ifname") or "", index, up))

    async def aclose(self) -> None:
        """Unsubscribe."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


class LinuxBackend:
    """NetBackend on the running kernel; use ``async with LinuxBackend(netns) as net``."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.sysctl = Sysctl(netns)
        self.vmacs = VmacSysctls(self.sysctl)
        self._ipr: Any = None
        self._announcer: Announcer | None = None
        self._vmac_parents: dict[str, str] = {}

    async def __aenter__(self) -> LinuxBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the netlink and packet sockets."""
        if self._ipr is None:
            self._ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
            await self._ipr.setup_endpoint()  # open the socket now, not on the first change
        if self._announcer is None:
            self._announcer = await Announcer.open(self.netns)

    async def close(self) -> None:
        """Restore sysctls changed for macvlans (the macvlans stay) and close the sockets."""
        await self.vmacs.restore_all_rp_filter()
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._announcer is not None:
            self._announcer.close()
            self._announcer = None

    @property
    def ipr(self) -> Any:
        """The AsyncIPRoute (RuntimeError before open())."""
        if self._ipr is None:
            raise RuntimeError("LinuxBackend used before open()")
        return self._ipr

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
        try:
            (msg,) = await self.ipr.link("get", ifname=ifname)
        except NetlinkError as exc:
            raise _net_error(f"interface {ifname}", exc) from exc
        return _link_info(msg)

    async def links(self) -> list[LinkInfo]:
        """All interfaces."""
        return [_link_info(m) async for m in await self.ipr.link("dump")]

    async def set_link_up(self, ifname: str, up: bool = True) -> None:
        """Set an interface administratively up or down."""
        await self.ipr.link("set", index=await self._index(ifname), state="up" if up else "down")

    def watch_links(self) -> LinkWatcher:
        """Up/running changes from RTM_NEWLINK/RTM_DELLINK events on a socket of its own."""
        return LinkWatcher(self.netns)

    # -- addresses -----------------------------------------------------------------

    def _addr_args(self, spec: AddressSpec, index: int) -> dict[str, Any]:
        args: dict[str, Any] = {
            "index": index,
            "family": _family(spec.version),
            "prefixlen": spec.address.network.prefixlen,
        }
        if spec.peer is not None:
            args["local"] = str(spec.address.ip)
            args["address"] = str(spec.peer)
        else:
            args["address"] = str(spec.address.ip)
        return args

    async def add_address(self, spec: AddressSpec) -> None:
        """Add an address (IPv6: NODAD unless ``nodad`` is False; keepalived's lifetimes)."""
        args = self._addr_args(spec, await self._index(spec.dev))
        flags = 0
        if spec.version == 6:
            flags |= IFA_F_NODAD if spec.nodad else 0
            flags |= IFA_F_HOMEADDRESS if spec.home else 0
            flags |= IFA_F_MANAGETEMPADDR if spec.mngtmpaddr else 0
            lft = spec.effective_preferred_lft()
            if lft != 0xFFFFFFFF:
                args["preferred_lft"] = lft
        else:
            args["scope"] = int(spec.scope)
            brd = spec.broadcast_address()
            if brd is not None:
                args["broadcast"] = str(brd)
            if spec.label is not None:
                args["label"] = spec.label
        flags |= IFA_F_NOPREFIXROUTE if spec.noprefixroute else 0
        flags |= IFA_F_MCAUTOJOIN if spec.autojoin else 0
        if flags:
            args["flags"] = flags
        try:
            await self.ipr.addr("add", **args)
        except NetlinkError as exc:
            if exc.code not in _ADD_OK:
                raise _net_error(f"add {spec.address} dev {spec.dev}", exc) from exc

    async def remove_address(self, spec: AddressSpec) -> None:
        """Remove an address; absent address or interface is success."""
        try:
            index = await self._index(spec.dev)
        except NetError as exc:
            if exc.errno == errno.ENODEV:
                return
            raise
        try:
            await self.ipr.addr("del", **self._addr_args(spec, index))
        except NetlinkError as exc:
            if exc.code not in _DEL_OK:
                raise _net_error(f"remove {spec.address} dev {spec.dev}", exc) from exc

    async def list_addresses(self, ifname: str, version: int | None = None) -> list[AddressInfo]:
        """Addresses of `ifname`, in the kernel's order (primary IPv4 first)."""
        index = await self._index(ifname)
        kwargs: dict[str, Any] = {"index": index}
        if version is not None:
            kwargs["family"] = _family(version)
        out = []
        async for msg in await self.ipr.addr("dump", **kwargs):
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
        try:
            await self.ipr.route("add", **await self._route_args(spec))
        except NetlinkError as exc:
            if exc.code not in _ADD_OK:
                raise _net_error(f"add route {spec.dst or 'default'}", exc) from exc

    async def remove_route(self, spec: RouteSpec) -> None:
        """Remove a route; absent is success."""
        try:
            args = await self._route_args(spec)
        except NetError as exc:
            if exc.errno == errno.ENODEV:
                return
            raise
        args.pop("proto", None)
        try:
            await self.ipr.route("del", **args)
        except NetlinkError as exc:
            if exc.code not in _DEL_OK:
                raise _net_error(f"remove route {spec.dst or 'default'}", exc) from exc

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
        try:
            await self.ipr.rule("add", **self._rule_args(spec))
        except NetlinkError as exc:
            if exc.code not in _ADD_OK:
                raise _net_error("add rule", exc) from exc

    async def remove_rule(self, spec: RuleSpec) -> None:
        """Remove a policy rule; absent is success."""
        try:
            await self.ipr.rule("del", **self._rule_args(spec))
        except NetlinkError as exc:
            if exc.code not in _DEL_OK:
                raise _net_error("remove rule", exc) from exc

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
        try:
            await self.ipr.link(
                "add",
                ifname=name,
                kind="macvlan",
                link=parent.index,
                macvlan_mode="private",
                address=format_mac(mac),
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _net_error(f"create macvlan {name} on {spec.parent}", exc) from exc
            found = await self.get_link(name)
            if found.kind != "macvlan" or found.parent != parent.index:
                raise NetError(f"{name} exists and is not a macvlan of {spec.parent}") from exc
            await self.ipr.link("set", index=found.index, address=format_mac(mac))
        if name not in self._vmac_parents:
            await self.vmacs.clear_all_rp_filter([parent.name])
            await self.vmacs.setup_vmac(name, parent.name, spec.version)
            self._vmac_parents[name] = parent.name
        info = await self.get_link(name)
        await self.ipr.link("set", index=info.index, state="up")
        if spec.version == 6:
            await self._copy_link_local(parent.name, info.index)
        return await self.get_link(name)

    async def _copy_link_local(self, parent: str, index: int) -> None:
        """Give the macvlan the parent's link-local address, the source of IPv6 adverts."""
        source = await self.primary_address(parent, 6)
        if source is None:
            return
        try:
            await self.ipr.addr(
                "add",
                index=index,
                family=socket.AF_INET6,
                address=str(source),
                prefixlen=64,
                flags=IFA_F_NODAD,
            )
        except NetlinkError as exc:
            if exc.code not in _ADD_OK:
                raise _net_error(f"link-local {source} on macvlan", exc) from exc

    async def delete_vmac(self, ifname: str) -> None:
        """Delete the macvlan (absent is success) and undo its parent's settings."""
        try:
            await self.ipr.link("del", ifname=ifname)
        except NetlinkError as exc:
            if exc.code not in _DEL_OK:
                raise _net_error(f"delete macvlan {ifname}", exc) from exc
        parent = self._vmac_parents.pop(ifname, None)
        if parent is not None:
            await self.vmacs.teardown_vmac(parent)
        if not self._vmac_parents:
            await self.vmacs.restore_all_rp_filter()
