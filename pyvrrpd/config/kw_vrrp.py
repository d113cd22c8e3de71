"""Keyword tables of the VRRP side: instances, sync groups, trackers, statics, root."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .convert import Conv, Invalid, address, boolean, decimal, integer, text, words
from .kw_global import GLOBAL_SPEC, script_conv, word_choice
from .kw_vrrp_lines import (
    IFNAMSIZ,
    fmt_peer,
    fmt_tracker,
    fmt_vip,
    line_conv,
    lines_node,
    parse_peer,
    parse_vip,
    tracker_parser,
    words_node,
)
from .kw_vrrp_routes import fmt_route, fmt_rule, parse_route, parse_rule
from .model_vrrp import (
    GarpGroup,
    TrackFile,
    TrackProcess,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from .model_vrrp_items import (
    Authentication,
    AuthType,
    InitFile,
    ParamMatch,
    State,
    Vmac,
    Weight,
)
from .schema import BlockSpec, Ctx, Kw, Mode
from .tree import Node

UINT = 2**32 - 1


def name_head(block: str) -> Conv[dict[str, Any]]:
    """The ``NAME`` after a block keyword."""

    def parse(args: Sequence[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise Invalid(f"{block} must have a name", f"write '{block} NAME {{'")
        return {"name": args[0]}

    def fmt(head: Mapping[str, Any]) -> tuple[str, ...]:
        return (str(head["name"]),)

    return Conv(parse, fmt, "a name")


def exact_enum(enum_cls: Any, what: str) -> Conv[Any]:
    """An enum written exactly as keepalived spells it (upper case)."""

    def parse(args: Sequence[str]) -> Any:
        if len(args) != 1:
            raise Invalid(f"expected {what}")
        for m in enum_cls:
            if m.value == args[0]:
                return m
        raise Invalid(f"unknown value '{args[0]}': expected {what}")

    return Conv(parse, lambda v: (v.value,), what)


def ifname() -> Conv[str]:
    """An interface name (shorter than IFNAMSIZ)."""

    def parse(args: Sequence[str]) -> str:
        name = text("an interface name").parse(args)
        if len(name) >= IFNAMSIZ:
            raise Invalid(f"interface name '{name}' too long", f"at most {IFNAMSIZ - 1} characters")
        return name

    return Conv(parse, lambda v: (v,), "an interface name")


def weight_conv(lo: int, hi: int, owner: str) -> Conv[Weight]:
    """``WEIGHT [reverse]``."""

    def parse(args: Sequence[str]) -> Weight:
        if not args or len(args) > 2:
            raise Invalid("expected WEIGHT [reverse]")
        value = integer(lo, hi, f"a weight from {lo} to {hi}").parse(args[:1])
        if len(args) == 2 and args[1] != "reverse":
            raise Invalid(f"{owner} unknown weight option {args[1]}", "only 'reverse' is allowed")
        return Weight(value, len(args) == 2)

    def fmt(w: Weight) -> tuple[str, ...]:
        return (str(w.value), "reverse") if w.reverse else (str(w.value),)

    return Conv(parse, fmt, f"a weight from {lo} to {hi} [reverse]", nargs=None)


_MAC = re.compile(r"^[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){3,5}:?$")


def _parse_vmac(args: Sequence[str]) -> Vmac:
    name = mac = None
    for word in args[:2]:
        if ":" in word:
            if mac is not None:
                raise Invalid("VMAC interface address already specified")
            if not _MAC.match(word):
                raise Invalid(f"VMAC invalid MAC address {word}")
            if int(word.split(":")[0], 16) & 1:
                raise Invalid(f"VMAC MAC address is multicast {word}")
            mac = word
        else:
            if name is not None:
                raise Invalid("VMAC interface name already specified")
            if len(word) >= IFNAMSIZ or "/" in word or word in (".", ".."):
                raise Invalid(f"VMAC interface name '{word}' too long or invalid characters")
            name = word
    if len(args) > 2:
        raise Invalid(f"unexpected '{args[2]}'", "write 'use_vmac [NAME] [MAC]'")
    return Vmac(name=name, mac=mac)


def _fmt_vmac(v: Vmac) -> tuple[str, ...]:
    return tuple(w for w in (v.name, v.mac) if w is not None)


VMAC_CONV: Conv[Vmac] = Conv(_parse_vmac, _fmt_vmac, "[NAME] [MAC]", nargs=None)


def _parse_garp_extra_if(args: Sequence[str]) -> tuple[str, ...]:
    has_time = False
    for word in args:
        if word == "all":
            continue
        integer(0, 86400, "seconds from 0 to 86400").parse([word])
        has_time = True
    if not has_time:
        raise Invalid("specified without time", "write 'garp_extra_if SECONDS [all]'")
    return tuple(args)


GARP_EXTRA_IF: Conv[tuple[str, ...]] = Conv(
    _parse_garp_extra_if, lambda v: tuple(v), "SECONDS [all]", nargs=None
)


def _parse_init_file(args: Sequence[str]) -> InitFile:
    value, overwrite = 0, False
    for word in args:
        if word == "overwrite":
            overwrite = True
        elif re.fullmatch(r"-?\d+", word):
            value = int(word)
            if not -254 <= value <= 254:
                raise Invalid(f"init value {value} is outside sensible range [-254, 254]")
        else:
            raise Invalid(f"unknown track file init option {word}")
    return InitFile(value=value, overwrite=overwrite)


def _fmt_init_file(v: InitFile) -> tuple[str, ...]:
    return (str(v.value), *(("overwrite",) if v.overwrite else ()))


def _param_match(args: Sequence[str]) -> ParamMatch:
    if not args:
        return ParamMatch.EXACT
    if len(args) == 1 and args[0] in ("initial", "partial"):
        return ParamMatch(args[0])
    raise Invalid(f"invalid param_match type {' '.join(args)}", "use initial or partial")


def deprecated_error(
    conv: Conv[Any], hint: str, value_of: Callable[[Any], Any] = lambda v: v
) -> Callable[[Node, Ctx], Any]:
    """A parse_node for keywords keepalived still takes but reports as config errors."""

    def parse_node(node: Node, ctx: Ctx) -> Any:
        ctx.error(node.loc, f"'{node.keyword}' is deprecated", hint, "deprecated")
        return value_of(conv.parse(node.arg_texts))

    return parse_node


def _tracker_kws(owner: str) -> tuple[Kw, ...]:
    out = []
    for what, field in (
        ("interface", "track_interfaces"),
        ("script", "track_scripts"),
        ("file", "track_files"),
        ("process", "track_processes"),
    ):
        parser = tracker_parser(what, allow_noreverse=what == "script")
        conv = line_conv(parser, fmt_tracker, f"NAME [weight N [reverse]] ({owner})")
        out.append(Kw(f"track_{what}", field, conv, Mode.LINES, parse_node=lines_node(parser)))
    out.append(Kw("track_bfd", mode=Mode.RECOGNISED, note="BFD"))
    return tuple(out)


def _notify_kws(names: Sequence[str]) -> tuple[Kw, ...]:
    return tuple(Kw(n, n, script_conv()) for n in names)


def _lines(name: str, field: str, parser: Any, fmt: Any, what: str) -> Kw:
    return Kw(name, field, line_conv(parser, fmt, what), Mode.LINES, parse_node=lines_node(parser))


AUTH_SPEC = BlockSpec(
    "authentication",
    Authentication,
    (
        Kw("auth_type", "auth_type", exact_enum(AuthType, "PASS or AH")),
        Kw("auth_pass", "auth_pass", text("a password (up to 8 characters)")),
        *(
            Kw(n, mode=Mode.RECOGNISED)
            for n in ("auth_hmac", "key", "active_key", "time_window", "anti_replay", "mode")
        ),
    ),
    doc="VRRPv2 authentication",
)

_SECS = integer(0, UINT // 1000000, what="whole seconds")

INSTANCE_KWS: tuple[Kw, ...] = (
    Kw("state", "state", exact_enum(State, "MASTER or BACKUP")),
    Kw("interface", "interface", ifname()),
    Kw("use_vmac", "use_vmac", VMAC_CONV),
    Kw("use_vmac_addr", "use_vmac_addr", mode=Mode.FLAG),
    Kw("vmac_xmit_base", "vmac_xmit_base", mode=Mode.FLAG),
    _lines("unicast_peer", "unicast_peers", parse_peer, fmt_peer, "ADDRESS [min_ttl N]"),
    Kw("unicast_fault_no_peer", "unicast_fault_no_peer", mode=Mode.FLAG),
    Kw("check_unicast_src", "check_unicast_src", mode=Mode.FLAG),
    Kw("old_unicast_checksum", "old_unicast_checksum", word_choice("never", bare="config")),
    Kw("native_ipv6", "native_ipv6", mode=Mode.FLAG),
    Kw("v3_checksum_as_v2", "v3_checksum_as_v2", mode=Mode.FLAG),
    Kw("dont_track_primary", "dont_track_primary", mode=Mode.FLAG),
    *_tracker_kws("vrrp_instance"),
    Kw("mcast_src_ip", "mcast_src_ip", address()),
    Kw("unicast_src_ip", "unicast_src_ip", address()),
    Kw("mcast_dst_ip", "mcast_dst_ip", address()),
    Kw("track_src_ip", "track_src_ip", mode=Mode.FLAG),
    Kw("virtual_router_id", "virtual_router_id", integer(1, 255, "a VRID from 1 to 255")),
    Kw("unicast_ttl", "unicast_ttl", integer(0, 255)),
    Kw("version", "version", integer(2, 3, "2 or 3")),
    Kw("priority", "priority", integer(1, 255, "a priority from 1 to 255")),
    Kw("advert_int", "advert_int", decimal(0.01, 255, "seconds from 0.01 to 255")),
    _lines("virtual_ipaddress", "virtual_ipaddresses", parse_vip, fmt_vip, "ADDRESS[/LEN] ..."),
    _lines(
        "virtual_ipaddress_excluded",
        "virtual_ipaddresses_excluded",
        parse_vip,
        fmt_vip,
        "ADDRESS[/LEN] ...",
    ),
    Kw("promote_secondaries", "promote_secondaries", mode=Mode.FLAG),
    Kw(
        "linkbeat_use_polling",
        "linkbeat_use_polling",
        mode=Mode.FLAG,
        parse_node=deprecated_error(
            words("", 0), "use a linkbeat_interfaces block", lambda _v: True
        ),
    ),
    _lines("virtual_routes", "virtual_routes", parse_route, fmt_route, "an ip route"),
    _lines("virtual_rules", "virtual_rules", parse_rule, fmt_rule, "an ip rule"),
    Kw("accept", "accept", mode=Mode.FLAG, const=True),
    Kw("no_accept", "accept", mode=Mode.FLAG, const=False),
    Kw("skip_check_adv_addr", "skip_check_adv_addr", boolean()),
    Kw("strict_mode", "strict_mode", boolean()),
    Kw("nopreempt", "nopreempt", mode=Mode.FLAG, const=True),
    Kw("preempt", "nopreempt", mode=Mode.FLAG, const=False),
    Kw("preempt_delay", "preempt_delay", decimal(0, 1000, "seconds from 0 to 1000")),
    Kw("debug", "debug", integer(0, 4)),
    *_notify_kws(
        (
            "notify_backup",
            "notify_master",
            "notify_fault",
            "notify_stop",
            "notify",
            "notify_master_rx_lower_pri",
        )
    ),
    Kw(
        "notify_deleted",
        "notify_deleted",
        Conv(lambda a: " ".join(a), lambda v: (v,) if v else (), "[a script]", None),
    ),
    Kw("smtp_alert", "smtp_alert", boolean()),
    Kw("notify_priority_changes", "notify_priority_changes", boolean()),
    Kw(
        "lvs_sync_daemon_interface",
        "lvs_sync_daemon_interface",
        ifname(),
        parse_node=deprecated_error(ifname(), "use global_defs lvs_sync_daemon"),
    ),
    Kw("garp_master_delay", "garp_master_delay", _SECS),
    Kw("garp_master_refresh", "garp_master_refresh", integer(0, UINT)),
    Kw("garp_master_repeat", "garp_master_repeat", integer(1, UINT)),
    Kw("garp_master_refresh_repeat", "garp_master_refresh_repeat", integer(1, UINT)),
    Kw("garp_lower_prio_delay", "garp_lower_prio_delay", _SECS),
    Kw("garp_lower_prio_repeat", "garp_lower_prio_repeat", integer(0, 2**31 - 1)),
    Kw("down_timer_adverts", "down_timer_adverts", integer(1, 100)),
    Kw("garp_extra_if", "garp_extra_if", GARP_EXTRA_IF),
    Kw(
        "vmac_garp_intvl",
        "garp_extra_if",
        GARP_EXTRA_IF,
        parse_node=deprecated_error(GARP_EXTRA_IF, "use 'garp_extra_if'"),
    ),
    Kw("lower_prio_no_advert", "lower_prio_no_advert", boolean()),
    Kw("higher_prio_send_advert", "higher_prio_send_advert", boolean()),
    Kw("kernel_rx_buf_size", "kernel_rx_buf_size", integer(0, UINT)),
    Kw("authentication", "authentication", mode=Mode.BLOCK, spec=AUTH_SPEC),
    *(
        Kw(n, mode=Mode.RECOGNISED)
        for n in (
            "use_ipvlan",
            "vrf",
            "no_virtual_ipaddress",
            "timer_expired_backup",
            "thread_timer_expired",
            "owner_ignore_adverts",
        )
    ),
)

INSTANCE_SPEC = BlockSpec(
    "vrrp_instance",
    VrrpInstance,
    INSTANCE_KWS,
    head=name_head("vrrp_instance"),
    head_fields=("name",),
    doc="a VRRP router",
)

SYNC_GROUP_SPEC = BlockSpec(
    "vrrp_sync_group",
    VrrpSyncGroup,
    (
        Kw("group", "group", text("an instance name"), Mode.LINES, parse_node=words_node),
        *_tracker_kws("vrrp_sync_group"),
        *_notify_kws(("notify_backup", "notify_master", "notify_fault", "notify_stop", "notify")),
        Kw("smtp_alert", "smtp_alert", boolean()),
        Kw(
            "global_tracking",
            "global_tracking",
            mode=Mode.FLAG,
            parse_node=deprecated_error(
                words("", 0), "use track_interface/script/file on the sync group", lambda _v: True
            ),
        ),
        Kw("sync_group_tracking_weight", "sync_group_tracking_weight", mode=Mode.FLAG),
        Kw("notify_priority_changes", "notify_priority_changes", boolean()),
    ),
    head=name_head("vrrp_sync_group"),
    head_fields=("name",),
    doc="instances that change state together",
)

SCRIPT_SPEC = BlockSpec(
    "vrrp_script",
    VrrpScript,
    (
        Kw("script", "script", script_conv()),
        Kw("interval", "interval", integer(1, UINT // 1000000)),
        Kw("timeout", "timeout", integer(1, UINT // 1000000)),
        Kw("weight", "weight", weight_conv(-253, 253, "vrrp_script")),
        Kw("rise", "rise", integer(1, 2**31 - 1)),
        Kw("fall", "fall", integer(1, 2**31 - 1)),
        Kw("user", "user", words("a user name [group]")),
        Kw("init_fail", "init_fail", mode=Mode.FLAG),
    ),
    head=name_head("vrrp_script"),
    head_fields=("name",),
    doc="a tracking script",
)

TRACK_FILE_SPEC = BlockSpec(
    "track_file",
    TrackFile,
    (
        Kw("file", "file", text("a file path")),
        Kw("weight", "weight", weight_conv(-254, 254, "track_file")),
        Kw(
            "init_file",
            "init_file",
            Conv(_parse_init_file, _fmt_init_file, "[VALUE] [overwrite]", nargs=None),
        ),
    ),
    head=name_head("track_file"),
    head_fields=("name",),
    doc="a tracked file",
)

_DELAY = decimal(0.000001, 3600, "seconds up to 3600")

TRACK_PROCESS_SPEC = BlockSpec(
    "vrrp_track_process",
    TrackProcess,
    (
        Kw("process", "process", words("a process name [parameters]")),
        Kw(
            "param_match",
            "param_match",
            Conv(_param_match, lambda v: () if v is ParamMatch.EXACT else (v.value,), "", None),
        ),
        Kw("weight", "weight", weight_conv(-254, 254, "vrrp_track_process")),
        Kw("quorum", "quorum", integer(1, 65535)),
        Kw("quorum_max", "quorum_max", integer(0, 65535)),
        Kw("delay", "delay", _DELAY),
        Kw("terminate_delay", "terminate_delay", _DELAY),
        Kw("fork_delay", "fork_delay", _DELAY),
        Kw("full_command", "full_command", mode=Mode.FLAG),
    ),
    head=name_head("vrrp_track_process"),
    head_fields=("name",),
    doc="a tracked process",
)

GARP_GROUP_SPEC = BlockSpec(
    "garp_group",
    GarpGroup,
    (
        Kw("garp_interval", "garp_interval", decimal(0, 2**31 / 1e6)),
        Kw("gna_interval", "gna_interval", decimal(0, 2**31 / 1e6)),
        Kw("interface", "interface", ifname()),
        Kw("interfaces", "interfaces", text("an interface"), Mode.LINES, parse_node=words_node),
    ),
    doc="gratuitous ARP/NA pacing for interfaces",
)

_static_vip = functools.partial(parse_vip, static=True)
_static_route = functools.partial(parse_route, static=True)
_static_rule = functools.partial(parse_rule, static=True)

#: Top-level keywords of the VRRP side (global_defs, vrrp_instance, ...).
ROOT_KWS: Sequence[Kw] = (
    Kw("global_defs", "global_defs", mode=Mode.BLOCK, spec=GLOBAL_SPEC),
    Kw("vrrp_sync_group", "vrrp_sync_groups", mode=Mode.BLOCK, spec=SYNC_GROUP_SPEC, repeat=True),
    Kw("vrrp_script", "vrrp_scripts", mode=Mode.BLOCK, spec=SCRIPT_SPEC, repeat=True),
    Kw(
        "track_file",
        "track_files",
        mode=Mode.BLOCK,
        spec=TRACK_FILE_SPEC,
        repeat=True,
        aliases=("vrrp_track_file",),
    ),
    Kw(
        "vrrp_track_process",
        "track_processes",
        mode=Mode.BLOCK,
        spec=TRACK_PROCESS_SPEC,
        repeat=True,
    ),
    Kw("vrrp_instance", "vrrp_instances", mode=Mode.BLOCK, spec=INSTANCE_SPEC, repeat=True),
    Kw("garp_group", "garp_groups", mode=Mode.BLOCK, spec=GARP_GROUP_SPEC, repeat=True),
    _lines("static_ipaddress", "static_ipaddress", _static_vip, fmt_vip, "ADDRESS ..."),
    _lines("static_routes", "static_routes", _static_route, fmt_route, "an ip route"),
    _lines("static_rules", "static_rules", _static_rule, fmt_rule, "an ip rule"),
    Kw("track_group", mode=Mode.RECOGNISED, note="static track groups"),
    Kw("linkbeat_interfaces", mode=Mode.RECOGNISED),
    Kw("interface_up_down_delays", mode=Mode.RECOGNISED),
)
