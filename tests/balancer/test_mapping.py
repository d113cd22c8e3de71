"""Config -> IPVS services/destinations and checks, as keepalived programs them."""

from __future__ import annotations

import ast
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from pyvrrpd.balancer import checker_map
from pyvrrpd.balancer.mapping import (
    LvsSyncDaemonSpec,
    dest_for,
    granularity_prefix,
    map_config,
    parse_lvs_sync_daemon,
    parse_lvs_timeouts,
    sync_daemon,
)
from pyvrrpd.checks import dns, file, http, misc, smtp, tcp, udp
from pyvrrpd.checks.base import Schedule
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.ipvs.model import (
    Dest,
    Family,
    FwdMethod,
    LvsTimeouts,
    Protocol,
    ServiceFlags,
    ServiceKey,
    SyncState,
    TunFlags,
    TunType,
)

from .conftest import conf

PKG = Path(__file__).resolve().parents[2] / "pyvrrpd" / "balancer"


@pytest.mark.parametrize("name", ["mapping.py", "virtual_server.py"])
def test_pure_modules_import_no_io(name: str) -> None:
    tree = ast.parse((PKG / name).read_text())
    banned = {"asyncio", "socket", "time", "subprocess", "pyroute2", "pyvrrpd.scripts"}
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {m for m in imported if m in banned or m.split(".")[0] in banned}
    assert not bad
    assert not any(m.startswith("pyvrrpd.checks.") and m != "pyvrrpd.checks.base" for m in imported)


def one(text: str):  # type: ignore[no-untyped-def]
    spec = map_config(conf(text))
    assert not spec.problems, spec.problems
    assert len(spec.virtual_servers) == 1
    return spec.virtual_servers[0]


def test_address_service_nat_defaults() -> None:
    v = one(
        "virtual_server 10.0.0.1 80 {\n lvs_sched rr\n protocol TCP\n"
        " real_server 192.168.0.1 8080 {\n weight 3\n }\n"
        " real_server 192.168.0.2 {\n }\n}"
    )
    (svc,) = v.services
    assert svc.key == ServiceKey.of(Protocol.TCP, "10.0.0.1", 80)
    assert (svc.scheduler, svc.flags, svc.timeout, svc.netmask) == ("rr", ServiceFlags.NONE, 0, 32)
    a, b = v.real_servers
    assert dest_for(svc.key, a, a.weight) == Dest(ip_address("192.168.0.1"), 8080, FwdMethod.NAT, 3)
    # a NAT real server without a port takes the virtual server's
    assert dest_for(svc.key, b, b.weight) == Dest(ip_address("192.168.0.2"), 80, FwdMethod.NAT, 1)


def test_defaults_when_unset() -> None:
    v = one("virtual_server 10.0.0.1 53 {\n real_server 192.168.0.1 53 {\n }\n}")
    (svc,) = v.services
    assert svc.key.protocol is Protocol.UDP  # keepalived's default protocol
    assert svc.scheduler == "wlc"


def test_dr_and_tunnel_methods() -> None:
    v = one(
        "virtual_server 10.0.0.1 80 {\n lvs_sched wrr\n lvs_method DR\n protocol TCP\n"
        " real_server 192.168.0.1 80 {\n }\n"
        " real_server 192.168.0.2 80 {\n lvs_method TUN type gue port 6080 csum\n }\n"
        " real_server 192.168.0.3 80 {\n lvs_method TUN\n uthreshold 100\n lthreshold 10\n }\n}"
    )
    key = v.services[0].key
    dests = [dest_for(key, rs, rs.weight) for rs in v.real_servers]
    assert dests[0].fwd is FwdMethod.DR and dests[0].port == 80
    assert (dests[1].fwd, dests[1].tun_type, dests[1].tun_port, dests[1].tun_flags) == (
        FwdMethod.TUN,
        TunType.GUE,
        6080,
        TunFlags.CSUM,
    )
    assert (dests[2].tun_type, dests[2].u_threshold, dests[2].l_threshold) == (
        TunType.IPIP,
        100,
        10,
    )


