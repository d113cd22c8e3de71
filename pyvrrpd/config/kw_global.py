"""Keyword table of ``global_defs``."""

from __future__ import annotations

from collections.abc import Sequence

from .convert import Conv, Invalid, address, boolean, decimal, integer, text, words
from .kw_vrrp_lines import words_node
from .model_vrrp_global import GlobalDefs
from .schema import BlockSpec, Kw, Mode

UINT = 2**32 - 1


def script_conv(what: str = "a script command line") -> Conv[str]:
    """A script command: all words joined (quote it to keep it as one word)."""

    def parse(args: Sequence[str]) -> str:
        if not args:
            raise Invalid(f"missing value: expected {what}")
        return " ".join(args)

    return Conv(parse, lambda v: (v,), what, nargs=None)


def optional_script() -> Conv[str]:
    """A script command that may be left out (the bare keyword gives "")."""
    return Conv(lambda a: " ".join(a), lambda v: (v,) if v else (), "an optional script", None)


def word_choice(*choices: str, bare: str | None = None) -> Conv[str]:
    """One word out of ``choices`` (case-sensitive, as keepalived); ``bare`` if none given."""
    desc = "one of " + ", ".join(choices)

    def parse(args: Sequence[str]) -> str:
        if not args and bare is not None:
            return bare
        if len(args) != 1 or args[0] not in choices:
            raise Invalid(f"'{' '.join(args)}' is not valid: expected {desc}")
        return args[0]

    return Conv(parse, lambda v: () if v == bare else (v,), desc, nargs=None)


def multicast(family: int) -> Conv[object]:
    """A multicast group address of one family."""
    base = address(family)

    def parse(args: Sequence[str]) -> object:
        a = base.parse(args)
        if not a.is_multicast:
            raise Invalid(f"vrrp_mcast_group{family} [{args[0]}] is not multicast")
        return a

    return Conv(parse, lambda v: (str(v),), f"an IPv{family} multicast address")


def _process_kws() -> list[Kw]:
    out: list[Kw] = []
    for proc in ("vrrp", "checker", "bfd"):
        out += [
            Kw(f"{proc}_priority", f"{proc}_priority", integer(-20, 19)),
            Kw(f"{proc}_no_swap", f"{proc}_no_swap", mode=Mode.FLAG),
            Kw(f"{proc}_rt_priority", f"{proc}_rt_priority", integer(1, 99)),
            Kw(
                f"{proc}_rlimit_rttime",
                f"{proc}_rlimit_rttime",
                integer(1, UINT),
                aliases=(f"{proc}_rlimit_rtime",),
            ),
            Kw(f"{proc}_cpu_affinity", f"{proc}_cpu_affinity", words("CPU numbers")),
        ]
    return out


#: keepalived global_defs keywords that pyvrrpd accepts without acting on them.
RECOGNISED_GLOBAL = (
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "lvs_process_name",
    "bfd_process_name",
    "use_symlink_paths",
    "set_supplementary_groups",
    "checker_log_all_failures",
    "no_email_faults",
    "disable_local_igmp",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables",
    "nftables_priority",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "nftables_counters",
    "fifo_write_vrrp_states_on_reload",
    "snmp_socket",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_checker",
    "snmp_vs_stats_update_interval",
    "snmp_rs_stats_update_interval",
    "enable_dbus",
    "dbus_service_name",
    "dbus_no_interface_name",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "rs_init_notifies",
    "no_checker_emails",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vrrp_delay_after_boot",
    "vrrp_owner_ignore_adverts",
    "vmac_prefix",
    "vmac_addr_prefix",
    "umask",
    "random_seed",
    "reload_check_config",
    "reload_time_file",
    "reload_repeat",
    "reload_file",
    "include_check",
    "config_save_dir",
    "tmp_config_directory",
    "data_use_instance",
    "json_version",
    "iproute_usr_dir",
    "iproute_etc_dir",
    "state_dump_file",
    "stats_dump_file",
    "json_dump_file",
    "vrrp_garp_extra_if",
    "vrrp_vmac_garp_intvl",
)

