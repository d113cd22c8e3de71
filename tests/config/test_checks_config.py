"""Health checker blocks: values, defaults, inheritance, diagnostics and round trip."""

from __future__ import annotations

import ipaddress
import shutil

import pytest

from pyvrrpd.config.lvs_effective import effective_checker
from pyvrrpd.config.model_checks import (
    CHECKER_CLASSES,
    BfdCheck,
    DnsCheck,
    FileCheck,
    HttpGet,
    MiscCheck,
    PingCheck,
    SmtpCheck,
    SslGet,
    TcpCheck,
    TrackWeight,
    UdpCheck,
)
from pyvrrpd.config.model_lvs import RealServer, VirtualServer

from .test_lvs_config import _keepalived_rc, build, diagnose, errors, roundtrip, warnings


def rs_with(checker: str, vs_body: str = "", pre: str = "") -> str:
    """A valid virtual server whose only real server holds ``checker`` (its line is 7)."""
    return (
        f"{pre}virtual_server 10.0.0.1 80 {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n"
        f"{vs_body}\n real_server 10.0.1.1 80 {{\n{checker}\n }}\n}}\n"
    )


def only(text: str) -> tuple[VirtualServer, RealServer]:
    config, diags = build(text)
    assert errors(diags) == [], diags
    vs = config.virtual_servers[0]
    return vs, vs.real_servers[0]


HTTP = """HTTP_GET {
 url {
  path /index.html
  status_code 200-299 301 404
  digest 9B3A0C85A887A256D6939DA88AABD8CD
  virtualhost a.example
  regex "ab.*c"
  regex_no_match
  regex_options caseless multiline
  regex_min_offset 3
  regex_max_offset 100
  regex_stack 100 1000
 }
 url {
  path /health
 }
 http_protocol 1.0c
 fast_recovery
 virtualhost x.example
 enable_sni
 connect_ip 10.0.1.2
 connect_port 81
 bindto 10.0.0.9
 bind_port 3000
 bind_if eth0
 fwmark 7
 alpha
 log_all_failures
 warmup 3
 delay_loop 4
 retry 0
 delay_before_retry 2
 connect_timeout 2.5
}"""


def test_http_get_values() -> None:
    _, rs = only(rs_with(HTTP))
    (chk,) = rs.checkers
    assert type(chk) is HttpGet
    first, second = chk.urls
    assert first.path == "/index.html"
    assert first.status_code == ((200, 299), (301, 301), (404, 404))
    assert first.digest == "9b3a0c85a887a256d6939da88aabd8cd"
    assert first.virtualhost == "a.example" and first.regex == "ab.*c"
    assert first.regex_no_match and first.regex_options == ("caseless", "multiline")
    assert (first.regex_min_offset, first.regex_max_offset, first.regex_stack) == (
        3,
        100,
        (100, 1000),
    )
    assert second.path == "/health" and second.status_code == () and second.digest is None
    assert chk.http_protocol == "1.0C" and chk.fast_recovery and chk.enable_sni
    assert chk.virtualhost == "x.example"
    assert chk.connect_ip == ipaddress.ip_address("10.0.1.2") and chk.connect_port == 81
    assert chk.bindto == ipaddress.ip_address("10.0.0.9") and chk.bind_port == 3000
    assert (chk.bind_if, chk.fwmark, chk.alpha, chk.log_all_failures) == ("eth0", 7, True, True)
    assert (chk.warmup, chk.delay_loop, chk.retry, chk.delay_before_retry) == (3, 4, 0, 2)
    assert chk.connect_timeout == 2.5
    assert chk.locs["connect_port"].line == 28