def test_fwmark_service_ports_and_family() -> None:
    v = one(
        "virtual_server fwmark 5 {\n lvs_sched rr\n lvs_method DR\n"
        " real_server 2001:db8::1 80 {\n }\n"
        " real_server 2001:db8::2 8080 {\n lvs_method NAT\n }\n}"
    )
    (svc,) = v.services
    assert svc.key == ServiceKey.for_fwmark(5, Family.INET6)
    assert svc.netmask == 128
    d1, d2 = (dest_for(svc.key, rs, rs.weight) for rs in v.real_servers)
    assert (d1.port, d2.port) == (0, 8080)  # DR on fwmark: port 0; NAT keeps its port


def test_flags_persistence_and_engine() -> None:
    v = one(
        "virtual_server 10.0.0.1 5060 {\n lvs_sched sh\n sh-port\n sh-fallback\n ops\n"
        " protocol UDP\n persistence_timeout 120\n persistence_granularity 255.255.0.0\n"
        " persistence_engine sip\n real_server 192.168.0.1 5060 {\n }\n}"
    )
    (svc,) = v.services
    assert svc.flags == (
        ServiceFlags.SH_PORT
        | ServiceFlags.SH_FALLBACK
        | ServiceFlags.ONEPACKET
        | ServiceFlags.PERSISTENT
    )
    assert (svc.timeout, svc.netmask, svc.pe_name) == (120, 16, "sip")


def test_sh_flags_ignored_for_other_schedulers() -> None:
    v = one(
        "virtual_server 10.0.0.1 80 {\n lvs_sched mh\n mh-port\n protocol TCP\n"
        " real_server 192.168.0.1 80 {\n }\n}"
    )
    assert v.services[0].flags == ServiceFlags.MH_PORT


def test_portless_service_is_persistent() -> None:
    v = one("virtual_server 10.0.0.1 {\n protocol TCP\n real_server 192.168.0.1 {\n }\n}")
    assert v.services[0].persistent and v.services[0].timeout == 360


def test_group_expansion() -> None:
    spec = map_config(
        conf(
            "virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.0/30 443\n fwmark 7\n}\n"
            "virtual_server group G {\n lvs_sched rr\n protocol TCP\n lvs_method DR\n"
            " real_server 192.168.0.1 {\n }\n"
            " real_server 192.168.0.2 8080 {\n lvs_method NAT\n }\n}"
        )
    )
    (v,) = spec.virtual_servers
    keys = [s.key for s in v.services]
    expect = [ServiceKey.of(Protocol.TCP, f"10.0.0.{i}", 80) for i in (1, 2, 3)]
    expect += [ServiceKey.of(Protocol.TCP, f"10.0.1.{i}", 443) for i in range(4)]
    expect.append(ServiceKey.for_fwmark(7, Family.INET))
    assert keys == expect
    dr, nat = v.real_servers
    ports = [
        (dest_for(k, dr, 1).port, dest_for(k, nat, 1).port) for k in (keys[0], keys[3], keys[-1])
    ]
    assert ports == [(80, 8080), (443, 8080), (0, 8080)]
    assert v.watches(IPv4Address("10.0.1.2")) and not v.watches(IPv4Address("10.0.2.1"))


def test_group_fwmark_family() -> None:
    spec = map_config(
        conf(
            "virtual_server_group G {\n fwmark 1 inet6\n fwmark 2\n}\n"
            "virtual_server group G {\n lvs_sched rr\n real_server 2001:db8::1 80 {\n }\n}"
        )
    )
    keys = [s.key for s in spec.virtual_servers[0].services]
    assert keys == [ServiceKey.for_fwmark(1, Family.INET6), ServiceKey.for_fwmark(2, Family.INET6)]


def test_duplicate_service_is_reported_and_skipped() -> None:
    text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 192.168.0.1 80 {\n }\n}\n"
    spec = map_config(conf(text + text))
    assert len(spec.virtual_servers) == 1
    assert any("already configured" in p for p in spec.problems)