_NOTIFY_FIFO = words("a FIFO path [user [group]]")
_SECS = integer(0, UINT // 1000000, what="whole seconds")

GLOBAL_KWS: tuple[Kw, ...] = (
    Kw("router_id", "router_id", text("a router name")),
    Kw(
        "notification_email",
        "notification_email",
        text("an e-mail address"),
        Mode.LINES,
        parse_node=words_node,
    ),
    Kw("notification_email_from", "notification_email_from", text("an e-mail address")),
    Kw("smtp_server", "smtp_server", words("an SMTP server [port]")),
    Kw("smtp_helo_name", "smtp_helo_name", text("a host name")),
    Kw("smtp_connect_timeout", "smtp_connect_timeout", integer(1, UINT // 1000000)),
    Kw("smtp_alert", "smtp_alert", boolean()),
    Kw("smtp_alert_vrrp", "smtp_alert_vrrp", boolean()),
    Kw("smtp_alert_checker", "smtp_alert_checker", boolean()),
    Kw("enable_script_security", "enable_script_security", mode=Mode.FLAG),
    Kw("script_user", "script_user", words("a user name [group]")),
    Kw("startup_script", "startup_script", script_conv()),
    Kw("startup_script_timeout", "startup_script_timeout", integer(1, 1000)),
    Kw("shutdown_script", "shutdown_script", script_conv()),
    Kw("shutdown_script_timeout", "shutdown_script_timeout", integer(1, 1000)),
    Kw("notify_fifo", "notify_fifo", _NOTIFY_FIFO),
    Kw("notify_fifo_script", "notify_fifo_script", script_conv()),
    Kw("vrrp_notify_fifo", "vrrp_notify_fifo", _NOTIFY_FIFO),
    Kw("vrrp_notify_fifo_script", "vrrp_notify_fifo_script", script_conv()),
    Kw("lvs_notify_fifo", "lvs_notify_fifo", _NOTIFY_FIFO),
    Kw("lvs_notify_fifo_script", "lvs_notify_fifo_script", script_conv()),
    Kw("vrrp_notify_priority_changes", "vrrp_notify_priority_changes", boolean()),
    Kw("max_auto_priority", "max_auto_priority", integer(-1, 99)),
    Kw("min_auto_priority_delay", "min_auto_priority_delay", integer(1, 10000000)),
    Kw(
        "dynamic_interfaces",
        "dynamic_interfaces",
        word_choice("allow_if_changes", "true", bare="true"),
    ),
    Kw("default_interface", "default_interface", text("an interface name")),
    Kw("lvs_flush", "lvs_flush", mode=Mode.FLAG),
    Kw(
        "lvs_flush_on_stop",
        "lvs_flush_on_stop",
        word_choice("VS", "ALL", bare="ALL"),
        aliases=("lvs_flush_onstop",),
    ),
    Kw("lvs_timeouts", "lvs_timeouts", words("tcp N | tcpfin N | udp N")),
    Kw("lvs_sync_daemon", "lvs_sync_daemon", words("INTERFACE [VRRP_INSTANCE] [options]")),
    Kw("vrrp_mcast_group4", "vrrp_mcast_group4", multicast(4)),
    Kw("vrrp_mcast_group6", "vrrp_mcast_group6", multicast(6)),
    Kw("vrrp_garp_master_delay", "vrrp_garp_master_delay", _SECS),
    Kw("vrrp_garp_master_repeat", "vrrp_garp_master_repeat", integer(1, UINT)),
    Kw("vrrp_garp_master_refresh", "vrrp_garp_master_refresh", integer(0, UINT)),
    Kw("vrrp_garp_master_refresh_repeat", "vrrp_garp_master_refresh_repeat", integer(1, UINT)),
    Kw("vrrp_garp_lower_prio_delay", "vrrp_garp_lower_prio_delay", _SECS),
    Kw("vrrp_garp_lower_prio_repeat", "vrrp_garp_lower_prio_repeat", integer(0, 2**31 - 1)),
    Kw("vrrp_down_timer_adverts", "vrrp_down_timer_adverts", integer(1, 100)),
    Kw("vrrp_garp_interval", "vrrp_garp_interval", decimal(0.000001, 4294.967295)),
    Kw("vrrp_gna_interval", "vrrp_gna_interval", decimal(0.000001, 4294.967295)),
    Kw("vrrp_min_garp", "vrrp_min_garp", boolean()),
    Kw("vrrp_lower_prio_no_advert", "vrrp_lower_prio_no_advert", boolean()),
    Kw("vrrp_higher_prio_send_advert", "vrrp_higher_prio_send_advert", boolean()),
    Kw("vrrp_version", "vrrp_version", integer(2, 3)),
    Kw("vrrp_check_unicast_src", "vrrp_check_unicast_src", mode=Mode.FLAG),
    Kw("v3_checksum_as_v2", "v3_checksum_as_v2", mode=Mode.FLAG),
    Kw("vrrp_skip_check_adv_addr", "vrrp_skip_check_adv_addr", mode=Mode.FLAG),
    Kw("vrrp_strict", "vrrp_strict", mode=Mode.FLAG),
    Kw("vrrp_startup_delay", "vrrp_startup_delay", decimal(0, 3600)),
    Kw("log_unknown_vrids", "log_unknown_vrids", mode=Mode.FLAG),
    Kw("enable_traps", "enable_traps", mode=Mode.FLAG),
    *_process_kws(),
    *(Kw(name, mode=Mode.RECOGNISED) for name in RECOGNISED_GLOBAL),
)

GLOBAL_SPEC = BlockSpec("global_defs", GlobalDefs, GLOBAL_KWS, doc="global settings")
