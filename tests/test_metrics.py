"""Prometheus metrics: the collector on status snapshots, the exposition as Prometheus
parses it, the --metrics address syntax and the HTTP server (on 127.0.0.1 only)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="pip install prometheus-client")

from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from pyvrrpd.cli.configtest import check
from pyvrrpd.cli.daemon import build_parser, metrics_address
from pyvrrpd.daemon import Daemon
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.metrics import (
    LATENCY_BUCKETS,
    LatencyHistograms,
    MetricsServer,
    SnapshotCollector,
    start_metrics,
)
from pyvrrpd.net.fake import FakeNetBackend
from pyvrrpd.runtime import metrics_module

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "status-schema.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def instance(name: str, state: str, **kw: Any) -> dict[str, Any]:
    inst: dict[str, Any] = {
        "name": name, "state": state, "interface": "eth0", "vrid": 51, "version": 3,
        "family": "IPv4", "priority": 140, "base_priority": 150, "effective_priority": 140,
        "trackers": [
            {"name": "eth1", "kind": "interface", "up": False, "value": None, "weight": -10,
             "reverse": False, "contribution": -10},
            {"name": "chk", "kind": "script", "up": None, "value": None, "weight": 0,
             "reverse": False, "contribution": 0},
        ],
        "master": None, "address": "10.0.0.1", "advert_int": 1.0, "master_adver_int": 1.0,
        "master_down_interval": 3.4, "unicast_peers": [],
        "vips": ["10.0.0.100/24", "10.0.0.101/24"], "excluded_vips": [],
        "counters": {"adverts_received": 4, "adverts_sent": 9, "priority_zero_received": 1,
                     "priority_zero_sent": 2, "transitions": 3, "became_master": 1,
                     "released_master": 1, "send_failures": 5},
        "drops": {"bad_ttl": 2, "auth_mismatch": 7},
    }  # fmt: skip
    inst.update(kw)
    return inst


def check_result(ok: bool, latency: float, cause: str = "x") -> dict[str, Any]:
    return {"ok": ok, "cause": cause, "latency": latency, "weight": None, "weight_delta": False}


def fake_snapshot() -> dict[str, Any]:
    return {
        "schema": 1, "version": "0.1.0", "pid": 4242, "config": "/etc/k.conf",
        "uptime": 12.5, "reloads": 2,
        "vrrp": [instance("VI_1", "MASTER"), instance("VI_2", "BACKUP", vrid=52, drops={})],
        "vrrp_unmatched_drops": {"unknown_vrid": 6},
        "ipvs": {
            "applies": 3, "failed_ops": 1,
            "virtual_servers": [{
                "name": "[10.0.0.1]:tcp:80", "quorum_up": True, "weight_sum": 3,
                "sorry_active": False, "suspended": True,
                "servers": [
                    {"name": "[192.0.2.1]:80", "alive": True, "weight": 3, "in_pool": True,
                     "checks": [
                         {"check": [{}, {}], "up": True, "has_run": True,
                          "last": check_result(True, 0.004)},
                         {"check": [{}, {}], "up": False, "has_run": True,
                          "last": check_result(False, 0.7)},
                     ]},
                    {"name": "[192.0.2.2]:80", "alive": False, "weight": 0, "in_pool": False,
                     "checks": [{"check": [{}, {}], "up": False, "has_run": False,
                                 "last": None}]},
                ],
            }],
        },
        "drains": [{"vs": "[10.0.0.1]:tcp:80", "rs": "[192.0.2.2]:80", "removed": False,
                    "active": 11}],
    }  # fmt: skip


def scrape(snapshot: Any, collector: SnapshotCollector | None = None) -> Samples:
    """Render through prometheus_client and parse back: {(sample name, labels): value}."""
    if collector is None:
        collector = SnapshotCollector(lambda: snapshot)
    return parse(generate_latest(collector).decode())


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples, prefix: str) -> set[str]:
    return {n for n, _ in samples if n.startswith(prefix)}


def test_fake_snapshot_follows_the_status_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(fake_snapshot(), json.loads(SCHEMA.read_text()))


def test_vrrp_metrics() -> None:
    s = scrape(fake_snapshot())
    assert get(s, "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 1
    assert get(s, "pyvrrpd_vrrp_state", instance="VI_2", state="MASTER") == 0
    assert get(s, "pyvrrpd_vrrp_state", instance="VI_2", state="BACKUP") == 1
    states = {dict(lb)["state"] for n, lb in s if n == "pyvrrpd_vrrp_state"}
    assert states == {"INIT", "BACKUP", "MASTER", "FAULT", "STOPPED"}
    assert sum(v for (n, lb), v in s.items() if n == "pyvrrpd_vrrp_state") == 2
    assert get(s, "pyvrrpd_vrrp_priority", instance="VI_1") == 150
    assert get(s, "pyvrrpd_vrrp_effective_priority", instance="VI_1") == 140
    assert get(s, "pyvrrpd_vrrp_vips", instance="VI_1") == 2
    expected = {
        "adverts_received": 4, "adverts_sent": 9, "priority_zero_received": 1,
        "priority_zero_sent": 2, "transitions": 3, "became_master": 1, "released_master": 1,
        "send_failures": 5,
    }  # fmt: skip
    for name, value in expected.items():
        assert get(s, f"pyvrrpd_vrrp_{name}_total", instance="VI_2") == value, name
    assert get(s, "pyvrrpd_vrrp_drops_total", instance="VI_1", reason="auth_mismatch") == 7
    assert get(s, "pyvrrpd_vrrp_drops_total", instance="VI_1", reason="bad_ttl") == 2
    assert not any(n == "pyvrrpd_vrrp_drops_total" and ("instance", "VI_2") in lb for n, lb in s)
    assert get(s, "pyvrrpd_vrrp_unmatched_drops_total", reason="unknown_vrid") == 6
    info = dict(instance="VI_2", interface="eth0", vrid="52", version="3", family="IPv4")
    assert get(s, "pyvrrpd_vrrp_instance_info", **info) == 1
    assert get(s, "pyvrrpd_vrrp_tracker_up", instance="VI_1", tracker="eth1", kind="interface") == 0
    # a tracker in an unknown state has no sample rather than a made-up value
    assert not any(n == "pyvrrpd_vrrp_tracker_up" and ("tracker", "chk") in lb for n, lb in s)
    assert get(s, "pyvrrpd_build_info", version="0.1.0") == 1
    assert get(s, "pyvrrpd_uptime_seconds") == 12.5
    assert get(s, "pyvrrpd_reloads_total") == 2


def test_ipvs_metrics() -> None:
    s = scrape(fake_snapshot())
    vs, rs1, rs2 = "[10.0.0.1]:tcp:80", "[192.0.2.1]:80", "[192.0.2.2]:80"
    assert get(s, "pyvrrpd_ipvs_balancer_running") == 1
    assert get(s, "pyvrrpd_ipvs_applies_total") == 3
    assert get(s, "pyvrrpd_ipvs_failed_ops_total") == 1
    assert get(s, "pyvrrpd_ipvs_virtual_server_quorum_up", virtual_server=vs) == 1
    assert get(s, "pyvrrpd_ipvs_virtual_server_sorry_active", virtual_server=vs) == 0
    assert get(s, "pyvrrpd_ipvs_virtual_server_suspended", virtual_server=vs) == 1
    assert get(s, "pyvrrpd_ipvs_virtual_server_weight_sum", virtual_server=vs) == 3
    assert get(s, "pyvrrpd_ipvs_real_server_up", virtual_server=vs, real_server=rs1) == 1
    assert get(s, "pyvrrpd_ipvs_real_server_up", virtual_server=vs, real_server=rs2) == 0
    assert get(s, "pyvrrpd_ipvs_real_server_weight", virtual_server=vs, real_server=rs1) == 3
    assert get(s, "pyvrrpd_ipvs_real_server_in_pool", virtual_server=vs, real_server=rs2) == 0
    c0 = dict(virtual_server=vs, real_server=rs1, check="0", kind="")
    c1 = dict(c0, check="1")
    c2 = dict(virtual_server=vs, real_server=rs2, check="0", kind="")
    assert get(s, "pyvrrpd_ipvs_check_up", **c0) == 1
    assert get(s, "pyvrrpd_ipvs_check_up", **c1) == 0
    assert get(s, "pyvrrpd_ipvs_check_up", **c2) == 0
    assert get(s, "pyvrrpd_ipvs_check_last_success", **c1) == 0
    assert get(s, "pyvrrpd_ipvs_check_last_latency_seconds", **c0) == 0.004
    assert get(s, "pyvrrpd_ipvs_check_last_latency_seconds", **c1) == 0.7
    # a check that has not run has no last result, and no latency observation
    assert ("pyvrrpd_ipvs_check_last_success", frozenset(c2.items())) not in s
    assert ("pyvrrpd_ipvs_check_latency_seconds_count", frozenset(c2.items())) not in s
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_count", **c0) == 1
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c0, le="0.001") == 0
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c0, le="0.005") == 1
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c1, le="0.5") == 0
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c1, le="1.0") == 1
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c1, le="+Inf") == 1
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_sum", **c1) == 0.7
    drain = dict(virtual_server=vs, real_server=rs2)
    assert get(s, "pyvrrpd_ipvs_drain_active_connections", **drain) == 11
    assert get(s, "pyvrrpd_ipvs_drain_removed", **drain) == 0


def test_check_kind_label_is_taken_from_the_snapshot_when_present() -> None:
    snap = fake_snapshot()
    snap["ipvs"]["virtual_servers"][0]["servers"][0]["checks"][0]["kind"] = "TCP_CHECK"
    s = scrape(snap)
    labels = dict(virtual_server="[10.0.0.1]:tcp:80", real_server="[192.0.2.1]:80")
    assert get(s, "pyvrrpd_ipvs_check_up", **labels, check="0", kind="TCP_CHECK") == 1


def test_no_balancer_no_vrrp() -> None:
    snap = {**fake_snapshot(), "vrrp": [], "vrrp_unmatched_drops": {}, "ipvs": None}
    snap["drains"] = []
    s = scrape(snap)
    assert get(s, "pyvrrpd_ipvs_balancer_running") == 0
    assert names(s, "pyvrrpd_ipvs_real_server") == set()
    assert names(s, "pyvrrpd_vrrp_") == set()
    assert get(s, "pyvrrpd_reloads_total") == 2


def test_histogram_counts_each_new_result_once() -> None:
    snap = fake_snapshot()
    collector = SnapshotCollector(lambda: snap)
    c0 = dict(virtual_server="[10.0.0.1]:tcp:80", real_server="[192.0.2.1]:80", check="0")
    c0["kind"] = ""
    for _ in range(3):  # the same last result, scraped three times: one observation
        s = scrape(None, collector)
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_count", **c0) == 1
    checks = snap["ipvs"]["virtual_servers"][0]["servers"][0]["checks"]
    checks[0]["last"] = check_result(True, 0.02, "again")
    s = scrape(None, collector)
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_count", **c0) == 2
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c0, le="0.01") == 1
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_bucket", **c0, le="0.025") == 2
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_sum", **c0) == pytest.approx(0.024)
    # the check disappears (a reload): its series goes with it
    snap["ipvs"]["virtual_servers"][0]["servers"][0]["checks"] = []
    s = scrape(None, collector)
    assert ("pyvrrpd_ipvs_check_latency_seconds_count", frozenset(c0.items())) not in s


def test_live_histograms_count_every_result_and_ignore_the_snapshot() -> None:
    snap = fake_snapshot()
    checks = snap["ipvs"]["virtual_servers"][0]["servers"][0]["checks"]
    checks[0]["kind"] = "TCP_CHECK"
    collector = SnapshotCollector(lambda: snap)
    c0 = dict(virtual_server="[10.0.0.1]:tcp:80", real_server="[192.0.2.1]:80", check="0")
    c0["kind"] = "TCP_CHECK"
    for latency in (0.001, 0.001, 0.5):  # three results between two scrapes, two alike
        collector.histograms.record(c0["virtual_server"], c0["real_server"], 0, "TCP_CHECK",
                                    latency)  # fmt: skip
    s = scrape(None, collector)
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_count", **c0) == 3  # none missed
    checks[0]["last"] = check_result(True, 0.02, "again")
    s = scrape(None, collector)  # the snapshot's result was recorded live already
    assert get(s, "pyvrrpd_ipvs_check_latency_seconds_count", **c0) == 3


def test_latency_histograms_buckets() -> None:
    h = LatencyHistograms((0.1, 1.0))
    key = ("vs", "rs", "0", "")
    assert h.observe(key, check_result(True, 0.1))
    assert not h.observe(key, check_result(True, 0.1))
    assert h.observe(key, check_result(False, 0.1))  # same latency, another outcome
    assert h.observe(key, check_result(True, 30.0))
    [(k, buckets, total)] = list(h.series())
    assert k == key and buckets == [("0.1", 2.0), ("1.0", 2.0), ("+Inf", 3.0)]
    assert total == pytest.approx(30.2)
    assert len(LATENCY_BUCKETS) == len(set(LATENCY_BUCKETS))


def test_exposition_parses_as_openmetrics() -> None:
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    text = om_latest(SnapshotCollector(fake_snapshot)).decode()
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["pyvrrpd_vrrp_adverts_sent"].type == "counter"
    assert families["pyvrrpd_ipvs_check_latency_seconds"].type == "histogram"
    assert families["pyvrrpd_vrrp_instance"].type == "info"


# ------------------------------------------------------------------ --metrics syntax


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9650", ("127.0.0.1", 9650)),
        ("[::1]:9650", ("::1", 9650)),
        (":9650", (None, 9650)),
        ("[::]:1", ("::", 1)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_metrics_address(text: str, want: tuple[str | None, int]) -> None:
    assert metrics_address(text) == want
    assert build_parser().parse_args(["--metrics", text]).metrics == want


@pytest.mark.parametrize(
    "text", ["9650", "::1:9650", "[::1]", "127.0.0.1:0", "127.0.0.1:70000", "[10.0.0.1]:80",
             "127.0.0.1:http", "a b:80"],
)  # fmt: skip
def test_metrics_address_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        metrics_address(text)


def test_metrics_off_by_default() -> None:
    args = build_parser().parse_args([])
    assert args.metrics is None
    assert metrics_module(args) is None
    mod = metrics_module(build_parser().parse_args(["--metrics", ":9650"]))
    assert mod is not None and mod.start_metrics is start_metrics


# ------------------------------------------------------------------ the HTTP server


async def http(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` to 127.0.0.1:port; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get_req(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


@pytest.fixture
async def server() -> AsyncIterator[MetricsServer]:
    srv = MetricsServer(fake_snapshot, "127.0.0.1", 0, timeout=1.0)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


def port_of(srv: MetricsServer) -> int:
    assert srv.server is not None
    return int(srv.server.sockets[0].getsockname()[1])


async def test_server_answers(server: MetricsServer) -> None:
    port = port_of(server)
    assert server.addresses == [f"127.0.0.1:{port}"]
    status, headers, body = await http(port, get_req("/metrics?x=1"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert int(headers["content-length"]) == len(body)
    s = parse(body.decode())
    assert get(s, "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 1
    assert any(n.startswith("process_") for n, _ in s)  # process metrics are included
    status, headers, body = await http(
        port, get_req("/metrics", extra="Accept: application/openmetrics-text; version=1.0.0\r\n")
    )
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    status, headers, body = await http(port, get_req("/metrics", "HEAD"))
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert (await http(port, get_req("/")))[0] == 200
    assert (await http(port, get_req("/nope")))[0] == 404
    status, headers, _ = await http(port, get_req("/metrics", "POST"))
    assert status == 405 and headers["allow"] == "GET"
    assert (await http(port, b"GARBAGE\r\n\r\n"))[0] == 400


async def test_server_drops_silent_clients(server: MetricsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    try:
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed after the timeout
    finally:
        writer.close()
    assert (await http(port_of(server), get_req("/metrics")))[0] == 200


async def test_collect_failure_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    srv = MetricsServer(broken, "127.0.0.1", 0, process=False)
    await srv.start()
    try:
        with caplog.at_level(logging.ERROR, "pyvrrpd.metrics"):
            assert (await http(port_of(srv), get_req("/metrics")))[0] == 500
        assert "collecting failed" in caplog.text
    finally:
        await srv.close()


async def test_start_metrics_logs_a_taken_port(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, "pyvrrpd.metrics"):
            assert await start_metrics(fake_snapshot, ("127.0.0.1", port)) is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text


# ------------------------------------------------------------------ a daemon on fakes


async def test_daemon_snapshot_end_to_end(tmp_path: Path) -> None:
    """A real snapshot (balancer on FakeIpvs) through the server: shapes agree."""
    path = tmp_path / "keepalived.conf"
    path.write_text(
        "virtual_server 10.0.0.1 80 {\n lvs_sched rr\n lvs_method NAT\n protocol TCP\n"
        " real_server 192.0.2.1 80 {\n  weight 2\n }\n"
        " real_server 192.0.2.2 80 {\n  weight 3\n }\n}\n"
    )
    code, result = check(str(path), None, out=open(os.devnull, "w"))  # noqa: SIM115
    assert result is not None, code
    args = argparse.Namespace(control_socket=None, state_file="none")
    async with contextlib.AsyncExitStack() as stack:
        daemon = Daemon(result, args, FakeNetBackend(), stack)
        daemon.ipvs, daemon.ipvs_tried = FakeIpvs(), True
        await daemon.start()
        srv = await start_metrics(daemon.status, ("127.0.0.1", free_port()))
        assert srv is not None
        try:
            status, _, body = await http(port_of(srv), get_req("/metrics"))
        finally:
            await srv.close()
            await daemon.stop()
    assert status == 200
    s = parse(body.decode())
    vs = "[10.0.0.1]:tcp:80"
    assert get(s, "pyvrrpd_ipvs_balancer_running") == 1
    weights = {
        dict(lb)["real_server"]: v for (n, lb), v in s.items()
        if n == "pyvrrpd_ipvs_real_server_weight"
    }  # fmt: skip
    assert weights == {"[192.0.2.1]:80": 2, "[192.0.2.2]:80": 3}
    assert get(s, "pyvrrpd_ipvs_virtual_server_weight_sum", virtual_server=vs) == 5
    assert get(s, "pyvrrpd_ipvs_applies_total") >= 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_missing_prometheus_client_is_a_clear_startup_error(tmp_path: Path) -> None:
    """Without prometheus_client, pyvrrpd --metrics stops before touching the network.

    The configuration has no instance and no virtual server, and the control socket and
    state file are off, so even a wrong exit path could change nothing on this host.
    """
    conf = tmp_path / "keepalived.conf"
    conf.write_text("global_defs {\n    router_id T\n}\n")
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from pyvrrpd.cli.daemon import main\n"
        f"sys.exit(main(['-f', {str(conf)!r}, '-p', {str(tmp_path / 'pid')!r}, "
        "'--control-socket', 'none', '--state-file', 'none', '--metrics', '127.0.0.1:9650']))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert res.returncode == 1, res.stderr
    assert "--metrics needs the prometheus_client package" in res.stderr
    assert "pip install" in res.stderr
    assert not (tmp_path / "pid").exists()  # removed on the way out


async def test_snapshot_on_the_loop_rendering_in_a_worker() -> None:
    """The engines' state is read on the event loop, once per scrape; the text is built
    in a worker thread (so a big exposition does not delay VRRP's timers)."""
    loop_thread = threading.get_ident()
    taken: list[int] = []
    built: list[int] = []

    def snapshot() -> dict[str, Any]:
        taken.append(threading.get_ident())
        return fake_snapshot()

    srv = MetricsServer(snapshot, "127.0.0.1", 0, process=False)
    families = srv.collector.families

    def spy(snap: Any) -> Any:
        built.append(threading.get_ident())
        return families(snap)

    srv.collector.families = spy  # type: ignore[method-assign]
    body, content_type = await srv.render()
    assert taken == [loop_thread]
    assert len(built) == 1 and built[0] != loop_thread
    assert content_type.startswith("text/plain")
    assert get(parse(body.decode()), "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 1
