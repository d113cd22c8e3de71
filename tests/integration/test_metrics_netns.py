"""``pyvrrpd --metrics`` on a VRRP pair in namespaces, scraped from inside the lab."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import Host, Lab

from .vrrplab import global_conf, holders, instance_conf, wait_for

pytest.importorskip("prometheus_client", reason="pip install prometheus-client")

from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.netns

PORT = 9650
SCRAPE = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=5) as r:\n"
    "    sys.stdout.write(r.read().decode())\n"
)


def start(lab: Lab, host: Host, conf_text: str, metrics: str) -> tuple[subprocess.Popen[Any], Path]:
    """pyvrrpd (VRRP side) with --metrics, its socket and state file in the lab."""
    d = lab.tmpdir / host.name
    d.mkdir()
    conf = d / "keepalived.conf"
    conf.write_text(conf_text)
    log = d / "log"
    cmd = [sys.executable, "-m", "pyvrrpd.cli.daemon", "-n", "-l", "-D", "--vrrp",
           "-f", str(conf), "-p", str(d / "pid"), "--control-socket", str(d / "control.sock"),
           "--state-file", str(d / "state.json"), "--metrics", metrics]  # fmt: skip
    with open(log, "wb") as fh:
        proc = lab.popen(host, cmd, stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def scrape(lab: Lab, host: Host, url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET ``url`` from inside ``host``'s namespace; the samples Prometheus would read."""
    res = lab.exec(host, [sys.executable, "-c", SCRAPE, url], check=False, timeout=15)
    assert res.returncode == 0, res.stderr
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(res.stdout)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **kw: str
) -> float:
    return samples[(name, frozenset(kw.items()))]


def test_metrics_of_a_vrrp_pair(lab: Lab) -> None:
    a = lab.add_host("a", ("10.77.0.1/24",))
    b = lab.add_host("b", ("10.77.0.2/24",))
    hosts = [a, b]
    conf = instance_conf(advert_int=0.1, version=3)
    # a on its loopback only; b on every address (":PORT"), reached over the lab's bridge
    pa, log_a = start(lab, a, global_conf("A") + conf.replace("priority 100", "priority 150"),
                      f"127.0.0.1:{PORT}")  # fmt: skip
    pb, log_b = start(lab, b, global_conf("B") + conf, f":{PORT}")
    url_a = f"http://127.0.0.1:{PORT}/metrics"
    url_b = f"http://10.77.0.2:{PORT}/metrics"
    assert wait_for(lambda: holders(lab, hosts, "10.77.0.100") == ["a"], 10) is not None

    def b_state() -> float:
        try:
            return value(scrape(lab, a, url_b), "pyvrrpd_vrrp_state", instance="VI_1",
                         state="BACKUP")  # fmt: skip
        except (AssertionError, KeyError):
            return 0.0

    assert wait_for(lambda: b_state() == 1.0, 10, step=0.2) is not None, log_b.read_text()

    first_a = scrape(lab, a, url_a)
    first_b = scrape(lab, a, url_b)
    assert value(first_a, "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 1
    assert value(first_a, "pyvrrpd_vrrp_state", instance="VI_1", state="BACKUP") == 0
    assert value(first_a, "pyvrrpd_vrrp_effective_priority", instance="VI_1") == 150
    assert value(first_b, "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 0
    assert value(first_b, "pyvrrpd_vrrp_priority", instance="VI_1") == 100
    time.sleep(0.6)  # about six adverts at advert_int 0.1
    second_a = scrape(lab, a, url_a)
    second_b = scrape(lab, b, f"http://[::1]:{PORT}/metrics")  # ":PORT" covers IPv6 too
    sent = "pyvrrpd_vrrp_adverts_sent_total"
    received = "pyvrrpd_vrrp_adverts_received_total"
    assert value(second_a, sent, instance="VI_1") >= value(first_a, sent, instance="VI_1") + 3
    assert (
        value(second_b, received, instance="VI_1") >= value(first_b, received, instance="VI_1") + 3
    )
    # a listens on its loopback only: not reachable from b
    res = lab.exec(b, [sys.executable, "-c", SCRAPE, f"http://10.77.0.1:{PORT}/metrics"],
                   check=False, timeout=15)  # fmt: skip
    assert res.returncode != 0

    # a leaves (priority 0): b takes over, and its counters say so
    assert lab.stop(pa) == 0
    assert wait_for(lambda: holders(lab, hosts, "10.77.0.100") == ["b"], 5) is not None
    after = scrape(lab, b, f"http://127.0.0.1:{PORT}/metrics")
    assert value(after, "pyvrrpd_vrrp_state", instance="VI_1", state="MASTER") == 1
    became = "pyvrrpd_vrrp_became_master_total"
    assert value(after, became, instance="VI_1") == value(first_b, became, instance="VI_1") + 1
    assert value(after, "pyvrrpd_vrrp_priority_zero_received_total", instance="VI_1") >= 1
    assert lab.stop(pb) == 0
    for log in (log_a, log_b):
        text = log.read_text()
        assert "metrics: serving /metrics on" in text and "Traceback" not in text, text
