"""VRRP blocks and keywords: typed values, keepalived's defaults, parse diagnostics."""

from __future__ import annotations

import ipaddress

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.model import Config
from pyvrrpd.config.model_vrrp import (
    AuthType,
    GlobalDefs,
    ParamMatch,
    State,
    TrackedObject,
    VrrpInstance,
    Weight,
)
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.config.validate import validate

ip = ipaddress.ip_address
iface = ipaddress.ip_interface


def build(text: str, file: str = "v.conf") -> tuple[Config, list[Diagnostic]]:
    ctx = Ctx()
    lines = ((line, SourceLoc(file, i + 1)) for i, line in enumerate(text.splitlines()))
    config = build_config(parse_lines(lines), ctx)
    return config, ctx.diagnostics


def errors(diags: list[Diagnostic]) -> list[tuple[int, str]]:
    return [(d.loc.line, d.message) for d in diags if d.severity is Severity.ERROR and d.loc]


def instance(body: str) -> tuple[VrrpInstance, list[Diagnostic]]:
    config, diags = build("vrrp_instance VI_1 {\n" + body + "\n}\n")
    assert len(config.vrrp_instances) == 1
    return config.vrrp_instances[0], diags


INSTANCE = """\
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.5
    version 3
    use_vmac vrrp.51
    vmac_xmit_base
    nopreempt
    preempt_delay 30
    garp_master_delay 2
    garp_master_repeat 3
    garp_master_refresh 60
    down_timer_adverts 5
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
        10.0.0.3 min_ttl 250 max_ttl 255
    }
    track_interface {
        eth1 weight -20
        eth2
    }
    track_script {
        chk_http weight 10 reverse
        chk_dns
    }
    track_file {
        tf weight 0
    }
    track_process {
        haproxy weight -30
    }
    notify_master "/etc/ka/master.sh VI_1"
    notify /etc/ka/notify.sh
    smtp_alert
    no_accept
    strict_mode off
    kernel_rx_buf_size 65536
    virtual_ipaddress {
        10.0.0.10/24 dev eth0 brd + label eth0:vip scope global
        10.0.0.11 no_track
    }
    virtual_ipaddress_excluded {
        2001:db8::10/64 dev eth0 -nodad noprefixroute
    }
}
"""


def test_instance_values() -> None:
    config, diags = build(INSTANCE)
    assert errors(diags) == []
    i = config.vrrp_instances[0]
    assert i.name == "VI_1" and i.state is State.BACKUP and i.interface == "eth0"
    assert (i.virtual_router_id, i.priority, i.advert_int, i.version) == (51, 150, 0.5, 3)
    assert i.use_vmac is not None and i.use_vmac.name == "vrrp.51" and i.vmac_xmit_base
    assert i.nopreempt and i.preempt_delay == 30
    assert (i.garp_master_delay, i.garp_master_repeat, i.garp_master_refresh) == (2, 3, 60)
    assert i.down_timer_adverts == 5
    assert i.unicast_src_ip == ip("10.0.0.1")
    assert [(str(p.address), p.min_ttl, p.max_ttl) for p in i.unicast_peers] == [
        ("10.0.0.2", None, None),
        ("10.0.0.3", 250, 255),
    ]
    assert [(t.name, t.weight, t.reverse) for t in i.track_interfaces] == [
        ("eth1", -20, None),
        ("eth2", None, None),
    ]
    assert [(t.name, t.weight, t.reverse) for t in i.track_scripts] == [
        ("chk_http", 10, True),
        ("chk_dns", None, None),
    ]
    assert i.track_files == (TrackedObject(name="tf", weight=0),)
    assert i.track_processes == (TrackedObject(name="haproxy", weight=-30),)
    assert i.notify_master == "/etc/ka/master.sh VI_1" and i.notify == "/etc/ka/notify.sh"
    assert i.smtp_alert is True and i.accept is False and i.strict_mode is False
    assert i.kernel_rx_buf_size == 65536
    vip1, vip2 = i.virtual_ipaddresses
    assert vip1.address == iface("10.0.0.10/24") and vip1.dev == "eth0" and vip1.brd == "+"
    assert (vip1.label, vip1.scope, vip1.no_track) == ("eth0:vip", "global", False)
    assert vip2.address == iface("10.0.0.11/32") and vip2.no_track
    (evip,) = i.virtual_ipaddresses_excluded
    assert evip.address == iface("2001:db8::10/64") and evip.flags == ("-nodad", "noprefixroute")
    # each list item knows its own line
    assert vip1.loc == SourceLoc("v.conf", 42) and i.unicast_peers[1].loc == SourceLoc("v.conf", 19)
    assert i.locs["priority"] == SourceLoc("v.conf", 5)


