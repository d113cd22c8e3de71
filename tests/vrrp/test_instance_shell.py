"""VrrpInstance's shell on a fake network: actions run at once when the worker is idle,
in order always, and the takeover's addresses and gratuitous ARP leave with the advert."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from pyvrrpd.config.errors import SourceLoc
from pyvrrpd.config.load import build_config
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.net.backend import AddressSpec
from pyvrrpd.net.fake import FakeNetBackend
from pyvrrpd.vrrp.fsm_types import Action, Shutdown, State, Timer
from pyvrrpd.vrrp.instance import VrrpInstance
from pyvrrpd.vrrp.packet import IPAddress
from pyvrrpd.vrrp.settings import InstanceSettings, instance_settings

CONF = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24
        10.0.0.101/24
    }
}
"""


def settings() -> InstanceSettings:
    ctx = Ctx()
    lines = ((line, SourceLoc("t.conf", i + 1)) for i, line in enumerate(CONF.splitlines()))
    config = build_config(parse_lines(lines), ctx)
    return instance_settings(config, config.vrrp_instances[0])


class Sent:
    """A transport that records what it sends."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send(self, payload: bytes, dst: IPAddress, src: IPAddress | None = None) -> bool:
        self.payloads.append(payload)
        return True


class GatedNet(FakeNetBackend):
    """A fake whose address additions wait for a gate while it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None

    async def add_address(self, spec: AddressSpec) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await super().add_address(spec)


async def running(net: FakeNetBackend) -> tuple[VrrpInstance, list[str]]:
    net.add_link("eth0")
    inst = VrrpInstance(settings(), net, Sent(), ipaddress.ip_address("10.0.0.2"))
    seen: list[str] = []

    def listener(_: VrrpInstance, action: Action) -> None:
        seen.append(type(action).__name__)

    inst.listeners.append(listener)
    inst.start()
    for _ in range(5):  # the worker removes leftovers, then parks
        await asyncio.sleep(0)
    return inst, seen


async def test_master_down_runs_the_burst_without_yielding() -> None:
    net = FakeNetBackend()
    inst, seen = await running(net)
    net.calls.clear()
    seen.clear()
    down = inst.fsm.next_deadline()
    assert down is not None
    inst.unit._dispatch(inst.unit.handle(inst.name, Timer(), down))
    # Nothing has yielded to the loop since the timer: addresses and the first round of
    # gratuitous ARPs went out already (the repeats wait for their turn on the loop).
    assert inst.state is State.MASTER
    methods = [c.method for c in net.calls if c.method != "get_link"]  # the MAC, looked up once
    assert methods == ["add_address", "add_address", "send_garp", "send_garp"]
    assert seen == []  # listeners hear of AddVips once the burst has left
    assert net.has_address("eth0", "10.0.0.100/24") and net.has_address("eth0", "10.0.0.101/24")
    await inst.stop()
    assert seen[:3] == ["AddVips", "SendGratuitous", "BecomeMaster"]
    assert len(net.called("send_garp")) == 2 * 5  # garp_master_repeat 5, two addresses


async def test_an_action_that_waits_keeps_later_ones_behind_it() -> None:
    net = GatedNet()
    inst, seen = await running(net)
    seen.clear()
    net.calls.clear()
    net.gate = asyncio.Event()
    down = inst.fsm.next_deadline()
    assert down is not None
    inst.unit._dispatch(inst.unit.handle(inst.name, Timer(), down))
    assert inst.state is State.MASTER
    assert seen == []  # AddVips is waiting on the gate; nothing after it has run
    # its RemoveVips queues behind the waiting AddVips (same machine clock as the timer)
    inst.unit._dispatch(inst.unit.handle(inst.name, Shutdown(), down))
    assert inst.state is State.STOPPED
    await asyncio.sleep(0.01)
    assert seen == [] and net.called("remove_address") == []
    net.gate.set()
    await inst.stop()
    assert seen[:3] == ["AddVips", "SendGratuitous", "BecomeMaster"], seen
    assert seen.index("RemoveVips") > seen.index("BecomeMaster"), seen
    adds = [i for i, c in enumerate(net.calls) if c.method == "add_address"]
    removes = [i for i, c in enumerate(net.calls) if c.method == "remove_address"]
    assert adds and removes and max(adds) < min(removes)
    assert not net.has_address("eth0", "10.0.0.100/24")


async def test_advert_bytes_are_reused_until_the_settings_change() -> None:
    from dataclasses import replace

    from pyvrrpd.vrrp.fsm_types import SendAdvert
    from pyvrrpd.vrrp.packet import decode_advert

    net = FakeNetBackend()
    inst, _ = await running(net)
    sender = inst.sender
    assert isinstance(sender, Sent)
    inst.execute(SendAdvert(100, 1.0))
    inst.execute(SendAdvert(100, 1.0))
    assert sender.payloads[0] is sender.payloads[1]  # encoded once
    inst.settings = replace(inst.settings, vrid=52)  # a reload swaps the settings object
    inst.execute(SendAdvert(100, 1.0))
    inst.execute(SendAdvert(0, 1.0))
    first, renewed, zero = (decode_advert(p) for p in sender.payloads[1:4])
    assert (first.vrid, renewed.vrid, zero.vrid) == (51, 52, 52)
    assert (renewed.priority, zero.priority) == (100, 0)
    await inst.stop()


async def test_a_backup_wakes_early_to_warm_up_then_takes_over_on_time() -> None:
    from dataclasses import replace

    from pyvrrpd.vrrp.unit import WARM_LEAD

    net = FakeNetBackend()
    net.add_link("eth0")
    fast = replace(settings(), version=3, advert_int=0.05)
    inst = VrrpInstance(fast, net, Sent(), ipaddress.ip_address("10.0.0.2"))
    became: list[float] = []
    inst.listeners.append(
        lambda i, a: became.append(i.loop.time()) if type(a).__name__ == "BecomeMaster" else None
    )
    inst.start()
    deadline = inst.fsm.takeover_at()
    assert deadline is not None and inst.state is State.BACKUP
    assert inst.unit._alarm.when == pytest.approx(deadline - WARM_LEAD)
    await asyncio.sleep(deadline - inst.loop.time() + 0.1)
    assert inst.state is State.MASTER
    assert net.warmed == [fast.vips]  # warmed once, with the addresses it then added
    assert became and became[0] >= deadline  # never before its time
    await inst.stop()
