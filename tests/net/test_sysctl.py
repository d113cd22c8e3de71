"""Sysctl and the macvlan settings policy, on a fake /proc/sys tree in a temp directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrpd.net.sysctl import Sysctl, ipv4_conf, read_sysctl, sysctl_file, write_sysctl
from pyvrrpd.net.vmac_sysctl import VmacSysctls


def make_tree(root: Path, values: dict[str, int]) -> None:
    for name, value in values.items():
        path = sysctl_file(name, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")


@pytest.mark.parametrize("bad", ["", "net/../etc", "/net//ipv4", "."])
def test_names_cannot_escape(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sysctl_file(bad, tmp_path)


def test_dotted_interface_names_are_path_components(tmp_path: Path) -> None:
    name = ipv4_conf("vrrp.10", "arp_ignore")
    assert sysctl_file(name, tmp_path) == tmp_path / "net/ipv4/conf/vrrp.10/arp_ignore"
    make_tree(tmp_path, {name: 0})
    write_sysctl(name, 1, tmp_path)
    assert read_sysctl(name, tmp_path) == "1"


async def test_set_returns_old_value_and_restore_puts_it_back(tmp_path: Path) -> None:
    name = ipv4_conf("eth0", "arp_filter")
    make_tree(tmp_path, {name: 0})
    sysctl = Sysctl(root=tmp_path)
    assert await sysctl.set(name, 1) == "0"
    assert await sysctl.set(name, 1) == "1"  # the first old value stays saved
    assert await sysctl.get_int(name) == 1
    await sysctl.restore()
    assert await sysctl.get_int(name) == 0
    assert sysctl.saved == {}


async def test_vmac_policy_sets_and_restores(tmp_path: Path) -> None:
    conf = {
        "all/rp_filter": 2,
        "default/rp_filter": 1,
        "eth0/rp_filter": 0,
        "eth0/arp_ignore": 0,
        "eth0/arp_filter": 0,
    }
    vmac_keys = ["arp_ignore", "accept_local", "rp_filter", "promote_secondaries"]
    make_tree(tmp_path, {f"net/ipv4/conf/{k}": v for k, v in conf.items()})
    for vmac in ("vrrp.1", "vrrp.2"):
        make_tree(tmp_path, {ipv4_conf(vmac, k): 0 for k in vmac_keys})
        make_tree(tmp_path, {f"net/ipv6/conf/{vmac}/addr_gen_mode": 0})
        make_tree(tmp_path, {f"net/ipv6/conf/{vmac}/disable_ipv6": 0})
    sysctl = Sysctl(root=tmp_path)
    policy = VmacSysctls(sysctl)

    async def get(name: str) -> int:
        return await sysctl.get_int(f"net/ipv4/conf/{name}")

    await policy.clear_all_rp_filter(["eth0"])
    await policy.setup_vmac("vrrp.1", "eth0", 4)
    await policy.setup_vmac("vrrp.2", "eth0", 4)
    assert [await get(n) for n in ("all/rp_filter", "default/rp_filter", "eth0/rp_filter")] == [
        0,
        2,
        2,
    ]
    assert [await get(f"vrrp.1/{k}") for k in vmac_keys] == [1, 1, 0, 1]
    assert await sysctl.get_int("net/ipv6/conf/vrrp.1/disable_ipv6") == 1
    assert (await get("eth0/arp_ignore"), await get("eth0/arp_filter")) == (1, 1)
    await policy.teardown_vmac("eth0")  # one macvlan left: the parent keeps its settings
    assert await get("eth0/arp_filter") == 1
    await policy.teardown_vmac("eth0")
    assert (await get("eth0/arp_ignore"), await get("eth0/arp_filter")) == (0, 0)
    await policy.restore_all_rp_filter()
    assert [await get(n) for n in ("all/rp_filter", "default/rp_filter", "eth0/rp_filter")] == [
        2,
        1,
        0,
    ]


async def test_rp_filter_untouched_when_all_is_zero(tmp_path: Path) -> None:
    make_tree(tmp_path, {"net/ipv4/conf/all/rp_filter": 0, "net/ipv4/conf/default/rp_filter": 1})
    policy = VmacSysctls(Sysctl(root=tmp_path))
    await policy.clear_all_rp_filter([])
    assert read_sysctl("net/ipv4/conf/default/rp_filter", tmp_path) == "1"