def test_instance_defaults() -> None:
    i, diags = instance("    interface eth0")
    assert errors(diags) == []
    assert (i.advert_int, i.garp_master_delay, i.garp_master_repeat) == (1.0, 5, 5)
    assert (i.garp_master_refresh, i.garp_master_refresh_repeat, i.down_timer_adverts) == (0, 1, 3)
    assert i.nopreempt is False and i.preempt_delay == 0 and i.authentication is None
    assert i.priority is None and i.effective_priority == 100
    assert i.effective_state is State.BACKUP
    assert i.effective_version(GlobalDefs()) == 2
    assert i.effective_version(GlobalDefs(vrrp_version=3)) == 3
    assert i.multicast_group(GlobalDefs()) == ip("224.0.0.18")


def test_derived_priority_state_version() -> None:
    master, _ = instance("    state MASTER")
    assert master.effective_priority == 255  # keepalived: MASTER without priority owns
    owner, _ = instance("    priority 255")
    assert owner.effective_state is State.MASTER
    v6, _ = instance("    virtual_ipaddress {\n        fe80::1\n    }")
    assert v6.family == 6 and v6.effective_version(GlobalDefs()) == 3
    assert v6.multicast_group(GlobalDefs()) == ip("ff02::12")
    pre, _ = instance("    nopreempt\n    preempt")
    assert pre.nopreempt is False


def test_authentication_block() -> None:
    i, diags = instance(
        "    authentication {\n        auth_type PASS\n        auth_pass s3cr3t\n    }"
    )
    assert errors(diags) == []
    assert i.authentication is not None
    assert (i.authentication.auth_type, i.authentication.auth_pass) == (AuthType.PASS, "s3cr3t")
    _, diags = instance("    authentication {\n        auth_type pass\n    }")
    assert errors(diags) == [
        (3, "authentication auth_type: unknown value 'pass': expected PASS or AH")
    ]


def test_bad_instance_values_are_errors() -> None:
    body = """\
    state master
    virtual_router_id 0
    priority 256
    advert_int 0.001
    version 4
    down_timer_adverts 101
    garp_master_repeat 0
    interface averyveryverylongname
    debug 9"""
    i, diags = instance(body)
    assert [line for line, _ in errors(diags)] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert i.state is None and i.virtual_router_id is None and i.priority is None


def test_deprecated_keywords_keepalived_reports() -> None:
    body = "    lvs_sync_daemon_interface eth0\n    linkbeat_use_polling\n    vmac_garp_intvl 5"
    i, diags = instance(body)
    assert [(line, d) for line, d in errors(diags)] == [
        (2, "'lvs_sync_daemon_interface' is deprecated"),
        (3, "'linkbeat_use_polling' is deprecated"),
        (4, "'vmac_garp_intvl' is deprecated"),
    ]
    assert i.lvs_sync_daemon_interface == "eth0" and i.garp_extra_if == ("5",)


def test_recognised_instance_keywords() -> None:
    _, diags = instance("    track_bfd {\n        b1\n    }\n    use_ipvlan\n    vrf blue")
    assert errors(diags) == []
    assert [d.code for d in diags] == ["not-supported"] * 3


def test_vip_line_diagnostics() -> None:
    body = """\
    virtual_ipaddress {
        10.0.0.300
        10.0.0.1/33
        10.0.0.2 dev
        10.0.0.3 frobnicate
        2001:db8::1 scope link label x
        10.0.0.4 brd 1.2.3.4 peer 10.0.0.9
        2001:db8::2 brd +
        10.0.0.5 label averyveryverylonglabel
    }"""
    i, diags = instance(body)
    errs = errors(diags)
    assert [line for line, _ in errs] == [3, 4, 5, 6, 7, 7, 8, 9, 10]
    assert "invalid IP address '10.0.0.300'" in errs[0][1]
    # kept: /33 falls back to /32, unknown option ignored, IPv6 scope/label dropped
    kept = {str(v.address): v for v in i.virtual_ipaddresses}
    assert set(kept) == {"10.0.0.1/32", "10.0.0.3/32", "2001:db8::1/128", "10.0.0.4/32"}
    assert kept["2001:db8::1/128"].scope is None and kept["2001:db8::1/128"].label is None
    assert kept["10.0.0.4/32"].brd is None and kept["10.0.0.4/32"].peer == ip("10.0.0.9")


