"""The namespace lab helper itself: hosts reach each other, faults work, teardown is total."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.netlab import Lab, have_root_netns, sweep_stale

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2"),
    pytest.mark.skipif(shutil.which("ping") is None, reason="needs iputils-ping"),
]


def ping(lab: Lab, src: str, dst: str) -> bool:
    res = lab.exec(src, ["ping", "-c", "1", "-W", "0.3", dst], check=False)
    return res.returncode == 0


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_lab_builds_partitions_and_tears_down() -> None:
    with Lab() as lab:
        a = lab.add_host("a", ["10.77.0.1/24"])
        lab.add_host("b", ["10.77.0.2/24"])
        assert {lab.bridge_ns, a.ns, lab.ns("b")} <= namespaces()
        assert ping(lab, "a", "10.77.0.2")
        lab.partition("a", "b")
        assert "isolated on" in lab.bridge_cmd("-d", "link", "show", "dev", a.port)
        assert not ping(lab, "a", "10.77.0.2")
        lab.heal("a", "b")
        assert ping(lab, "a", "10.77.0.2")
        lab.link_down("b")
        assert "NO-CARRIER" in lab.ip("link", "show", "eth0", ns="b")
        lab.link_up("b")
        sleeper = lab.popen("a", ["sleep", "600"])
        assert os.getpgid(sleeper.pid) == sleeper.pid  # its own process group
        tmp = lab.tmpdir
        created = {lab.bridge_ns, a.ns, lab.ns("b")}
    assert sleeper.poll() is not None  # killed by PID at teardown
    assert not created & namespaces()
    assert not Path(tmp).exists()


def test_sweep_stale_removes_dead_runs_only() -> None:
    dead = "pvl4194305x0000-x"  # above any pid_max: a leftover of a dead run
    subprocess.run(["ip", "netns", "add", dead], check=True)
    try:
        with Lab() as lab:
            assert dead in sweep_stale()
            assert lab.bridge_ns in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", dead], capture_output=True, check=False)
    assert dead not in namespaces()
