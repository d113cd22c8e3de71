"""Reload classification (pure): what a new configuration does to each instance."""

from __future__ import annotations

from pyvrrpd.config.errors import SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.vrrp.engine import views
from pyvrrpd.vrrp.reload import plan_reload


def cfg(text: str):  # type: ignore[no-untyped-def]
    nodes = parse_lines((ln, SourceLoc("t", i + 1)) for i, ln in enumerate(text.splitlines()))
    return build_config(nodes, Ctx())


def inst(
    name: str, vrid: int, prio: int = 100, vips: str = "10.0.0.100/24", extra: str = ""
) -> str:
    lines = "\n".join(f"    {v}" for v in vips.split())
    return (
        f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n"
        f" priority {prio}\n virtual_ipaddress {{\n{lines}\n }}\n{extra}\n}}\n"
    )


BASE = inst("A", 1) + inst("B", 2) + inst("C", 3)


def plan(old: str, new: str):  # type: ignore[no-untyped-def]
    return plan_reload(views(cfg(old)), views(cfg(new)))


def test_same_config_changes_nothing() -> None:
    p = plan(BASE, BASE)
    assert p.unchanged == ("A", "B", "C") and not p.changes_anything


def test_vip_change_is_in_place() -> None:
    p = plan(BASE, inst("A", 1, vips="10.0.0.100/24 10.0.0.101/24") + inst("B", 2) + inst("C", 3))
    assert p.addresses == ("A",) and p.restart == () and "A" not in p.unchanged


def test_priority_change_is_fed_not_restarted() -> None:
    p = plan(BASE, inst("A", 1, prio=120) + inst("B", 2) + inst("C", 3))
    assert p.priority == ("A",) and p.restart == ()


def test_becoming_owner_restarts() -> None:
    p = plan(BASE, inst("A", 1, prio=255) + inst("B", 2) + inst("C", 3))
    assert p.restart == ("A",)


def test_vrid_or_tracker_change_restarts() -> None:
    p = plan(BASE, inst("A", 9) + inst("B", 2, extra="track_interface {\n eth1\n}") + inst("C", 3))
    assert set(p.restart) == {"A", "B"}


def test_rename_is_remove_plus_add() -> None:
    p = plan(BASE, inst("A", 1) + inst("B", 2) + inst("D", 3))
    assert p.removed == ("C",) and p.added == ("D",)


def test_notify_change_alone_is_unchanged() -> None:
    p = plan(BASE, inst("A", 1, extra='notify "/bin/true"') + inst("B", 2) + inst("C", 3))
    assert "A" in p.unchanged and not p.changes_anything


def test_sync_group_membership_change_restarts_members() -> None:
    group = "vrrp_sync_group G {\n group {\n  A\n  B\n }\n}\n"
    p = plan(BASE, group + BASE)
    assert set(p.restart) == {"A", "B"} and p.unchanged == ("C",)
