"""Reload (SIGHUP) watched from outside with ``ip monitor address``: no flaps."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.netlab import Lab

from .vrrplab import global_conf, holders, instance_conf, start_daemon, wait_for

pytestmark = pytest.mark.netns


def events(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [ln for ln in fh.read().splitlines() if " inet" in ln]


def test_reload_without_flaps(lab: Lab) -> None:
    a = lab.add_host("a", ("10.77.0.1/24",))
    b = lab.add_host("b", ("10.77.0.2/24",))
    hosts = [a, b]

    def conf_a(extra_vip: bool = False, name: str = "VI_1") -> str:
        text = global_conf("A") + instance_conf(name, priority=150, advert_int=0.1, version=3)
        if extra_vip:
            text = text.replace(
                "10.77.0.100/24 dev eth0",
                "10.77.0.100/24 dev eth0\n        10.77.0.101/24 dev eth0",
            )
        return text

    da = start_daemon(lab, a, "pyvrrpd", conf_a())
    db = start_daemon(
        lab, b, "pyvrrpd", global_conf("B") + instance_conf(priority=100, advert_int=0.1, version=3)
    )
    assert wait_for(lambda: holders(lab, hosts, "10.77.0.100") == ["a"], 10) is not None
    mon_log = str(lab.tmpdir / "monitor")
    with open(mon_log, "wb") as fh:
        mon = lab.popen(a, ["ip", "-o", "monitor", "address"], stdout=fh, stderr=subprocess.STDOUT)
    time.sleep(0.3)

    def hup(text: str | None = None) -> None:
        if text is not None:
            da.conf.write_text(text)
        os.kill(da.proc.pid, signal.SIGHUP)
        time.sleep(1.0)

    hup()  # unchanged: no address event at all
    assert events(mon_log) == []
    hup(conf_a(extra_vip=True))  # one VIP added: exactly one add event
    ev = events(mon_log)
    assert len(ev) == 1 and "10.77.0.101/24" in ev[0] and "Deleted" not in ev[0], ev
    hup("vrrp_instance VI_1 {\n  virtual_router_id 999\n")  # invalid: nothing changes
    assert len(events(mon_log)) == 1
    assert da.proc.poll() is None
    assert "running configuration kept" in da.log_text()
    assert holders(lab, hosts, "10.77.0.101") == ["a"]
    hup(global_conf("A"))  # the instance is removed: it leaves cleanly, b takes over
    assert wait_for(lambda: holders(lab, hosts, "10.77.0.100") == ["b"], 3) is not None
    assert holders(lab, hosts, "10.77.0.101") == []
    lab.stop(mon)
    lab.stop(da.proc)
    lab.stop(db.proc)
    assert "Traceback" not in da.log_text()
