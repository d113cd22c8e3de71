"""VRRP-side model blocks: global_defs, vrrp_instance, sync groups, trackers, statics.

Defaults are keepalived's. Fields that keepalived derives from other settings when
they are not written (``priority``, ``state``, ``version``...) are ``None`` when unset;
the ``effective_*`` properties give the value keepalived would use.
"""

from __future__ import annotations

from dataclasses import dataclass

from .convert import IPAddress
from .model_vrrp_global import GlobalDefs
from .model_vrrp_items import (
    Authentication,
    AuthType,
    InitFile,
    Nexthop,
    ParamMatch,
    State,
    TrackedObject,
    UnicastPeer,
    VirtualAddress,
    VirtualRoute,
    VirtualRule,
    Vmac,
    Weight,
)
from .schema import Located

__all__ = [
    "AuthType",
    "Authentication",
    "GarpGroup",
    "GlobalDefs",
    "InitFile",
    "Nexthop",
    "ParamMatch",
    "State",
    "StaticAddress",
    "StaticRoute",
    "StaticRule",
    "TrackFile",
    "TrackProcess",
    "TrackedObject",
    "UnicastPeer",
    "VirtualAddress",
    "VirtualRoute",
    "VirtualRule",
    "Vmac",
    "VrrpInstance",
    "VrrpScript",
    "VrrpSyncGroup",
    "Weight",
]

PRIO_OWNER = 255
PRIO_DEFAULT = 100

