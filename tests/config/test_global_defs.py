"""global_defs: values, keepalived's defaults, diagnostics with file and line."""

from __future__ import annotations

import ipaddress

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.model import Config
from pyvrrpd.config.model_vrrp import GlobalDefs
from pyvrrpd.config.schema import Ctx, render_block, render_text
from pyvrrpd.config.spec import ROOT
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.config.validate import validate


def build(text: str, file: str = "g.conf") -> tuple[Config, list[Diagnostic]]:
    ctx = Ctx()
    lines = ((line, SourceLoc(file, i + 1)) for i, line in enumerate(text.splitlines()))
    config = build_config(parse_lines(lines), ctx)
    return config, ctx.diagnostics + validate(config, Environment())


def errors(diags: list[Diagnostic]) -> list[tuple[int, str]]:
    return [(d.loc.line, d.message) for d in diags if d.severity is Severity.ERROR and d.loc]


FULL = """\
global_defs {
    router_id LB1
    notification_email {
        a@example.com b@example.com
        c@example.com
    }
    notification_email_from lb@example.com
    smtp_server 192.0.2.25 2525
    smtp_connect_timeout 10
    enable_script_security
    script_user nobody nogroup
    notify_fifo /run/ka.fifo
    vrrp_notify_fifo_script "/usr/bin/logger -t vrrp"
    max_auto_priority 50
    lvs_flush
    lvs_flush_on_stop VS
    lvs_timeouts tcp 900 tcpfin 120 udp 300
    lvs_sync_daemon eth0 VI_1 id 5
    vrrp_mcast_group4 224.0.0.19
    vrrp_mcast_group6 ff02::13
    vrrp_garp_master_delay 10
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
    vrrp_garp_interval 0.001
    vrrp_gna_interval 0.5
    vrrp_version 3
    vrrp_check_unicast_src
    vrrp_skip_check_adv_addr
    vrrp_strict
    dynamic_interfaces
    enable_traps
    vrrp_priority -10
    checker_no_swap
    bfd_rlimit_rtime 1000
}
"""


def test_every_value_parsed() -> None:
    config, diags = build(FULL)
    g = config.global_defs
    assert not [d for d in diags if d.loc and d.loc.line < 40 and d.code == "bad-value"]
    assert g.router_id == "LB1"
    assert g.notification_email == ("a@example.com", "b@example.com", "c@example.com")
    assert g.notification_email_from == "lb@example.com"
    assert g.smtp_server == ("192.0.2.25", "2525")
    assert g.smtp_connect_timeout == 10
    assert g.enable_script_security is True
    assert g.script_user == ("nobody", "nogroup")
    assert g.notify_fifo == ("/run/ka.fifo",)
    assert g.vrrp_notify_fifo_script == "/usr/bin/logger -t vrrp"
    assert g.max_auto_priority == 50
    assert g.lvs_flush is True and g.lvs_flush_on_stop == "VS"
    assert g.lvs_timeouts == ("tcp", "900", "tcpfin", "120", "udp", "300")
    assert g.lvs_sync_daemon == ("eth0", "VI_1", "id", "5")
    assert g.vrrp_mcast_group4 == ipaddress.IPv4Address("224.0.0.19")
    assert g.vrrp_mcast_group6 == ipaddress.IPv6Address("ff02::13")
    assert (g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (10, 3)
    assert g.vrrp_garp_master_refresh == 60
    assert g.vrrp_garp_interval == 0.001 and g.vrrp_gna_interval == 0.5
    assert g.vrrp_version == 3
    assert g.vrrp_check_unicast_src and g.vrrp_skip_check_adv_addr and g.vrrp_strict
    assert g.dynamic_interfaces == "true" and g.enable_traps
    assert g.vrrp_priority == -10 and g.checker_no_swap and g.bfd_rlimit_rttime == 1000
    # keyword locations are kept for diagnostics
    assert g.locs["vrrp_version"] == SourceLoc("g.conf", 26)


def test_defaults_are_keepalived_defaults() -> None:
    g = GlobalDefs()
    assert g.vrrp_version == 2
    assert str(g.vrrp_mcast_group4) == "224.0.0.18" and str(g.vrrp_mcast_group6) == "ff02::12"
    assert (g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (5, 5)
    assert (g.vrrp_garp_master_refresh, g.vrrp_garp_master_refresh_repeat) == (0, 1)
    assert g.vrrp_down_timer_adverts == 3 and g.smtp_connect_timeout == 30
    assert not g.vrrp_strict and not g.enable_script_security and g.router_id is None
    config, diags = build("global_defs {\n}\n")
    assert config.global_defs == GlobalDefs() and errors(diags) == []


def test_bad_values_are_errors_at_their_line() -> None:
    text = """\
global_defs {
    vrrp_garp_interval 0
    vrrp_version 4
    vrrp_mcast_group4 10.0.0.1
    vrrp_mcast_group6 224.0.0.18
    vrrp_garp_master_repeat 0
    vrrp_priority 40
    lvs_flush_on_stop SOME
}
"""
    config, diags = build(text)
    lines = [line for line, _ in errors(diags)]
    assert lines == [2, 3, 4, 5, 6, 7, 8]
    assert "not multicast" in errors(diags)[2][1]
    # the bad values leave keepalived's defaults in place
    assert config.global_defs.vrrp_version == 2
    assert str(config.global_defs.vrrp_mcast_group4) == "224.0.0.18"


def test_recognised_keywords_warn_not_fail() -> None:
    _, diags = build("global_defs {\n    enable_snmp_vrrp\n    vrrp_iptables\n}\n")
    assert errors(diags) == []
    codes = [(d.loc.line, d.code) for d in diags if d.loc]
    assert codes == [(2, "not-supported"), (3, "not-supported")]


def test_unknown_and_misplaced_keywords() -> None:
    _, diags = build("global_defs {\n    router_idd x\n    priority 100\n}\n")
    errs = [d for d in diags if d.severity is Severity.ERROR]
    assert [(d.loc.line if d.loc else 0, d.code) for d in errs] == [
        (2, "unknown-keyword"),
        (3, "misplaced-keyword"),
    ]
    assert errs[0].hint == "did you mean 'router_id'?"
    assert "vrrp_instance" in (errs[1].hint or "")


def test_lvs_sync_daemon_instance_must_exist() -> None:
    _, diags = build("global_defs {\n    lvs_sync_daemon eth0 VI_9\n}\n")
    assert (2, "Unable to find vrrp instance VI_9 for lvs_syncd - clearing lvs_syncd config") in (
        errors(diags)
    )


def test_global_defs_round_trip() -> None:
    config, _ = build(FULL)
    text = render_text(render_block(ROOT, config))
    again, _ = build(text)
    assert again.global_defs == config.global_defs
    assert "vrrp_garp_interval 0.001" in text and "lvs_flush_on_stop VS" in text
