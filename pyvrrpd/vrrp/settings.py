"""Resolve a configured ``vrrp_instance`` into what the runtime needs (pure).

keepalived's defaults are layered: an instance keyword, else its ``global_defs``
counterpart, else the built-in default. The model keeps "unset" visible (None, or the
field missing from ``locs``), and this module applies the layering in one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from ..config.model import Config, GlobalDefs, VrrpInstance
from ..config.model_vrrp_items import AuthType as ConfAuthType
from ..config.model_vrrp_items import VirtualAddress
from ..net.backend import AddressSpec, RouteSpec, RuleSpec, Scope
from .fsm_types import FsmConfig
from .packet import AuthType, ChecksumForm, IPAddress
from .routes import route_specs, rule_specs
from .rx_filter import PeerTtl, RxPolicy

_SCOPES = {
    "global": Scope.GLOBAL,
    "site": Scope.SITE,
    "link": Scope.LINK,
    "host": Scope.HOST,
    "nowhere": Scope.NOWHERE,
}


@dataclass(frozen=True, slots=True)
class InstanceSettings:
    """Everything one VRRP instance's shell needs, with every default applied."""

    name: str
    ifname: str
    family: int  # 4 or 6
    vrid: int
    version: int
    priority: int
    advert_int: float
    preempt: bool
    preempt_delay: float
    down_timer_adverts: int
    garp_master_delay: float
    garp_master_repeat: int
    garp_master_refresh: float
    garp_master_refresh_repeat: int
    garp_lower_prio_delay: float | None
    garp_lower_prio_repeat: int | None
    lower_prio_no_advert: bool
    higher_prio_send_advert: bool
    garp_interval: float
    gna_interval: float
    vips: tuple[AddressSpec, ...]
    excluded_vips: tuple[AddressSpec, ...]
    src_ip: IPAddress | None
    mcast_group: IPAddress
    peers: dict[IPAddress, PeerTtl] = field(default_factory=dict)
    check_unicast_src: bool = False
    checksum: ChecksumForm = ChecksumForm.PSEUDO_HEADER
    accept_old_unicast: bool = True
    auth_type: int = AuthType.NONE
    auth_data: bytes = b""
    check_adv_addr: bool = False
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify: str | None = None
    vmac: str | None = None  # macvlan interface name with use_vmac
    vmac_mac: str | None = None
    vmac_xmit_base: bool = False
    routes: tuple[RouteSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    problems: tuple[str, ...] = ()  # configured things that cannot be applied

    @property
    def unicast(self) -> bool:
        return bool(self.peers)

    @property
    def advert_addresses(self) -> tuple[IPAddress, ...]:
        """The addresses carried in adverts: the VIPs of the instance's family."""
        return tuple(v.address.ip for v in self.vips if v.address.version == self.family)

    def fsm_config(self, address: IPAddress) -> FsmConfig:
        """The state machine's configuration, given our primary address."""
        return FsmConfig(
            name=self.name,
            address=address,
            priority=self.priority,
            advert_int=self.advert_int,
            version=self.version,
            preempt=self.preempt,
            preempt_delay=self.preempt_delay,
            down_timer_adverts=self.down_timer_adverts,
            garp_master_delay=self.garp_master_delay,
            garp_master_repeat=self.garp_master_repeat,
            garp_master_refresh=self.garp_master_refresh,
            garp_master_refresh_repeat=self.garp_master_refresh_repeat,
            garp_lower_prio_repeat=self.garp_lower_prio_repeat,
            garp_lower_prio_delay=self.garp_lower_prio_delay,
            lower_prio_no_advert=self.lower_prio_no_advert,
            higher_prio_send_advert=self.higher_prio_send_advert,
        )

    def rx_policy(self, own: frozenset[IPAddress]) -> RxPolicy:
        """The receive filters of this instance."""
        return RxPolicy(
            vrid=self.vrid,
            version=self.version,
            family=self.family,
            advert_int_cs=round(self.advert_int * 100),
            checksum=self.checksum,
            accept_old_unicast=self.accept_old_unicast,
            mcast_group=self.mcast_group,
            unicast=self.unicast,
            peers=self.peers,
            check_unicast_src=self.check_unicast_src,
            auth_type=self.auth_type,
            auth_data=self.auth_data,
            own_addresses=own,
            vips=frozenset(self.advert_addresses),
            check_adv_addr=self.check_adv_addr,
        )


def _pick(inst: VrrpInstance, name: str, glob: GlobalDefs, gname: str) -> Any:
    """The instance's value when written there, else the global one."""
    if name in inst.locs:
        return getattr(inst, name)
    return getattr(glob, gname)


def address_spec(vip: VirtualAddress, default_dev: str) -> AddressSpec:
    """A virtual_ipaddress line as the network backend's address spec."""
    brd: ipaddress.IPv4Address | str | None = None
    if vip.brd is not None:
        brd = vip.brd if vip.brd in ("+", "-") else ipaddress.IPv4Address(vip.brd)
    return AddressSpec(
        address=vip.address,
        dev=vip.dev or default_dev,
        label=vip.label,
        scope=_SCOPES.get(vip.scope or "global", Scope.GLOBAL),
        broadcast=brd,  # type: ignore[arg-type]
        peer=vip.peer,
        nodad="-nodad" not in vip.flags,
        home="home" in vip.flags,
        noprefixroute="noprefixroute" in vip.flags,
        mngtmpaddr="mngtmpaddr" in vip.flags,
        autojoin="autojoin" in vip.flags,
    )


def instance_settings(config: Config, inst: VrrpInstance) -> InstanceSettings:
    """Resolve one instance of ``config``."""
    glob = config.global_defs
    ifname = inst.interface or glob.default_interface or "eth0"
    version = inst.effective_version(glob)
    family = inst.family
    auth_type = AuthType.NONE
    auth_data = b""
    if version == 2 and inst.authentication is not None:
        if inst.authentication.auth_type is ConfAuthType.PASS:
            auth_type = AuthType.PASS
            auth_data = (inst.authentication.auth_pass or "").encode()[:8]
        elif inst.authentication.auth_type is ConfAuthType.AH:
            auth_type = AuthType.AH
    as_v2 = inst.v3_checksum_as_v2 or glob.v3_checksum_as_v2
    if version == 2 or (family == 4 and as_v2):
        checksum = ChecksumForm.MESSAGE
    else:
        checksum = ChecksumForm.PSEUDO_HEADER
    peers = {
        p.address: PeerTtl(
            p.min_ttl if p.min_ttl is not None else 0, p.max_ttl if p.max_ttl is not None else 255
        )
        for p in inst.unicast_peers
    }
    advert_int = float(inst.advert_int)
    if version == 2:
        advert_int = float(max(1, round(advert_int)))
    lower_delay = _pick(inst, "garp_lower_prio_delay", glob, "vrrp_garp_lower_prio_delay")
    lower_repeat = _pick(inst, "garp_lower_prio_repeat", glob, "vrrp_garp_lower_prio_repeat")
    skip_adv = inst.skip_check_adv_addr
    if skip_adv is None:
        skip_adv = glob.vrrp_skip_check_adv_addr
    vmac = None
    if inst.use_vmac is not None:
        vmac = inst.use_vmac.name or f"vrrp.{inst.virtual_router_id or 0}"
    vip_dev = vmac or ifname

    def vip_spec(v: VirtualAddress) -> AddressSpec:
        spec = address_spec(v, vip_dev)
        return replace(spec, dev=vip_dev) if vmac and spec.dev == ifname else spec

    routes, route_problems = route_specs(inst.virtual_routes, ifname, "virtual_routes")
    rules, rule_problems = rule_specs(inst.virtual_rules, "virtual_rules")
    problems = route_problems + rule_problems

    return InstanceSettings(
        name=inst.name,
        ifname=ifname,
        family=family,
        vrid=inst.virtual_router_id or 0,
        version=version,
        priority=inst.effective_priority,
        advert_int=advert_int,
        preempt=not inst.nopreempt,
        preempt_delay=float(inst.preempt_delay),
        down_timer_adverts=int(_pick(inst, "down_timer_adverts", glob, "vrrp_down_timer_adverts")),
        garp_master_delay=float(_pick(inst, "garp_master_delay", glob, "vrrp_garp_master_delay")),
        garp_master_repeat=int(_pick(inst, "garp_master_repeat", glob, "vrrp_garp_master_repeat")),
        garp_master_refresh=float(
            _pick(inst, "garp_master_refresh", glob, "vrrp_garp_master_refresh")
        ),
        garp_master_refresh_repeat=int(
            _pick(inst, "garp_master_refresh_repeat", glob, "vrrp_garp_master_refresh_repeat")
        ),
        garp_lower_prio_delay=None if lower_delay is None else float(lower_delay),
        garp_lower_prio_repeat=None if lower_repeat is None else int(lower_repeat),
        lower_prio_no_advert=bool(
            _pick(inst, "lower_prio_no_advert", glob, "vrrp_lower_prio_no_advert") or False
        ),
        higher_prio_send_advert=bool(
            _pick(inst, "higher_prio_send_advert", glob, "vrrp_higher_prio_send_advert") or False
        ),
        garp_interval=float(glob.vrrp_garp_interval),
        gna_interval=float(glob.vrrp_gna_interval),
        vips=tuple(vip_spec(v) for v in inst.virtual_ipaddresses),
        excluded_vips=tuple(vip_spec(v) for v in inst.virtual_ipaddresses_excluded),
        src_ip=inst.source_ip,
        mcast_group=inst.multicast_group(glob),
        peers=peers,
        check_unicast_src=inst.check_unicast_src or glob.vrrp_check_unicast_src,
        checksum=checksum,
        accept_old_unicast=inst.old_unicast_checksum != "never",
        auth_type=auth_type,
        auth_data=auth_data,
        check_adv_addr=not skip_adv,
        notify_master=inst.notify_master,
        notify_backup=inst.notify_backup,
        notify_fault=inst.notify_fault,
        notify_stop=inst.notify_stop,
        notify=inst.notify,
        vmac=vmac,
        vmac_mac=inst.use_vmac.mac if inst.use_vmac is not None else None,
        vmac_xmit_base=inst.vmac_xmit_base,
        routes=tuple(routes),
        rules=tuple(rules),
        problems=tuple(problems),
    )