def test_checker_defaults_and_inheritance() -> None:
    text = rs_with(
        "  retry 5\n  TCP_CHECK {\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n"
        "  DNS_CHECK {\n  }\n  MISC_CHECK {\n   misc_path /bin/x\n  }\n  PING_CHECK {\n"
        "   connect_timeout 1\n  }",
        vs_body=" delay_loop 10\n connect_timeout 3",
    )
    vs, rs = only(text)
    tcp, http, dns, misc, ping = rs.checkers
    assert isinstance(tcp, TcpCheck) and tcp.connect_port is None
    eff = effective_checker(vs, rs, tcp)
    assert (eff.retry, eff.delay_loop, eff.warmup, eff.delay_before_retry) == (5, 10, 10, 1)
    assert eff.connect_timeout == 3 and eff.connect_port == 80
    assert eff.connect_ip == ipaddress.ip_address("10.0.1.1") and eff.alpha is False
    assert effective_checker(vs, rs, http).delay_before_retry == 3  # HTTP default 3 s
    assert isinstance(dns, DnsCheck) and (dns.type, dns.name) == ("SOA", ".")
    assert effective_checker(vs, rs, dns).delay_before_retry == 10  # DNS: delay_loop
    assert effective_checker(vs, rs, ping).connect_timeout == 1
    assert isinstance(misc, MiscCheck) and effective_checker(vs, rs, misc).connect_timeout is None
    # per-checker retry defaults apply when neither real nor virtual server sets retry
    bare, _ = build(text.replace("  retry 5\n", ""))
    vs2 = bare.virtual_servers[0]
    rs2 = vs2.real_servers[0]
    assert [effective_checker(vs2, rs2, c).retry for c in rs2.checkers] == [1, 1, 3, 0, 1]


def test_other_checkers_values() -> None:
    text = rs_with(
        "  SMTP_CHECK {\n   helo_name mail.example\n   host {\n    connect_ip 10.1.1.1\n"
        "    connect_port 25\n   }\n  }\n"
        "  DNS_CHECK {\n   type aaaa\n   name www.example.com\n  }\n"
        "  UDP_CHECK {\n   payload Ab12f 3 456\n   require_reply 12xX\n"
        "   min_reply_length 2\n   max_reply_length 300\n  }\n"
        "  UDP_CHECK {\n   require_reply\n  }\n"
        '  MISC_CHECK {\n   misc_path "/bin/check a b"\n   misc_timeout 5\n   misc_dynamic\n'
        "   user nobody nogroup\n  }\n"
        "  FILE_CHECK {\n   track_file tf\n   weight -3 reverse\n  }\n"
        "  BFD_CHECK {\n   name b1\n   alpha\n  }\n"
        '  SSL_GET {\n   url {\n    path /\n    tls_compliant\n   }\n   sni_name "x.y"\n  }\n'
        "  PING_CHECK {\n  }",
    )
    _, rs = only(text)
    smtp, dns, udp, udp_bare, misc, file_, bfd, ssl, ping = rs.checkers
    assert isinstance(smtp, SmtpCheck) and smtp.helo_name == "mail.example"
    assert smtp.hosts[0].connect_ip == ipaddress.ip_address("10.1.1.1")
    assert smtp.hosts[0].connect_port == 25
    assert isinstance(dns, DnsCheck) and (dns.type, dns.name) == ("AAAA", "www.example.com")
    assert isinstance(udp, UdpCheck) and udp.payload == "Ab12f 3 456"
    assert (udp.require_reply, udp.min_reply_length, udp.max_reply_length) == ("12xX", 2, 300)
    assert isinstance(udp_bare, UdpCheck) and udp_bare.require_reply == ""
    assert udp_bare.max_reply_length == 255 and udp_bare.payload is None
    assert isinstance(misc, MiscCheck) and misc.misc_path == ("/bin/check a b",)
    assert (misc.misc_timeout, misc.misc_dynamic, misc.user) == (5, True, ("nobody", "nogroup"))
    assert isinstance(file_, FileCheck) and file_.track_file == "tf"
    assert file_.weight == TrackWeight(-3, True)
    assert isinstance(bfd, BfdCheck) and (bfd.name, bfd.alpha) == ("b1", True)
    assert isinstance(ssl, SslGet) and ssl.sni_name == "x.y" and ssl.urls[0].tls_compliant
    assert isinstance(ping, PingCheck)
    assert {type(c) for c in rs.checkers} == set(CHECKER_CLASSES) - {HttpGet, TcpCheck}


