"""LVS side of the config front end: virtual_server, real_server, virtual_server_group, SSL.

Golden values and defaults, diagnostics with file and line (in agreement with what
keepalived 2.2.7 ``-t`` says about the same snippets), render round trip, and the
keepalived sample corpus.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.lvs_effective import (
    effective_forwarding,
    effective_persistence_timeout,
    effective_port,
    effective_protocol,
    effective_real_server,
    effective_scheduler,
)
from pyvrrpd.config.model import Config
from pyvrrpd.config.model_lvs import (
    Forwarding,
    IpFamily,
    LvsMethod,
    LvsSched,
    Protocol,
    SorryServer,
    TunnelCsum,
    TunnelType,
    VsgFwmark,
    VsgRange,
)
from pyvrrpd.config.schema import Ctx, render_block, render_text
from pyvrrpd.config.spec import ROOT
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.config.validate_lvs import check

LVS_ROOTS = {"virtual_server", "virtual_server_group", "SSL"}
ENV = Environment(interfaces=frozenset({"lo", "eth0"}))
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
SAMPLES = CORPUS / "keepalived-samples"


def build(text: str, name: str = "t.conf") -> tuple[Config, list[Diagnostic]]:
    """Model and build diagnostics of keepalived.conf ``text`` (no preprocessing)."""
    lines = text.split("\n")
    nodes = parse_lines((ln, SourceLoc(name, i + 1)) for i, ln in enumerate(lines))
    ctx = Ctx()
    return build_config(nodes, ctx), ctx.diagnostics


def diagnose(text: str, name: str = "t.conf") -> tuple[Config, list[Diagnostic]]:
    """Build diagnostics plus the LVS side's validation and pitfalls."""
    config, diags = build(text, name)
    ctx = Ctx()
    check(config, ENV, ctx)
    return config, [*diags, *ctx.diagnostics]


def errors(diags: list[Diagnostic]) -> list[tuple[int, str]]:
    return [(d.loc.line if d.loc else 0, d.message) for d in diags if d.severity is Severity.ERROR]


def warnings(diags: list[Diagnostic]) -> list[tuple[int, str, str | None]]:
    return [
        (d.loc.line if d.loc else 0, d.message, d.code)
        for d in diags
        if d.severity is Severity.WARNING
    ]


def roundtrip(config: Config) -> Config:
    """The LVS blocks of ``config`` rendered to keepalived.conf and built again."""
    nodes = [n for n in render_block(ROOT, config) if n.words[0] in LVS_ROOTS]
    again, _ = build(render_text(nodes), "rendered.conf")
    return again


def vs_text(body: str = "", rs: str = "", head: str = "10.0.0.1 80", kind: str = "NAT") -> str:
    """A virtual server keepalived accepts, with extra lines (line 1 is the head)."""
    return (
        f"virtual_server {head} {{\n protocol TCP\n lb_algo rr\n lb_kind {kind}\n{body}\n"
        f" real_server 10.0.1.1 80 {{\n{rs}\n }}\n}}\n"
    )


FULL = """\
virtual_server 192.168.1.10 443 {
    delay_loop 6.5
    lb_algo wrr
    lb_kind DR
    persistence_timeout
    persistence_granularity 255.255.255.0
    persistence_engine sip
    protocol tcp
    ha_suspend
    smtp_alert on
    virtualhost www.example.com
    snmp_name web
    alpha
    omega
    quorum 3
    hysteresis 1
    quorum_up "/usr/bin/up.sh now" root
    quorum_down /usr/bin/down.sh
    weight 2
    sorry_server 192.168.1.99 443
    sorry_server_inhibit
    sorry_server_lvs_method TUN type gue port 6080 csum
    connect_timeout 4
    retry 2
    delay_before_retry 1.5
    warmup 0
    inhibit_on_failure
    flag-1
    real_server 192.168.1.20 443 {
        weight 5
        uthreshold 100
        lthreshold 10
        inhibit_on_failure off
        notify_up /bin/up
        notify_down "/bin/down x" nobody
        alpha false
        retry 4
        delay_before_retry 2
        warmup 3
        connect_timeout 2
        delay_loop 7
        smtp_alert no
        virtualhost rs.example.com
        snmp_name rs1
        lvs_method TUN type gre csum
    }
    real_server 192.168.1.21 443 {
    }
}
"""


