"""The interface settings a VRRP macvlan (``use_vmac``) needs, and their undoing.

keepalived's documented policy (vrrp_if_config.c, read, not copied):

- on the macvlan: ``arp_ignore=1`` (do not answer ARP for the parent's addresses); for an
  IPv4 router also ``accept_local=1`` (hear adverts looped back from another instance),
  ``rp_filter=0`` (receive while holding no address) and ``promote_secondaries=1``;
- on the parent: ``arp_ignore=1`` and ``arp_filter=1`` (do not answer ARP for the VIPs),
  saved first and restored when its last macvlan goes;
- ``rp_filter`` is the maximum of ``all`` and the interface's value, so when
  ``all.rp_filter`` is non-zero it is pushed down onto ``default`` and every interface
  and then cleared, and restored when the last macvlan goes.
- IPv6: no automatic link-local address on the macvlan (``addr_gen_mode=1``); an IPv4
  router's macvlan gets ``disable_ipv6=1``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyvrrpd.net.sysctl import Sysctl, ipv4_conf, ipv6_conf

PARENT_SETTINGS = (("arp_ignore", 1), ("arp_filter", 1))


def vmac_settings(ifname: str, version: int) -> list[tuple[str, int]]:
    """The sysctls to write on a new macvlan, before it is brought up."""
    out = [(ipv6_conf(ifname, "addr_gen_mode"), 1), (ipv4_conf(ifname, "arp_ignore"), 1)]
    if version == 4:
        out += [
            (ipv4_conf(ifname, "accept_local"), 1),
            (ipv4_conf(ifname, "rp_filter"), 0),
            (ipv4_conf(ifname, "promote_secondaries"), 1),
            (ipv6_conf(ifname, "disable_ipv6"), 1),
        ]
    return out


class VmacSysctls:
    """Applies and undoes the settings above, counting macvlans per parent."""

    def __init__(self, sysctl: Sysctl) -> None:
        self.sysctl = sysctl
        self.parents: dict[str, int] = {}
        self._rp_saved: dict[str, str] = {}

    async def setup_vmac(self, ifname: str, parent: str, version: int) -> None:
        """Configure a new macvlan and (for its first macvlan) its parent."""
        for name, value in vmac_settings(ifname, version):
            await self.sysctl.set(name, value, save=False)
        if self.parents.get(parent, 0) == 0:
            for key, value in PARENT_SETTINGS:
                await self.sysctl.set(ipv4_conf(parent, key), value)
        self.parents[parent] = self.parents.get(parent, 0) + 1

    async def teardown_vmac(self, parent: str) -> None:
        """Forget one macvlan of `parent`; restore the parent after its last one."""
        count = self.parents.get(parent, 0) - 1
        if count > 0:
            self.parents[parent] = count
            return
        self.parents.pop(parent, None)
        await self.sysctl.restore([ipv4_conf(parent, key) for key, _ in PARENT_SETTINGS])

    async def clear_all_rp_filter(self, interfaces: Iterable[str]) -> None:
        """If ``all.rp_filter`` > 0, push it onto default and `interfaces`, then clear it."""
        if self._rp_saved:
            return
        all_name = ipv4_conf("all", "rp_filter")
        level = await self.sysctl.get_int(all_name)
        if level == 0:
            return
        default_name = ipv4_conf("default", "rp_filter")
        for name in [default_name, *(ipv4_conf(i, "rp_filter") for i in interfaces)]:
            current = await self.sysctl.get_int(name)
            if current < level:
                self._rp_saved[name] = str(current)
                await self.sysctl.set(name, level, save=False)
        self._rp_saved[all_name] = str(level)
        await self.sysctl.set(all_name, 0, save=False)

    async def restore_all_rp_filter(self) -> None:
        """Undo :meth:`clear_all_rp_filter` (``all`` first, as it was raised last)."""
        saved, self._rp_saved = self._rp_saved, {}
        for name in reversed(list(saved)):
            try:
                await self.sysctl.set(name, saved[name], save=False)
            except FileNotFoundError:
                continue