def test_sorry_server_and_inheritance() -> None:
    v = one(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_method DR\n inhibit_on_failure\n"
        " alpha\n weight 7\n sorry_server 192.168.9.9 8080\n sorry_server_inhibit\n"
        ' real_server 192.168.0.1 80 {\n notify_up "/bin/up a"\n }\n'
        " real_server 192.168.0.2 80 {\n inhibit_on_failure false\n weight 2\n }\n}"
    )
    a, b = v.real_servers
    assert (a.weight, a.inhibit, a.alpha, a.notify_up) == (7, True, True, ("/bin/up a",))
    assert (b.weight, b.inhibit) == (2, False)
    s = v.sorry_server
    assert s is not None and (s.weight, s.inhibit, s.fwd) == (1, True, FwdMethod.DR)
    assert dest_for(v.services[0].key, s, 1).port == 80  # DR: the service's port


@pytest.mark.parametrize(
    ("text", "family", "bits"),
    [("255.255.255.0", Family.INET, 24), ("255.0.0.0", Family.INET, 8), ("64", Family.INET6, 64)],
)
def test_granularity(text: str, family: Family, bits: int) -> None:
    assert granularity_prefix(text, family) == bits


def test_granularity_rejects_holes() -> None:
    with pytest.raises(ValueError):
        granularity_prefix("255.0.255.0", Family.INET)


def test_global_lvs_settings() -> None:
    assert parse_lvs_timeouts(("udp", "30", "tcp", "900")) == LvsTimeouts(900, 0, 30)
    spec = parse_lvs_sync_daemon(("eth0", "VI_1", "id", "7", "group", "224.0.0.90", "ttl", "3"))
    assert spec == LvsSyncDaemonSpec("eth0", "VI_1", 7, ttl=3, group=IPv4Address("224.0.0.90"))
    old = parse_lvs_sync_daemon(("eth0", "VI_1", "9"))
    assert old == LvsSyncDaemonSpec("eth0", "VI_1", 9)
    daemon = sync_daemon(LvsSyncDaemonSpec("eth1"), SyncState.BACKUP, vrid=51)
    assert (daemon.mcast_ifname, daemon.syncid, daemon.state) == ("eth1", 51, SyncState.BACKUP)
    config = conf("global_defs {\n lvs_timeouts tcp 7200 tcpfin 60\n lvs_sync_daemon eth0 VI_1\n}")
    spec2 = map_config(config)
    assert spec2.timeouts == LvsTimeouts(7200, 60, 0)
    assert spec2.sync_daemon == LvsSyncDaemonSpec("eth0", "VI_1")


# --- checkers ---------------------------------------------------------------------------


def checks_of(text: str, rs_index: int = 0) -> list[checker_map.CheckSpec]:
    config = conf(text)
    vs = config.virtual_servers[0]
    specs, problems = checker_map.real_server_checks(config, vs, vs.real_servers[rs_index])
    assert not problems, problems
    return specs


def test_tcp_check_inherits_timers_and_target() -> None:
    (c,) = checks_of(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n delay_loop 10\n lvs_method DR\n"
        " connect_timeout 7\n real_server 192.168.0.1 {\n retry 4\n"
        "  TCP_CHECK {\n   delay_before_retry 2\n  }\n }\n}"
    )
    assert c.check == tcp.TcpCheck(Endpoint(ip_address("192.168.0.1"), 80, connect_timeout=7.0))
    assert c.schedule == Schedule(delay_loop=10, retry=4, delay_before_retry=2, warmup=10)


def test_connect_options_and_alpha() -> None:
    (c,) = checks_of(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n alpha\n"
        " real_server 192.168.0.1 80 {\n  TCP_CHECK {\n   connect_ip 192.168.1.1\n"
        "   connect_port 81\n   bindto 192.168.0.254\n   fwmark 3\n   warmup 0\n  }\n }\n}"
    )
    assert isinstance(c.check, tcp.TcpCheck)
    ep = c.check.endpoint
    assert (ep.address, ep.port, ep.bindto, ep.fwmark) == (
        ip_address("192.168.1.1"),
        81,
        ip_address("192.168.0.254"),
        3,
    )
    assert c.schedule.alpha and c.schedule.warmup == 0 and c.schedule.delay_loop == 60