def test_routes_typed() -> None:
    body = """\
    virtual_routes {
        192.168.10.0/24 via 10.0.0.254 dev eth0 src 10.0.0.1 table 100 metric 5 scope link
        default via 10.0.0.1 dev eth0 protocol keepalived onlink
        blackhole 10.9.0.0/16
        inet6 default via fe80::1 dev eth0
        10.8.0.0/16 dev eth0 mtu lock 1400 no_track
        10.7.0.0/16 nexthop via 10.0.0.2 dev eth0 weight 2 nexthop via 10.0.0.3 dev eth1
        to unreachable 10.6.0.0/16 dev eth0
    }"""
    i, diags = instance(body)
    assert errors(diags) == []
    r = i.virtual_routes
    assert r[0].dst == iface("192.168.10.0/24") and r[0].via == ip("10.0.0.254")
    assert (r[0].dev, r[0].src, r[0].table, r[0].metric, r[0].scope) == (
        "eth0",
        ip("10.0.0.1"),
        "100",
        5,
        "link",
    )
    assert r[1].dst is None and r[1].protocol == "keepalived" and r[1].onlink
    assert r[2].type == "blackhole" and r[2].dst == iface("10.9.0.0/16")
    assert r[3].family == 6 and r[3].dst is None and r[3].effective_family == 6
    assert r[4].options == (("mtu", "lock", "1400"),) and r[4].no_track
    assert [(str(h.via), h.dev, h.weight) for h in r[5].nexthops] == [
        ("10.0.0.2", "eth0", 2),
        ("10.0.0.3", "eth1", None),
    ]
    assert r[6].type == "unreachable"


def test_route_diagnostics() -> None:
    body = """\
    virtual_routes {
        10.1.0.0/16 gw 10.0.0.1 dev eth0
        10.2.0.0/16 via 10.0.0.1 or 10.0.0.2 dev eth0
        via 10.0.0.1 dev eth0
        10.3.0.0/16 via 2001:db8::1
        10.4.0.0/16 bogus
        10.5.0.0/16 as to 1.1.1.1
    }"""
    i, diags = instance(body)
    assert errors(diags) == [
        (3, "virtual_routes: 'gw' for routes is deprecated"),
        (4, "virtual_routes: 'or' for routes is deprecated"),
        (5, "virtual_routes: route must have a destination"),
        (6, "virtual_routes: cannot mix IPv4 and IPv6 addresses for route"),
        (7, "virtual_routes: unknown route keyword bogus"),
        (8, "virtual_routes: 'as [to]' (nat) not supported"),
    ]
    # deprecated forms are still kept, as keepalived does
    assert [str(r.dst) for r in i.virtual_routes] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert i.virtual_routes[0].gw_keyword and i.virtual_routes[1].or_via == ip("10.0.0.2")


def test_rules_typed_and_diagnostics() -> None:
    body = """\
    virtual_rules {
        from 10.0.0.0/8 table 100 priority 100
        to 192.168.0.0/16 iif eth0 fwmark 0x10/0xff lookup main preference 200
        from all goto 500 priority 300
        from 10.0.0.1 priority 10
        from 10.0.0.0/8 table 5 blackhole priority 11
        from 192.168.100./24 table 1 priority 12
    }"""
    i, diags = instance(body)
    r = i.virtual_rules
    assert r[0].from_prefix == iface("10.0.0.0/8") and r[0].table == "100" and r[0].priority == 100
    assert (r[1].iif, r[1].fwmark, r[1].fwmask, r[1].table) == ("eth0", 16, 255, "main")
    assert r[2].action == "goto" and r[2].goto == 500
    assert errors(diags) == [
        (6, "virtual_rules: no action specified for rule - ignoring"),
        (
            7,
            "virtual_rules: cannot specify more than one of table/nop/goto/blackhole/"
            "prohibit/unreachable/l3mdev for a rule",
        ),
        (8, "virtual_rules: invalid rule from address 192.168.100./24"),
    ]


