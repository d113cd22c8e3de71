"""Semantic validation and pitfall lint of the VRRP side, checked against keepalived -t."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.config.validate import validate

HOST = Environment(interfaces=frozenset({"lo", "eth0"}))


def diagnose(text: str, env: Environment = HOST) -> list[Diagnostic]:
    ctx = Ctx()
    lines = ((line, SourceLoc("c.conf", i + 1)) for i, line in enumerate(text.splitlines()))
    config = build_config(parse_lines(lines), ctx)
    return ctx.diagnostics + validate(config, env)


def errors(text: str, env: Environment = HOST) -> list[tuple[int, str]]:
    return [
        (d.loc.line if d.loc else 0, d.message)
        for d in diagnose(text, env)
        if d.severity is Severity.ERROR
    ]


def inst(body: str, name: str = "VI_1", vrid: int = 1, vip: str = "10.0.0.1/24") -> str:
    """An instance block: line 1 header, line 2 interface, line 3 vrid, lines 4-6 VIP."""
    return (
        f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n"
        f"    virtual_ipaddress {{\n        {vip}\n    }}\n{body}}}\n"
    )


GOOD = inst("    priority 100\n")

# (id, config, expected errors as (line, message start)) -- keepalived 2.2.7 exits 5 on each
BAD: list[tuple[str, str, list[tuple[int, str]]]] = [
    ("no-vrid", "vrrp_instance A {\n    interface eth0\n    virtual_ipaddress {\n"
     "        10.0.0.1\n    }\n}\n", [(1, "(A) the virtual router id must be set")]),
    ("no-interface", "vrrp_instance A {\n    virtual_router_id 1\n    virtual_ipaddress {\n"
     "        10.0.0.1\n    }\n}\n", [(1, "(A) Unknown interface!")]),
    ("no-vip", "vrrp_instance A {\n    interface eth0\n    virtual_router_id 1\n}\n",
     [(1, "(A) No VIP specified; at least one is sensible")]),
    ("missing-interface", inst("    track_interface {\n        eth9\n    }\n"),
     [(8, "WARNING - (VI_1) tracked interface eth9 doesn't exist")]),
    ("vip-dev-missing", inst("", vip="10.0.0.1 dev eth7"),
     [(5, "WARNING - interface eth7 for ip address 10.0.0.1 doesn't exist")]),
    ("mixed-family", inst("    virtual_ipaddress {\n        2001:db8::1\n    }\n"),
     [(8, "(VI_1) address family must match VRRP instance [2001:db8::1]")]),
    ("peer-family", inst("    unicast_peer {\n        2001:db8::2\n    }\n"),
     [(8, "(VI_1) unicast peer 2001:db8::2 must be of the same family")]),
    ("v2-fraction", inst("    advert_int 1.5\n"),
     [(7, "(VI_1) VRRPv2 advertisement interval 1.500000s must be an integer")]),
    ("v3-units", inst("    version 3\n    advert_int 0.125\n"),
     [(8, "(VI_1) VRRPv3 advertisement interval 0.125000s must be in units of 10ms")]),
    ("v3-auth", inst("    version 3\n    authentication {\n        auth_type PASS\n"
                     "        auth_pass x\n    }\n"),
     [(8, "(VI_1) VRRP version 3 does not support authentication")]),
    ("auth-no-pass", inst("    authentication {\n        auth_type PASS\n    }\n"),
     [(7, "(VI_1) Authentication specified but no password given")]),
    ("ah-master", inst("    state MASTER\n    priority 100\n    authentication {\n"
                       "        auth_type AH\n        auth_pass x\n    }\n"),
     [(7, "(VI_1) Initial state master is incompatible with AH authentication")]),
    ("strict-auth", "global_defs {\n    vrrp_strict\n}\n" + inst(
        "    priority 100\n    authentication {\n        auth_type PASS\n        auth_pass x\n"
        "    }\n"), [(11, "(VI_1) Strict mode does not support authentication")]),
    ("strict-master", "global_defs {\n    vrrp_strict\n}\n" + inst(
        "    state MASTER\n    priority 100\n"),
     [(10, "(VI_1) State MASTER must match being address owner")]),
    ("nopreempt-master", inst("    state MASTER\n    priority 100\n    nopreempt\n"),
     [(9, "(VI_1) Warning - nopreempt will not work with initial state MASTER")]),
    ("nopreempt-owner", inst("    priority 255\n    nopreempt\n"),
     [(8, "(VI_1) nopreempt is incompatible with priority 255")]),
    ("preempt-delay-master", inst("    state MASTER\n    priority 90\n    preempt_delay 10\n"),
     [(9, "(VI_1) Warning - preempt delay will not work with initial state MASTER")]),
    ("empty-unicast-peer", inst("    unicast_peer {\n    }\n"),
     [(7, "(VI_1) A unicast keyword has been specified without any unicast peers")]),
    ("unicast-ttl-no-peers", inst("    unicast_ttl 10\n"),
     [(7, "(VI_1) A unicast keyword has been specified without any unicast peers"),
      (7, "(VI_1): Cannot use unicast_ttl without unicast peers")]),
    ("dup-vrid", inst("") + inst("", name="VI_2", vip="10.0.0.2/24"),
     [(10, "VI_1 and VI_2 both use VRID 1 with IPv4 on interface eth0")]),
    ("dup-name", inst("") + inst("", vrid=2), [(8, "vrrp instance VI_1 already defined")]),
    ("route-untracked", inst("    virtual_routes {\n        10.9.0.0/16 via 10.0.0.254\n    }\n"),
     [(8, "virtual_routes: Warning - cannot track route 10.9.0.0/16 with no interface")]),
    ("rule-no-pref", inst("    virtual_rules {\n        from 10.0.0.0/8 table 10\n    }\n"),
     [(8, "virtual_rules: Rule has no preference specified")]),
    ("own-track-if", inst("    track_interface {\n        eth0\n    }\n"),
     [(8, "(VI_1) Ignoring track_interface eth0 since own interface")]),
    ("sync-missing", "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_X\n    }\n}\n"
     + inst("", vrid=1) + inst("", name="VI_2", vrid=2, vip="10.0.0.2"),
     [(2, "Virtual router VI_X specified in sync group G doesn't exist"),
      (1, "Sync group G has only 1 virtual router(s)")]),
    ("sync-no-group", "vrrp_sync_group G {\n}\n" + inst(""),
     [(1, "Sync group G has no virtual router(s)")]),
    ("sync-weighted", "vrrp_sync_group G {\n    group {\n        VI_1 VI_2\n    }\n}\n"
     + inst("    track_interface {\n        lo weight -10\n    }\n")
     + inst("", name="VI_2", vrid=2, vip="10.0.0.2"),
     [(13, "(VI_1) ignoring weight of tracked interface lo due to SYNC group")]),
    ("garp-group-empty", "garp_group {\n    interface eth0\n}\n",
     [(1, "garp group does not have any delay set")]),
    ("lvs-syncd-deprecated", inst("    lvs_sync_daemon_interface eth0\n"),
     [(7, "'lvs_sync_daemon_interface' is deprecated")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in BAD], ids=[i for i, *_ in BAD]
)
def test_keepalived_errors_are_errors(text: str, expected: list[tuple[int, str]]) -> None:
    got = errors(text)
    assert len(got) == len(expected), got
    for (line, start), (gline, gmsg) in zip(expected, got, strict=True):
        assert gline == line and gmsg.startswith(start), (gline, gmsg)


def test_good_config_has_no_errors() -> None:
    assert errors(GOOD) == []
    assert errors(inst("    unicast_src_ip 10.0.0.5\n    unicast_peer {\n        10.0.0.6\n"
                       "    }\n")) == []  # fmt: skip


def test_interfaces_only_checked_with_environment() -> None:
    text = inst("    track_interface {\n        eth9\n    }\n", vip="10.0.0.1 dev eth8")
    assert len(errors(text)) == 2
    assert errors(text, Environment(interfaces=None)) == []
    dyn = "global_defs {\n    dynamic_interfaces\n}\n" + text
    assert errors(dyn) == []


def test_script_order_and_use() -> None:
    used_before = inst("    track_script {\n        chk\n    }\n") + (
        "vrrp_script chk {\n    script /bin/true\n}\n"
    )
    assert errors(used_before) == [
        (8, "(VI_1) track script chk not found before its definition at c.conf:11, ignoring..."),
        (11, "Warning - script chk is not used"),
    ]
    unused = "vrrp_script chk {\n    script /bin/true\n}\n" + GOOD
    assert errors(unused) == [(1, "Warning - script chk is not used")]
    no_script = "vrrp_script chk {\n    interval 2\n}\n" + inst(
        "    track_script {\n        chk\n    }\n"
    )
    assert errors(no_script) == [(1, "No script set for vrrp_script chk - removing")]


def test_owner_cannot_have_weighted_trackers() -> None:
    text = "vrrp_script chk {\n    script /bin/true\n    weight 10\n}\n" + inst(
        "    priority 255\n    track_script {\n        chk\n    }\n"
    )
    assert errors(text) == [
        (13, "(VI_1) ignoring weight of tracked script chk due to address owner")
    ]


def lint(text: str) -> list[tuple[int, str]]:
    return [
        (d.loc.line if d.loc else 0, d.message)
        for d in diagnose(text)
        if d.severity is Severity.WARNING and d.code == "pitfall"
    ]


def test_pitfalls() -> None:
    master_no_prio = lint(inst("    state MASTER\n"))
    assert master_no_prio[0][0] == 7 and "priority 255" in master_no_prio[0][1]
    strict = lint("global_defs {\n    vrrp_strict\n}\n" + GOOD)
    assert strict == [(2, "(VI_1) strict mode implies no_accept: the virtual addresses will not "
                          "answer (ping, connections) on this node")]  # fmt: skip
    zero = lint("global_defs {\n    enable_script_security\n}\nvrrp_script c {\n    script x\n}\n"
                + inst("    track_script {\n        c\n    }\n"))  # fmt: skip
    assert zero == [(14, "(VI_1) track_script c has weight 0: a failing check puts the instance "
                         "in FAULT state")]  # fmt: skip
    security = lint(inst("    notify_master /bin/true\n"))
    assert security and security[0][0] == 7 and "enable_script_security" in security[0][1]
    group = "vrrp_sync_group G {\n    group {\n        VI_1 VI_2\n    }\n}\n"
    sync = lint(group + inst("    advert_int 2\n") + inst("", name="VI_2", vrid=2, vip="10.0.0.2"))
    assert sync == [(1, "sync group G members use different advert_int (VI_1=2, VI_2=1)")]
    assert lint(GOOD) == []


def _keepalived_exit(text: str) -> int:
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        proc = subprocess.run(
            ["keepalived", "-t", "-f", path, "-l", "-D", "-n"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return proc.returncode
    finally:
        os.unlink(path)


AGREE = [(i, t) for i, t, _ in BAD if "missing" not in i and "dev" not in i] + [
    ("good", GOOD),
    ("good-unicast", inst("    unicast_src_ip 10.0.0.5\n    unicast_peer {\n        10.0.0.6\n"
                          "    }\n")),
    ("good-v3", inst("    version 3\n    advert_int 0.25\n")),
    ("good-routes", inst("    virtual_routes {\n        10.9.0.0/16 via 10.0.0.254 dev eth0\n"
                         "        10.8.0.0/16 via 10.0.0.254 no_track\n    }\n")),
]  # fmt: skip


@pytest.mark.keepalived
@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived binary not installed")
@pytest.mark.parametrize("text", [t for _, t in AGREE], ids=[i for i, _ in AGREE])
def test_keepalived_agrees(text: str) -> None:
    """keepalived 2.2.7 exits 5 exactly when we report an error (host has eth0 and lo)."""
    ours = 5 if errors(text) else 0
    assert _keepalived_exit(text) == ours
