"""lvs_sync_daemon following a VRRP instance: the pure decision and the shell on FakeIpvs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from pyvrrpd.balancer.mapping import LvsSyncDaemonSpec
from pyvrrpd.balancer.sync_follow import SyncDaemonFollower, matches, sync_changes
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import SyncDaemon, SyncState

M, B = SyncState.MASTER, SyncState.BACKUP


def test_kernel_defaults_match_what_was_left_to_the_kernel() -> None:
    wanted = SyncDaemon(M, "eth1", syncid=51)
    dumped = SyncDaemon(M, "eth1", 51, 1472, ip_address("224.0.0.81"), 8848, 1)
    assert matches(wanted, dumped)
    assert not matches(SyncDaemon(M, "eth1", 51, mcast_port=9000), dumped)
    assert not matches(SyncDaemon(M, "eth2", 51), dumped)
    assert not matches(SyncDaemon(B, "eth1", 51), dumped)


def test_sync_changes_table() -> None:
    master, backup = SyncDaemon(M, "eth1", 51), SyncDaemon(B, "eth1", 51)
    cases = [
        (master, [], (), master),
        (master, [master], (), None),
        (master, [backup], (B,), master),
        (master, [master, backup], (B,), None),
        (backup, [master], (M,), backup),
        (master, [SyncDaemon(M, "eth1", 7)], (M,), master),  # another syncid: restarted
        (None, [master, backup], (M, B), None),
        (None, [], (), None),
    ]
    for wanted, running, stop, start in cases:
        got = sync_changes(wanted, running)
        assert (got.stop, got.start) == (stop, start), (wanted, running)


@dataclass
class FakeFsmState:
    value: str


@dataclass
class FakeSettings:
    vrid: int


@dataclass
class FakeInstance:
    state: str
    vrid: int = 51
    listeners: list[Any] = field(default_factory=list)

    @property
    def fsm(self) -> Any:
        return type("F", (), {"state": FakeFsmState(self.state)})()

    @property
    def settings(self) -> FakeSettings:
        return FakeSettings(self.vrid)

    def act(self, kind: str) -> None:
        self.state = {"BecomeMaster": "MASTER", "BecomeBackup": "BACKUP"}.get(kind, "FAULT")
        action = type(kind, (), {})()
        for listener in list(self.listeners):
            listener(self, action)


@dataclass
class FakeEngine:
    instances: dict[str, FakeInstance]


async def settle(fake: FakeIpvs, want: list[SyncState]) -> None:
    for _ in range(100):
        if sorted(fake.running) == want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"kernel runs {sorted(fake.running)}, wanted {want}")


async def test_the_daemon_follows_the_instance() -> None:
    fake = FakeIpvs()
    inst = FakeInstance("BACKUP")
    follower = SyncDaemonFollower(fake, LvsSyncDaemonSpec("eth1", instance="VI_1"))
    assert follower.attach(FakeEngine({"VI_1": inst}))
    await settle(fake, [B])
    assert fake.running[B] == SyncDaemon(B, "eth1", syncid=51)  # syncid defaults to VRID
    inst.act("BecomeMaster")
    await settle(fake, [M])
    inst.act("BecomeFault")
    await settle(fake, [B])
    calls = len(fake.calls)
    assert follower.attach(FakeEngine({"VI_1": inst}))  # a reload: nothing to change
    await asyncio.sleep(0.05)
    assert fake.calls[calls:] == [] and len(inst.listeners) == 1
    await follower.stop()
    assert fake.running == {} and inst.listeners == []


async def test_a_missing_instance_starts_nothing() -> None:
    fake = FakeIpvs()
    follower = SyncDaemonFollower(fake, LvsSyncDaemonSpec("eth1", instance="NOPE"))
    assert not follower.attach(FakeEngine({"VI_1": FakeInstance("MASTER")}))
    await asyncio.sleep(0.02)
    assert fake.calls == []
    await follower.stop()