def test_virtual_server_values_parsed() -> None:
    config, diags = build(FULL)
    assert errors(diags) == []
    (vs,) = config.virtual_servers
    assert vs.address == ipaddress.ip_address("192.168.1.10") and vs.port == 443
    assert vs.fwmark is None and vs.group is None
    assert vs.delay_loop == 6.5
    assert vs.lvs_sched is LvsSched.WRR
    assert vs.lvs_method == Forwarding(LvsMethod.DR)
    assert vs.persistence_timeout == 360  # bare keyword
    assert vs.persistence_granularity == "255.255.255.0"
    assert vs.persistence_engine == "sip"
    assert vs.protocol is Protocol.TCP  # case-insensitive like keepalived
    assert vs.ha_suspend and vs.alpha and vs.omega and vs.inhibit_on_failure and vs.flag_1
    assert vs.smtp_alert is True
    assert vs.virtualhost == "www.example.com" and vs.snmp_name == "web"
    assert (vs.quorum, vs.hysteresis, vs.weight) == (3, 1, 2)
    assert vs.quorum_up == ("/usr/bin/up.sh now", "root")
    assert vs.quorum_down == ("/usr/bin/down.sh",)
    assert vs.sorry_server == SorryServer(ipaddress.ip_address("192.168.1.99"), 443)
    assert vs.sorry_server_inhibit
    assert vs.sorry_server_lvs_method == Forwarding(
        LvsMethod.TUN, TunnelType.GUE, 6080, TunnelCsum.CSUM
    )
    assert (vs.connect_timeout, vs.retry, vs.delay_before_retry, vs.warmup) == (4, 2, 1.5, 0)
    rs, rs2 = vs.real_servers
    assert rs.address == ipaddress.ip_address("192.168.1.20") and rs.port == 443
    assert (rs.weight, rs.uthreshold, rs.lthreshold) == (5, 100, 10)
    assert rs.inhibit_on_failure is False and rs.alpha is False and rs.smtp_alert is False
    assert rs.notify_up == ("/bin/up",) and rs.notify_down == ("/bin/down x", "nobody")
    assert (rs.retry, rs.delay_before_retry, rs.warmup, rs.connect_timeout, rs.delay_loop) == (
        4,
        2,
        3,
        2,
        7,
    )
    assert rs.virtualhost == "rs.example.com" and rs.snmp_name == "rs1"
    assert rs.lvs_method == Forwarding(LvsMethod.TUN, TunnelType.GRE, None, TunnelCsum.CSUM)
    assert rs2.weight is None and rs2.lvs_method is None and rs2.checkers == ()
    # field locations point at the lines that set them
    assert vs.locs["quorum"] == SourceLoc("t.conf", 15)
    assert rs.locs["weight"] == SourceLoc("t.conf", 30)


def test_virtual_server_defaults_and_inheritance() -> None:
    config, diags = build("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 {\n }\n}")
    assert errors(diags) == []
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    assert vs.delay_loop == 60 and vs.connect_timeout == 5 and vs.quorum == 1
    assert vs.hysteresis == 0 and vs.weight == 1 and vs.alpha is False
    assert vs.lvs_sched is None and vs.lvs_method is None and vs.protocol is None
    assert effective_scheduler(vs) is LvsSched.WLC
    assert effective_forwarding(vs, rs) == Forwarding(LvsMethod.NAT)
    assert effective_protocol(vs, {}) is Protocol.UDP
    assert effective_persistence_timeout(vs) is None
    eff = effective_real_server(vs, rs)
    assert (eff.weight, eff.port, eff.delay_loop, eff.connect_timeout) == (1, 80, 60, 5)
    assert eff.retry is None and eff.alpha is False and eff.inhibit_on_failure is False


def test_real_server_inherits_from_virtual_server() -> None:
    config, _ = build(FULL)
    vs = config.virtual_servers[0]
    inherited = effective_real_server(vs, vs.real_servers[1])
    assert (inherited.weight, inherited.retry, inherited.connect_timeout) == (2, 2, 4)
    assert inherited.delay_loop == 6.5 and inherited.alpha and inherited.inhibit_on_failure
    assert inherited.forwarding == Forwarding(LvsMethod.DR)
    assert inherited.virtualhost == "www.example.com"
    own = effective_real_server(vs, vs.real_servers[0])
    assert (own.weight, own.retry, own.delay_loop, own.alpha) == (5, 4, 7, False)