def test_http_dns_smtp_udp_misc_file() -> None:
    specs = checks_of(
        "track_file TF {\n file /tmp/x\n weight 5\n}\n"
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n virtualhost www.example\n"
        " real_server 192.168.0.1 80 {\n"
        "  HTTP_GET {\n   url {\n    path /health\n    status_code 200\n   }\n  }\n"
        "  DNS_CHECK {\n   name example.org\n   type A\n  }\n"
        "  SMTP_CHECK {\n   connect_port 25\n   helo_name me\n  }\n"
        "  UDP_CHECK {\n   connect_port 9\n   payload 0102\n   require_reply 01xx\n  }\n"
        '  MISC_CHECK {\n   misc_path "/bin/check a b"\n   misc_dynamic\n  }\n'
        "  FILE_CHECK {\n   track_file TF\n  }\n }\n}"
    )
    kinds = [type(s.check) for s in specs]
    assert kinds == [http.HttpCheck, dns.DnsCheck, smtp.SmtpCheck, udp.UdpCheck, misc.MiscCheck,
                     file.FileCheck]  # fmt: skip
    h, d, s, u, m, f = (s.check for s in specs)
    assert isinstance(h, http.HttpCheck) and h.virtualhost == "www.example"
    assert h.urls[0].path == "/health" and h.kind == "HTTP_GET"
    assert specs[0].schedule.delay_before_retry == 3  # HTTP_GET's default
    assert isinstance(d, dns.DnsCheck) and (d.endpoint.port, d.type, d.name) == (
        80,
        "A",
        "example.org",
    )
    assert specs[1].schedule.retry == 3  # DNS_CHECK's default
    assert isinstance(s, smtp.SmtpCheck) and (s.endpoint.port, s.helo_name) == (25, "me")
    assert isinstance(u, udp.UdpCheck) and u.payload == b"\x01\x02" and u.require_reply
    assert (u.reply_data, u.reply_mask) == (b"\x01\x00", b"\x00\xff")
    assert isinstance(m, misc.MiscCheck)
    assert (m.argv, m.dynamic, m.timeout) == (("/bin/check", "a", "b"), True, 60.0)
    assert specs[4].schedule.retry == 0  # MISC_CHECK's default
    assert isinstance(f, file.FileCheck) and (f.path, f.weight) == ("/tmp/x", 5)
    assert specs[5].schedule.delay_loop == checker_map.FILE_POLL


def test_dns_defaults_to_port_53_without_port() -> None:
    (c,) = checks_of(
        "virtual_server fwmark 1 {\n real_server 192.168.0.1 {\n  DNS_CHECK {\n  }\n }\n}"
    )
    assert isinstance(c.check, dns.DnsCheck) and c.check.endpoint.port == 53


def test_ssl_get_uses_ssl_block() -> None:
    (c,) = checks_of(
        "SSL {\n certificate /etc/c.pem\n key /etc/k.pem\n}\n"
        "virtual_server 10.0.0.1 443 {\n protocol TCP\n real_server 192.168.0.1 443 {\n"
        "  SSL_GET {\n   url {\n    path /\n   }\n  }\n }\n}"
    )
    assert isinstance(c.check, http.HttpCheck) and c.check.kind == "SSL_GET"
    assert c.check.tls == http.TlsParams(certfile="/etc/c.pem", keyfile="/etc/k.pem")


def test_identical_checks_compare_equal() -> None:
    text = (
        "virtual_server 10.0.0.{n} 80 {{\n protocol TCP\n real_server 192.168.0.1 80 {{\n"
        "  TCP_CHECK {{\n  }}\n }}\n}}\n"
    )
    config = conf(text.format(n=1) + text.format(n=2))
    keys = []
    for vs in config.virtual_servers:
        specs, _ = checker_map.real_server_checks(config, vs, vs.real_servers[0])
        keys.append(specs[0].key)
    assert keys[0] == keys[1]


def test_ipv6_address_in_name() -> None:
    v = one("virtual_server 2001:db8::80 80 {\n protocol TCP\n real_server 2001:db8::1 80 {\n }\n}")
    assert v.services[0].key.address == IPv6Address("2001:db8::80")
    assert v.real_servers[0].name == "[2001:db8::1]:80"
