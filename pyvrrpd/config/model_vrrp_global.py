"""The ``global_defs`` block (keepalived's defaults)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .schema import Located

DEFAULT_MCAST4 = ipaddress.IPv4Address("224.0.0.18")
DEFAULT_MCAST6 = ipaddress.IPv6Address("ff02::12")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalDefs(Located):
    """``global_defs { ... }``: settings shared by every instance and checker.

    Keywords keepalived knows but pyvrrpd does not act on are accepted with a
    "recognised, not supported yet" warning and are not stored.
    """

    router_id: str | None = None
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None
    smtp_server: tuple[str, ...] | None = None
    smtp_helo_name: str | None = None
    smtp_connect_timeout: int = 30
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    enable_script_security: bool = False
    script_user: tuple[str, ...] | None = None
    startup_script: str | None = None
    startup_script_timeout: int | None = None
    shutdown_script: str | None = None
    shutdown_script_timeout: int | None = None
    notify_fifo: tuple[str, ...] | None = None
    notify_fifo_script: str | None = None
    vrrp_notify_fifo: tuple[str, ...] | None = None
    vrrp_notify_fifo_script: str | None = None
    lvs_notify_fifo: tuple[str, ...] | None = None
    lvs_notify_fifo_script: str | None = None
    vrrp_notify_priority_changes: bool | None = None
    max_auto_priority: int | None = None
    min_auto_priority_delay: int | None = None
    dynamic_interfaces: str | None = None
    default_interface: str | None = None
    lvs_flush: bool = False
    lvs_flush_on_stop: str | None = None
    lvs_timeouts: tuple[str, ...] | None = None
    lvs_sync_daemon: tuple[str, ...] | None = None
    vrrp_mcast_group4: ipaddress.IPv4Address = DEFAULT_MCAST4
    vrrp_mcast_group6: ipaddress.IPv6Address = DEFAULT_MCAST6
    vrrp_garp_master_delay: int = 5
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: int = 0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: int | None = None
    vrrp_garp_lower_prio_repeat: int | None = None
    vrrp_down_timer_adverts: int = 3
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_min_garp: bool = False
    vrrp_lower_prio_no_advert: bool | None = None
    vrrp_higher_prio_send_advert: bool | None = None
    vrrp_version: int = 2
    vrrp_check_unicast_src: bool = False
    v3_checksum_as_v2: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    vrrp_startup_delay: float | None = None
    log_unknown_vrids: bool = False
    enable_traps: bool = False
    vrrp_priority: int | None = None
    checker_priority: int | None = None
    bfd_priority: int | None = None
    vrrp_no_swap: bool = False
    checker_no_swap: bool = False
    bfd_no_swap: bool = False
    vrrp_rt_priority: int | None = None
    checker_rt_priority: int | None = None
    bfd_rt_priority: int | None = None
    vrrp_rlimit_rttime: int | None = None
    checker_rlimit_rttime: int | None = None
    bfd_rlimit_rttime: int | None = None
    vrrp_cpu_affinity: tuple[str, ...] | None = None
    checker_cpu_affinity: tuple[str, ...] | None = None
    bfd_cpu_affinity: tuple[str, ...] | None = None