CASES: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "http_no_url": ("HTTP_GET {\n connect_timeout 3\n}", [(7, "has no urls specified")]),
    "url_no_path": (
        "HTTP_GET {\n url {\n status_code 200\n }\n}",
        [(8, "url has no path"), (7, "has no urls")],
    ),
    "digest_length": ("HTTP_GET {\n url {\n path /\n digest 9b3a\n }\n}", [(10, "length")]),
    "digest_hex": (
        "HTTP_GET {\n url {\n path /\n digest zz3a0c85a887a256d6939da88aabd8cd\n }\n}",
        [(10, "not hexadecimal")],
    ),
    "digest_twice": (
        "HTTP_GET {\n url {\n path /\n digest 9b3a0c85a887a256d6939da88aabd8cd\n"
        " digest 9b3a0c85a887a256d6939da88aabd8cd\n }\n}",
        [(11, "digest already specified (line 10)")],
    ),
    "status_code_bad": (
        "HTTP_GET {\n url {\n path /\n status_code 99 600 300-200 abc\n }\n}",
        [(10, "invalid HTTP_GET status code '99'")],
    ),
    "http_protocol_bad": (
        "HTTP_GET {\n url {\n path /\n }\n http_protocol 2\n}",
        [(11, "invalid http_protocol version 2")],
    ),
    "nb_get_retry": (
        "HTTP_GET {\n url {\n path /\n }\n nb_get_retry 3\n}",
        [(11, "nb_get_retry is deprecated")],
    ),
    "regex_params_only": ("HTTP_GET {\n url {\n path /\n regex_no_match\n }\n}", []),
    "tls_on_http": (
        "HTTP_GET {\n url {\n path /\n }\n tls_compliant\n}",
        [(11, "'tls_compliant' is not valid in HTTP_GET")],
    ),
    "link_local": ("TCP_CHECK {\n connect_ip fe80::1\n}", [(7, "requires a bind_if")]),
    "link_local_if": ("TCP_CHECK {\n connect_ip fe80::1\n bind_if eth0\n}", []),
    "family_mismatch": (
        "TCP_CHECK {\n bindto 10.0.0.5\n connect_ip 2001::1\n}",
        [(9, "connect_ip address does not match the address family of bindto")],
    ),
    "connect_port_0": ("TCP_CHECK {\n connect_port 0\n}", [(8, "0 is out of range")]),
    "retry_negative": ("TCP_CHECK {\n retry -1\n}", [(8, "-1 is out of range")]),
    "connect_timeout_0": ("TCP_CHECK {\n connect_timeout 0\n}", [(8, "0 is out of range")]),
    "zero_delays_ok": ("TCP_CHECK {\n delay_before_retry 0\n warmup 0\n}", []),
    "misplaced_misc_path": (
        "TCP_CHECK {\n misc_path /x\n}",
        [(8, "'misc_path' is not valid in TCP_CHECK")],
    ),
    "dns_type_bad": ("DNS_CHECK {\n type FOO\n}", [(8, "unknown DNS check type FOO")]),
    "dns_empty_label": ("DNS_CHECK {\n name a..b\n}", [(8, "has empty label")]),
    "dns_name_twice": ("DNS_CHECK {\n name a\n name b\n}", [(9, "name already specified")]),
    "udp_min_max": (
        "UDP_CHECK {\n min_reply_length 20\n max_reply_length 10\n}",
        [(8, "min_reply_length 20 > max_reply_length 10")],
    ),
    "udp_bad_hex": ("UDP_CHECK {\n payload zz\n}", [(8, "invalid hex string 'zz'")]),
    "udp_no_payload": ("UDP_CHECK {\n payload\n}", [(8, "missing value")]),
    "file_unknown_track": ("FILE_CHECK {\n track_file nope\n}", [(8, "track_file nope not found")]),
    "file_no_track": ("FILE_CHECK {\n weight 3\n}", [(7, "FILE_CHECK has no track_file")]),
    "file_retry": ("FILE_CHECK {\n track_file tf\n retry 3\n}", [(9, "'retry' is not valid")]),
    "misc_no_path": ("MISC_CHECK {\n misc_timeout 5\n}", [(7, "no script path")]),
    "misc_connect_timeout": (
        "MISC_CHECK {\n misc_path /nonexistent/x\n connect_timeout 4\n}",
        [(9, "'connect_timeout' is not valid in MISC_CHECK")],
    ),
    "bfd_no_name": ("BFD_CHECK {\n}", [(7, "no name has been specified for BFD_CHECK")]),
    "smtp_host": (
        "SMTP_CHECK {\n helo_name x\n host {\n connect_ip 10.1.1.1\n connect_port 25\n }\n}",
        [],
    ),
    "unknown_checker": ("FOO_CHECK {\n}", [(7, "unknown keyword 'FOO_CHECK' in real_server")]),
    "rs_tunnel": ("lvs_method TUN type gue port 5555 csum", []),
    "rs_method_bad": ("lvs_method XX", [(7, "unknown [XX] routing method")]),
}