#: ``static_ipaddress``/``static_routes``/``static_rules`` lines share the VRRP types.
StaticAddress = VirtualAddress
StaticRoute = VirtualRoute
StaticRule = VirtualRule


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpInstance(Located):
    """A ``vrrp_instance NAME { ... }`` block."""

    name: str = ""
    state: State | None = None
    interface: str | None = None
    use_vmac: Vmac | None = None
    use_vmac_addr: bool = False
    vmac_xmit_base: bool = False
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_fault_no_peer: bool = False
    check_unicast_src: bool = False
    old_unicast_checksum: str | None = None
    native_ipv6: bool = False
    v3_checksum_as_v2: bool = False
    dont_track_primary: bool = False
    track_interfaces: tuple[TrackedObject, ...] = ()
    track_scripts: tuple[TrackedObject, ...] = ()
    track_files: tuple[TrackedObject, ...] = ()
    track_processes: tuple[TrackedObject, ...] = ()
    mcast_src_ip: IPAddress | None = None
    unicast_src_ip: IPAddress | None = None
    mcast_dst_ip: IPAddress | None = None
    track_src_ip: bool = False
    virtual_router_id: int | None = None
    unicast_ttl: int | None = None
    version: int | None = None
    priority: int | None = None
    advert_int: float = 1.0
    virtual_ipaddresses: tuple[VirtualAddress, ...] = ()
    virtual_ipaddresses_excluded: tuple[VirtualAddress, ...] = ()
    promote_secondaries: bool = False
    linkbeat_use_polling: bool = False
    virtual_routes: tuple[VirtualRoute, ...] = ()
    virtual_rules: tuple[VirtualRule, ...] = ()
    accept: bool | None = None
    skip_check_adv_addr: bool | None = None
    strict_mode: bool | None = None
    nopreempt: bool = False
    preempt_delay: float = 0.0
    debug: int = 0
    notify_backup: str | None = None
    notify_master: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify_deleted: str | None = None
    notify: str | None = None
    notify_master_rx_lower_pri: str | None = None
    smtp_alert: bool | None = None
    notify_priority_changes: bool | None = None
    lvs_sync_daemon_interface: str | None = None
    garp_master_delay: int = 5
    garp_master_refresh: int = 0
    garp_master_repeat: int = 5
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay: int | None = None
    garp_lower_prio_repeat: int | None = None
    down_timer_adverts: int = 3
    garp_extra_if: tuple[str, ...] | None = None
    lower_prio_no_advert: bool | None = None
    higher_prio_send_advert: bool | None = None
    kernel_rx_buf_size: int | None = None
    authentication: Authentication | None = None

    @property
    def family(self) -> int:
        """4 or 6, as keepalived deduces it (first VIP, peer or source address)."""
        if self.native_ipv6:
            return 6
        for vip in self.virtual_ipaddresses:
            return vip.family
        for peer in self.unicast_peers:
            return peer.address.version
        for src in (self.mcast_src_ip, self.unicast_src_ip):
            if src is not None:
                return src.version
        return 4

    def effective_version(self, globals_: GlobalDefs) -> int:
        """The VRRP version used: ``version``, 3 for IPv6, else ``vrrp_version``."""
        if self.version is not None:
            return self.version
        if self.family == 6:
            return 3
        return globals_.vrrp_version

    @property
    def effective_priority(self) -> int:
        """``priority``, or 255 for ``state MASTER`` / 100 otherwise when unset."""
        if self.priority is not None:
            return self.priority
        return PRIO_OWNER if self.state is State.MASTER else PRIO_DEFAULT

    @property
    def effective_state(self) -> State:
        """``state``, or MASTER for the address owner (priority 255) when unset."""
        if self.state is not None:
            return self.state
        return State.MASTER if self.effective_priority == PRIO_OWNER else State.BACKUP

    def effective_strict(self, globals_: GlobalDefs) -> bool:
        """``strict_mode``, defaulting to global ``vrrp_strict``."""
        return globals_.vrrp_strict if self.strict_mode is None else self.strict_mode

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def source_ip(self) -> IPAddress | None:
        return self.unicast_src_ip or self.mcast_src_ip

    def multicast_group(self, globals_: GlobalDefs) -> IPAddress:
        """Where adverts go when not unicast."""
        if self.mcast_dst_ip is not None:
            return self.mcast_dst_ip
        if self.family == 6:
            return globals_.vrrp_mcast_group6
        return globals_.vrrp_mcast_group4


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpSyncGroup(Located):
    """A ``vrrp_sync_group NAME { group { ... } ... }`` block."""

    name: str = ""
    group: tuple[str, ...] = ()
    track_interfaces: tuple[TrackedObject, ...] = ()
    track_scripts: tuple[TrackedObject, ...] = ()
    track_files: tuple[TrackedObject, ...] = ()
    track_processes: tuple[TrackedObject, ...] = ()
    notify_backup: str | None = None
    notify_master: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify: str | None = None
    smtp_alert: bool | None = None
    global_tracking: bool = False
    sync_group_tracking_weight: bool = False
    notify_priority_changes: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpScript(Located):
    """A ``vrrp_script NAME { script ... }`` tracker."""

    name: str = ""
    script: str | None = None
    interval: int = 1
    timeout: int | None = None
    weight: Weight = Weight(0)  # noqa: RUF009 (immutable)
    rise: int = 1
    fall: int = 1
    user: tuple[str, ...] | None = None
    init_fail: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackFile(Located):
    """A ``track_file NAME { file ... }`` (alias ``vrrp_track_file``) tracker."""

    name: str = ""
    file: str | None = None
    weight: Weight = Weight(1)  # noqa: RUF009 (immutable)
    init_file: InitFile | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackProcess(Located):
    """A ``vrrp_track_process NAME { process ... }`` tracker."""

    name: str = ""
    process: tuple[str, ...] | None = None
    param_match: ParamMatch | None = None
    weight: Weight = Weight(0)  # noqa: RUF009 (immutable)
    quorum: int = 1
    quorum_max: int | None = None
    delay: float | None = None
    terminate_delay: float | None = None
    fork_delay: float | None = None
    full_command: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GarpGroup(Located):
    """A ``garp_group { garp_interval gna_interval interface(s) }`` block."""

    garp_interval: float | None = None
    gna_interval: float | None = None
    interface: str | None = None
    interfaces: tuple[str, ...] = ()