def test_effective_port_follows_keepalived_corrections() -> None:
    config, _ = build(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 {\n }\n"
        " real_server 10.0.0.3 8080 {\n lvs_method DR\n }\n}\n"
        "virtual_server fwmark 3 {\n lvs_method DR\n real_server 10.0.0.2 80 {\n }\n}"
    )
    vs, fwm = config.virtual_servers
    assert effective_port(vs, vs.real_servers[0]) == 80  # NAT without port: the VS port
    assert effective_port(vs, vs.real_servers[1]) == 80  # DR cannot translate: reset
    assert effective_port(fwm, fwm.real_servers[0]) is None  # fwmark DR: port cleared


def test_virtual_server_heads() -> None:
    config, diags = build(
        "virtual_server fwmark 7 {\n ip_family inet6\n real_server 2001:db8::1 {\n }\n}\n"
        "virtual_server group G1 {\n real_server 10.0.0.1 80 {\n }\n}\n"
        "virtual_server 2001:db8::10 0 {\n real_server 2001:db8::2 {\n }\n}"
    )
    assert errors(diags) == []
    fwm, grp, v6 = config.virtual_servers
    assert fwm.fwmark == 7 and fwm.address is None and fwm.ip_family is IpFamily.INET6
    assert grp.group == "G1" and grp.fwmark is None
    assert v6.address == ipaddress.ip_address("2001:db8::10") and v6.port is None  # port 0
    assert fwm.describe() == "FWM 7" and grp.describe() == "group G1"


def test_virtual_server_group_entries() -> None:
    config, diags = build(
        "virtual_server_group G {\n 10.0.0.1 80\n 192.168.200.3-10 80\n"
        " 192.168.200.250-192.168.201.10 443\n 192.168.202.8/29 8080\n 2001:db8::1-ff 80\n"
        " 10.9.9.9\n fwmark 1 inet\n fwmark 2 inet6\n}"
    )
    assert errors(diags) == []
    (g,) = config.virtual_server_groups
    ip = ipaddress.ip_address
    assert g.name == "G"
    single, short, long_, cidr, v6, noport = g.ranges
    m1, m2 = g.fwmarks
    assert single == VsgRange(ip("10.0.0.1"), ip("10.0.0.1"), 80, "10.0.0.1")
    assert (short.first, short.last, short.port) == (ip("192.168.200.3"), ip("192.168.200.10"), 80)
    assert (long_.first, long_.last) == (ip("192.168.200.250"), ip("192.168.201.10"))
    assert (cidr.first, cidr.last, cidr.port) == (ip("192.168.202.8"), ip("192.168.202.15"), 8080)
    assert (v6.first, v6.last) == (ip("2001:db8::1"), ip("2001:db8::ff"))
    assert noport.port is None
    assert g.entries == (*g.ranges, *g.fwmarks)
    assert m1 == VsgFwmark(1, IpFamily.INET) and m2 == VsgFwmark(2, IpFamily.INET6)
    assert len(g.ranges) == 6 and len(g.fwmarks) == 2


def test_ssl_block_is_parsed() -> None:
    _, diags = build("SSL {\n password secret\n ca /etc/ca.pem\n certificate /c\n key /k\n}")
    assert errors(diags) == []
    _, diags = build("SSL {\n key\n bogus 1\n}")
    assert errors(diags) == [
        (2, "SSL key: missing value: expected a key file"),
        (3, "unknown keyword 'bogus' in SSL"),
    ]


# ---------------------------------------------------------------------------------------
# Diagnostics. Each case: config text, then (line, message fragment) of every expected
# error; keepalived 2.2.7 -t exits non-zero on exactly the cases with errors (checked by
# test_cases_agree_with_keepalived when the binary is installed).