def _case_text(name: str) -> str:
    body = CASES[name][0]
    pre = "track_file tf {\n file /tmp/x\n}\n" if name == "file_retry" else ""
    text = rs_with(body, pre=pre)
    return text


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_diagnostics(name: str) -> None:
    expected = CASES[name][1]
    offset = 3 if name == "file_retry" else 0
    _, diags = diagnose(_case_text(name))
    got = errors(diags)
    assert len(got) == len(expected), got
    for (line, fragment), (got_line, message) in zip(expected, got, strict=True):
        assert fragment in message and got_line == line + offset, (fragment, got_line, message)
    assert all(d.hint for d in diags)


@pytest.mark.parametrize("name", sorted(CASES))
def test_checker_roundtrip(name: str) -> None:
    config, _ = build(_case_text(name))
    assert roundtrip(config).virtual_servers == config.virtual_servers


def test_full_checkers_roundtrip() -> None:
    config, _ = build(rs_with(HTTP + "\n  TCP_CHECK {\n  }\n  " + HTTP.replace("HTTP", "SSL")))
    again = roundtrip(config)
    assert again.virtual_servers == config.virtual_servers
    assert [type(c) for c in again.virtual_servers[0].real_servers[0].checkers] == [
        HttpGet,
        TcpCheck,
        SslGet,
    ]


def test_pitfalls() -> None:
    _, diags = diagnose(rs_with("  MISC_CHECK {\n   misc_path /bin/x\n  }"))
    assert [(w[0], w[2]) for w in warnings(diags)] == [(8, "pitfall")]
    assert "script_security" in warnings(diags)[0][1]
    _, diags = diagnose(
        rs_with("  TCP_CHECK {\n  }")
        .replace("protocol TCP", "protocol UDP")
        .replace(" 80 {\n", " {\n")
    )
    msgs = [w[1] for w in warnings(diags)]
    assert any("checks over TCP but the virtual server is UDP" in m for m in msgs)
    _, diags = diagnose(
        rs_with("  HTTP_GET {\n   url {\n    path /\n    regex_no_match\n   }\n  }")
    )
    assert [w[0] for w in warnings(diags)] == [8]


def test_global_script_security_silences_the_pitfall() -> None:
    text = "global_defs {\n enable_script_security\n}\n" + rs_with(
        "  MISC_CHECK {\n   misc_path /bin/x\n  }"
    )
    config, diags = diagnose(text)
    if not getattr(config.global_defs, "enable_script_security", False):
        pytest.skip("global_defs model does not carry enable_script_security yet")
    assert warnings(diags) == []


@pytest.mark.keepalived
def test_checker_cases_agree_with_keepalived(tmp_path: object) -> None:
    from pathlib import Path

    if shutil.which("keepalived") is None:
        pytest.skip("keepalived binary not installed")
    assert isinstance(tmp_path, Path)
    disagree = []
    for name, (_, expected) in sorted(CASES.items()):
        if name in ("http_no_url", "url_no_path"):
            continue  # keepalived 2.2.7 crashes on these
        path = tmp_path / f"{name}.conf"
        path.write_text(_case_text(name))
        if (_keepalived_rc(path) != 0) != bool(expected):
            disagree.append(name)
    assert disagree == []