def test_tracker_line_diagnostics() -> None:
    body = """\
    track_interface {
        eth1 weight 300
        eth2 weight
        eth3 wait 5
        eth4 weight 254
    }"""
    i, diags = instance(body)
    assert [line for line, _ in errors(diags)] == [3, 4, 5, 6]
    assert i.track_interfaces == (TrackedObject(name="eth4", weight=253),)


SCRIPTS = """\
vrrp_script chk {
    script "/usr/bin/curl -sf http://localhost/"
    interval 2
    timeout 3
    weight -20 reverse
    rise 2
    fall 3
    user nobody
    init_fail
}
track_file tf {
    file /run/ka/state
    weight -5 reverse
    init_file 10 overwrite
}
vrrp_track_file old {
    file /run/old
}
vrrp_track_process haproxy {
    process /usr/sbin/haproxy -f /etc/haproxy.cfg
    param_match initial
    weight 40
    quorum 2
    quorum_max 4
    fork_delay 0.5
    terminate_delay 2
}
garp_group {
    garp_interval 0.01
    gna_interval 0.02
    interfaces {
        eth0 eth1
    }
}
"""


def test_tracker_blocks() -> None:
    config, diags = build(SCRIPTS)
    assert errors(diags) == []
    (s,) = config.vrrp_scripts
    assert s.script == "/usr/bin/curl -sf http://localhost/" and s.weight == Weight(-20, True)
    assert (s.interval, s.timeout, s.rise, s.fall, s.user, s.init_fail) == (
        2,
        3,
        2,
        3,
        ("nobody",),
        True,
    )
    tf, old = config.track_files
    assert (tf.file, tf.weight) == ("/run/ka/state", Weight(-5, True))
    assert tf.init_file is not None and (tf.init_file.value, tf.init_file.overwrite) == (10, True)
    assert old.name == "old" and old.weight == Weight(1)  # keepalived's default weight is 1
    (p,) = config.track_processes
    assert p.process == ("/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg")
    assert p.param_match is ParamMatch.INITIAL and p.weight == Weight(40)
    assert (p.quorum, p.quorum_max, p.fork_delay, p.terminate_delay) == (2, 4, 0.5, 2)
    (g,) = config.garp_groups
    assert (g.garp_interval, g.gna_interval, g.interfaces) == (0.01, 0.02, ("eth0", "eth1"))


def test_script_defaults_and_errors() -> None:
    config, diags = build("vrrp_script s {\n    script x\n    interval 0\n    weight 254\n}\n")
    assert [line for line, _ in errors(diags)] == [3, 4]
    (s,) = config.vrrp_scripts
    assert (s.interval, s.timeout, s.weight, s.rise, s.fall) == (1, None, Weight(0), 1, 1)


def test_sync_group_and_statics() -> None:
    text = """\
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2 VI_3
    }
    notify_master /bin/m
    smtp_alert
    global_tracking
    track_interface {
        eth1 weight -10
    }
}
static_ipaddress {
    192.168.1.5/24 dev eth0 scope link track_group tg
}
static_routes {
    10.0.0.0/8 via 192.168.1.1 dev eth0 track_group tg
}
static_rules {
    from 10.0.0.0/8 table 10 priority 5
}
"""
    config, diags = build(text)
    assert errors(diags) == [(8, "'global_tracking' is deprecated")]
    (sg,) = config.vrrp_sync_groups
    assert sg.group == ("VI_1", "VI_2", "VI_3") and sg.notify_master == "/bin/m"
    assert sg.smtp_alert is True and sg.global_tracking is True
    assert sg.track_interfaces == (TrackedObject(name="eth1", weight=-10),)
    (a,) = config.static_ipaddress
    assert (a.dev, a.scope, a.track_group) == ("eth0", "link", "tg")
    assert config.static_routes[0].track_group == "tg"
    assert config.static_rules[0].priority == 5


def test_block_heads() -> None:
    _, diags = build("vrrp_instance {\n}\nvrrp_script a b {\n}\n")
    assert errors(diags) == [
        (1, "vrrp_instance: vrrp_instance must have a name"),
        (3, "vrrp_script: vrrp_script must have a name"),
    ]


def test_validate_runs_clean_on_good_config() -> None:
    text = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.1/24
    }
}
"""
    config, diags = build(text)
    diags += validate(config, Environment(interfaces=frozenset({"lo", "eth0"})))
    assert errors(diags) == []