CASES: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "ok": (vs_text(), []),
    "no_protocol": (
        vs_text().replace(" protocol TCP\n", ""),
        [(1, "no protocol set - defaulting to UDP")],
    ),
    "no_sched_no_kind": (
        vs_text().replace(" lb_algo rr\n", "").replace(" lb_kind NAT\n", ""),
        [(1, "no scheduler set, setting default 'wlc'"), (1, "no forwarding method set")],
    ),
    "no_real_servers": (
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n}",
        [(1, "has no real servers - ignoring")],
    ),
    "quorum_over_weight": (
        vs_text(" quorum 5", "  weight 2"),
        [(5, "quorum 5 for [10.0.0.1]:tcp:80 exceeds total weight of real servers 2")],
    ),
    "hysteresis": (vs_text(" quorum 1\n hysteresis 1"), [(6, "hysteresis 1 >= quorum 1")]),
    "dr_port_translation": (
        vs_text(kind="DR").replace("10.0.1.1 80", "10.0.1.1 8080"),
        [(6, "and real server 10.0.1.1 port 8080 don't match")],
    ),
    "dr_same_port": (vs_text(kind="DR").replace("10.0.1.1 80", "10.0.1.1"), []),
    "fwmark_protocol": (
        vs_text(head="fwmark 5"),
        [(2, "protocol specified for fwmark - protocol will be ignored")],
    ),
    "fwmark_dr_rs_port": (
        vs_text(head="fwmark 5", kind="DR").replace(" protocol TCP\n", ""),
        [(5, "fwmark virtual server FWM 5, real server 10.0.1.1 has port specified")],
    ),
    "fwmark_nat_ok": (vs_text(head="fwmark 5").replace(" protocol TCP\n", ""), []),
    "ha_suspend_fwmark": (
        vs_text(" ha_suspend", head="fwmark 5").replace(" protocol TCP\n", ""),
        [(4, "cannot use ha_suspend with fwmarks")],
    ),
    "ops_tcp": (vs_text(" ops"), [(5, "one packet scheduling requires UDP")]),
    "zero_port": (vs_text(head="10.0.0.1"), [(1, "zero port only valid for persistent")]),
    "zero_port_persistent": (vs_text(" persistence_timeout", head="10.0.0.1"), []),
    "sorry_family": (
        vs_text(" sorry_server fe80::1 80"),
        [(5, "sorry server fe80::1 don't match")],
    ),
    "sorry_ok": (
        vs_text(" sorry_server 10.0.3.3 80\n sorry_server_inhibit\n sorry_server_lvs_method DR"),
        [],
    ),
    "sorry_inhibit_without": (
        vs_text(" sorry_server_inhibit"),
        [(5, "sorry_server_inhibit used before or without sorry_server")],
    ),
    "duplicate_rs": (
        vs_text(rs=" }\n real_server 10.0.1.1 80 {"),
        [(8, "real server 10.0.1.1 port 80 is duplicated")],
    ),
    "bad_scheduler": (vs_text(" lb_algo foo"), [(5, "invalid lvs_scheduler 'foo'")]),
    "scheduler_case": (vs_text(" lb_algo RR"), [(5, "invalid lvs_scheduler 'RR'")]),
    "sh_port_rr": (vs_text(" sh-port"), [(5, "sh-port only applies to sh scheduler")]),
    "sh_port_sh": (vs_text(" lb_algo sh\n sh-port\n sh-fallback"), []),
    "hashed": (vs_text(" hashed"), [(5, "hashed only applies to sh scheduler")]),
    "gue_without_port": (vs_text(" lvs_method TUN type gue"), [(5, "gue tunnels require port")]),
    "gue_port_csum": (vs_text(" lvs_method TUN type gue port 6080 csum"), []),
    "ipip_csum": (vs_text(" lvs_method TUN type ipip csum"), [(5, "ipip tunnels do not support")]),
    "gre_remcsum": (vs_text(" lvs_method TUN type gre remcsum"), [(5, "gre tunnels do not")]),
    "bad_kind": (vs_text(" lb_kind FOO"), [(5, "unknown [FOO] routing method")]),
    "persistence_0": (vs_text(" persistence_timeout 0"), [(5, "0 is out of range")]),
    "granularity": (vs_text(" persistence_granularity 255.255.255.0"), []),
    "granularity_bad": (vs_text(" persistence_granularity 1.2.3.x"), [(5, "persistence_gran")]),
    "ip_family_conflict": (vs_text(" ip_family inet6"), [(5, "family inet6 conflicts")]),
    "bad_protocol": (vs_text(" protocol FOO"), [(5, "unknown protocol FOO")]),
    "delay_loop_0": (vs_text(" delay_loop 0"), [(5, "delay_loop: 0 is out of range")]),
    "delay_loop_decimal": (vs_text(" delay_loop 1.5"), []),
    "retry_0": (vs_text(" retry 0"), [(5, "retry: 0 is out of range")]),
    "vs_weight": (vs_text(" weight 3"), []),
    "smtp_alert_bad": (vs_text(" smtp_alert maybe"), [(5, "'maybe' is not on/off")]),
    "virtualhost_missing": (vs_text(" virtualhost"), [(5, "virtualhost: missing value")]),
    "rs_weight_negative": (vs_text(rs="  weight -1"), [(7, "weight: -1 is out of range")]),
    "rs_weight_zero": (
        vs_text(rs="  weight 0"),
        [(1, "exceeds total weight of real servers 0"), (1, "hysteresis 0 >= quorum 0")],
    ),
    "rs_thresholds": (vs_text(rs="  uthreshold 100\n  lthreshold 10"), []),
    "rs_notify_twice": (
        vs_text(rs="  notify_up /x/a\n  notify_up /x/b"),
        [(8, "notify_up already specified (line 7)")],
    ),
    "rs_family": (
        vs_text().replace("real_server 10.0.1.1 80", "real_server fe80::2 80"),
        [(6, "real server fe80::2 don't match")],
    ),
    "rs_tun_family_ok": (
        vs_text(rs="  lvs_method TUN").replace("real_server 10.0.1.1 80", "real_server 2001::2 80"),
        [],
    ),
    "rs_bad_ip": (
        vs_text().replace("real_server 10.0.1.1 80", "real_server 10.0.1 80"),
        [(6, "'10.0.1' is not a valid IP address"), (1, "has no real servers")],
    ),
    "rs_bad_port": (
        vs_text().replace("real_server 10.0.1.1 80", "real_server 10.0.1.1 70000"),
        [(6, "70000 is out of range"), (1, "has no real servers")],
    ),
    "rs_unknown_keyword": (vs_text(rs="  frobnicate 3"), [(7, "unknown keyword 'frobnicate'")]),
    "vs_unknown_keyword": (vs_text(" frobnicate 3"), [(5, "unknown keyword 'frobnicate'")]),
    "vs_bad_port": (vs_text(head="10.0.0.1 70000"), [(1, "70000 is out of range")]),
    "vs_bad_fwmark": (vs_text(head="fwmark x"), [(1, "'x' is not a number")]),
    "rs_alpha_bad": (vs_text(rs="  alpha maybe"), [(7, "'maybe' is not on/off")]),
    "rs_retry_0": (vs_text(rs="  retry 0"), [(7, "retry: 0 is out of range")]),
    "group_missing": (vs_text(head="group NOPE").replace(" protocol TCP\n", ""), []),
    "vsg_ok": (
        "virtual_server_group G {\n 10.0.0.1-10 80\n 10.0.1.0/29 80\n 10.0.2.250-10.0.3.5 80\n"
        " fwmark 3\n}\n" + vs_text(head="group G"),
        [],
    ),
    "vsg_empty": (
        "virtual_server_group G {\n}\n" + vs_text(head="group G"),
        [(1, "virtual server group G has no entries")],
    ),
    "vsg_range_backwards": (
        "virtual_server_group G {\n 10.0.0.10-5 80\n}\n" + vs_text(head="group G"),
        [(2, "address range end is not greater than address range start"), (1, "no entries")],
    ),
    "vsg_mask_bits": (
        "virtual_server_group G {\n 10.0.0.1/29 80\n}\n" + vs_text(head="group G"),
        [(2, "address mask bits not empty"), (1, "no entries")],
    ),
    "vsg_mixed_family": (
        "virtual_server_group G {\n 10.0.0.1 80\n fe80::1 80\n fwmark 2\n}\n"
        + vs_text(head="group G"),
        [(1, "cannot have IPv4, IPv6 and fwmark without family")],
    ),
    "vsg_no_port": (
        "virtual_server_group G {\n 10.0.0.1\n}\n" + vs_text(head="group G"),
        [(4, "zero port only valid for persistent services")],
    ),
    "vsg_dr_port_mismatch": (
        "virtual_server_group G {\n 10.0.0.1 443\n}\n" + vs_text(head="group G", kind="DR"),
        [(9, "and real server 10.0.1.1 port 80 ports don't match")],
    ),
    "ssl_key_missing": ("SSL {\n key\n}\n" + vs_text(), [(2, "SSL key: missing value")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_diagnostics(name: str) -> None:
    text, expected = CASES[name]
    _, diags = diagnose(text)
    got = errors(diags)
    assert len(got) == len(expected), got
    for (line, fragment), (got_line, message) in zip(expected, got, strict=True):
        assert fragment in message, (fragment, message)
        assert got_line == line, (fragment, got_line)
    assert all(d.loc is not None and d.loc.file == "t.conf" for d in diags)


def test_missing_group_is_a_warning_naming_the_group() -> None:
    _, diags = diagnose(CASES["group_missing"][0])
    assert (1, "virtual server group NOPE specified but not configured", "missing-group") in [
        (line, msg.split(" - ")[0], code) for line, msg, code in warnings(diags)
    ]


def test_flag_arguments_are_ignored_with_a_warning() -> None:
    config, diags = diagnose(vs_text(" alpha no"))
    assert config.virtual_servers[0].alpha is True  # keepalived ignores the 'no'
    assert errors(diags) == []
    assert [(w[0], w[2]) for w in warnings(diags)] == [(5, "pitfall")]


def test_hints_are_given_for_errors() -> None:
    for text, _ in CASES.values():
        _, diags = diagnose(text)
        assert [d.format() for d in diags if not d.hint] == []


def _keepalived_rc(path: Path) -> int:
    res = subprocess.run(
        ["keepalived", "-t", "-f", str(path), "-l", "-D", "-n"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    return res.returncode


@pytest.mark.keepalived
def test_cases_agree_with_keepalived(tmp_path: Path) -> None:
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived binary not installed")
    disagree = []
    for name, (text, expected) in sorted(CASES.items()):
        path = tmp_path / f"{name}.conf"
        path.write_text(text)
        if (_keepalived_rc(path) != 0) != bool(expected):
            disagree.append(name)
    assert disagree == []


# ---------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_roundtrip_cases(name: str) -> None:
    config, _ = build(CASES[name][0])
    again = roundtrip(config)
    assert again.virtual_servers == config.virtual_servers
    assert again.virtual_server_groups == config.virtual_server_groups


def test_render_roundtrip_full() -> None:
    config, _ = build(FULL)
    again = roundtrip(config)
    assert again.virtual_servers == config.virtual_servers
    assert again.virtual_servers[0].real_servers[0].notify_down == ("/bin/down x", "nobody")


# ---------------------------------------------------------------------------------------
# The keepalived sample corpus

#: Samples keepalived rejects because of their LVS side (see the report in the test doc).
LVS_CAUSED = {"keepalived.conf.fwmark"}  # protocol given for a fwmark service


def _corpus_files() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(SAMPLES.iterdir())


def _verdicts() -> dict[str, int]:
    tsv = CORPUS / "keepalived-samples.verdicts.tsv"
    rows = (ln.split("\t") for ln in tsv.read_text().splitlines() if ln.strip())
    return {name: int(code) for name, code in rows}


def _lvs_diagnostics(path: Path) -> tuple[Config, list[Diagnostic]]:
    from pyvrrpd.config.preprocess import preprocess_file

    pre = preprocess_file(path)
    nodes = parse_lines((ln.text, ln.loc) for ln in pre.lines)
    spans = []
    for node in nodes:
        if node.keyword in LVS_ROOTS:
            last = node.loc.line
            stack = [node]
            while stack:
                n = stack.pop()
                last = max(last, n.loc.line)
                stack.extend(n.children or ())
            spans.append((node.loc.line, last + 1))
    ctx = Ctx()
    config = build_config(nodes, ctx)
    built = [d for d in ctx.diagnostics if d.loc and any(a <= d.loc.line <= b for a, b in spans)]
    vctx = Ctx()
    check(config, ENV, vctx)
    return config, [*built, *vctx.diagnostics]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/corpus is absent (user clone)")
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_corpus_lvs_verdicts(path: Path) -> None:
    verdict = _verdicts()[path.name]
    if path.name == "keepalived.conf.conditional_conf":
        pytest.skip("needs a config id; no LVS blocks")
    config, diags = _lvs_diagnostics(path)
    has_error = bool(errors(diags))
    assert has_error == (path.name in LVS_CAUSED), [d.format() for d in diags]
    if verdict == 0:
        assert not has_error
    if path.name in LVS_CAUSED:
        assert verdict == 5
    again = roundtrip(config)
    assert again.virtual_servers == config.virtual_servers
    assert again.virtual_server_groups == config.virtual_server_groups


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/corpus is absent (user clone)")
def test_corpus_fwmark_error_points_at_protocol_line() -> None:
    _, diags = _lvs_diagnostics(SAMPLES / "keepalived.conf.fwmark")
    (err,) = [d for d in diags if d.severity is Severity.ERROR]
    assert err.loc is not None and err.loc.line == 12 and "protocol" in err.message
