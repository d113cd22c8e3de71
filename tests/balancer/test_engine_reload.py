"""BalancerEngine.reload(): check states survive a reload, the kernel sees only the diff."""

from __future__ import annotations

from pathlib import Path

from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import Protocol, ServiceKey
from pyvrrpd.ipvs.plan import AddDest, AddService, DelDest, DelService, EditDest

from .conftest import conf
from .test_engine import VIP, Listener, engine, listeners, names, table, until, vs_text

__all__ = ["listeners"]  # the fixture, re-exported for pytest

VIP2 = ServiceKey.of(Protocol.TCP, "10.0.0.2", 80)


def _service_of(op: object) -> ServiceKey | None:
    if isinstance(op, AddService):
        return op.service.key
    if isinstance(op, AddDest | EditDest | DelDest):
        return op.service
    return op.key if isinstance(op, DelService) else None


async def test_a_down_server_stays_down_across_a_reload(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners), fake)
    await eng.start()
    try:
        a, b = names(listeners)
        await listeners[0].stop()
        await until(lambda: a not in table(fake))
        runs_before = eng.status().virtual_servers[0].servers[0].checks[0].last
        before = fake.writes
        # the same virtual server, another one added: the down server must not come back
        await eng.reload(conf(vs_text(listeners) + vs_text(listeners, vip="10.0.0.2")))
        assert table(fake) == {b: 1}
        assert table(fake, VIP2) == {b: 1}  # the new one's check for a is the same check
        new_ops = fake.calls[before:]
        assert [type(op) for op in new_ops] == [AddService, AddDest], new_ops
        down = eng.status().virtual_servers[0].servers[0]
        assert not down.alive and down.checks[0].last == runs_before
        assert eng.check_tasks == 2  # shared between both virtual servers
        await listeners[0].start()
        await until(lambda: a in table(fake) and a in table(fake, VIP2))
    finally:
        await eng.stop()


async def test_a_changed_virtual_server_keeps_its_kept_checks(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners[:1], rs_extra="  weight 3\n"), fake)
    await eng.start()
    try:
        (a,) = names(listeners[:1])
        await listeners[0].stop()
        await until(lambda: a not in table(fake))
        before = fake.writes
        # one real server added to the same virtual server: only it is written
        await eng.reload(conf(vs_text(listeners, rs_extra="  weight 3\n")))
        b = names(listeners)[1]
        assert table(fake) == {b: 3}
        (op,) = fake.calls[before:]
        assert isinstance(op, AddDest) and op.dest.weight == 3
    finally:
        await eng.stop()


async def test_alpha_servers_are_not_restarted_by_a_reload(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners, " alpha\n"), fake)
    await eng.start()
    try:
        a, b = names(listeners)
        await until(lambda: table(fake) == {a: 1, b: 1})
        before = fake.writes
        other = vs_text(listeners, " alpha\n", vip="10.0.0.2")
        await eng.reload(conf(vs_text(listeners, " alpha\n") + other))
        # the kept service is untouched; the new one starts with the checks' known state
        assert table(fake) == {a: 1, b: 1} and table(fake, VIP2) == {a: 1, b: 1}
        touched = [op for op in fake.calls[before:] if _service_of(op) == VIP]
        assert touched == [] and not any(isinstance(op, DelService) for op in fake.calls)
    finally:
        await eng.stop()


async def test_an_unchanged_config_writes_nothing_and_runs_no_script(
    listeners: list[Listener], tmp_path: Path
) -> None:
    log_file = tmp_path / "events"
    script = tmp_path / "note.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log_file}\n')
    script.chmod(0o755)
    text = vs_text(listeners, f' quorum 2\n quorum_up "{script} qup"\n')
    fake = FakeIpvs()
    eng = engine(text, fake)
    await eng.start()
    try:
        await until(lambda: log_file.exists() and "qup" in log_file.read_text())
        state = eng.states[0]
        before = fake.writes
        # the same text, moved after another virtual server: the state object is kept
        await eng.reload(conf(vs_text(listeners, vip="10.0.0.2") + text))
        assert eng.states[1] is state and state.spec.index == 1
        added = [op.service.key for op in fake.calls[before:] if isinstance(op, AddService)]
        assert added == [VIP2]
        await until(lambda: len(table(fake, VIP2)) == 2)
        assert log_file.read_text().split() == ["qup"]  # not run again
    finally:
        await eng.stop()


async def test_a_removed_virtual_server_is_deleted(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners) + vs_text(listeners, vip="10.0.0.2"), fake)
    await eng.start()
    try:
        assert VIP2 in fake.services
        before = fake.writes
        await eng.reload(conf(vs_text(listeners)))
        assert VIP2 not in fake.services and VIP in fake.services
        assert [type(op) for op in fake.calls[before:]] == [DelService]
        # and a later reload does not try again
        again = fake.writes
        await eng.reload(conf(vs_text(listeners)))
        assert fake.writes == again
    finally:
        await eng.stop()


async def test_preview_predicts_the_reload(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    eng = engine(vs_text(listeners), fake)
    await eng.start()
    try:
        a, b = names(listeners)
        await listeners[0].stop()
        await until(lambda: a not in table(fake))
        new = conf(vs_text(listeners, rs_extra="  weight 2\n"))
        desired, owned = eng.preview(new)
        assert VIP in owned
        assert {f"{k.address}:{k.port}": d.weight for k, d in desired[VIP].dests.items()} == {b: 2}
        assert table(fake) == {b: 1}  # preview changed nothing
        await eng.reload(new)
        assert table(fake) == {b: 2}
    finally:
        await eng.stop()


async def test_every_result_reaches_the_result_hooks(listeners: list[Listener]) -> None:
    fake = FakeIpvs()
    seen: list[tuple[str, str, int, str, float]] = []
    eng = engine(vs_text(listeners), fake, result_hooks=[lambda *a: seen.append(a)])
    await eng.start()
    try:
        await until(lambda: len(seen) >= 6)  # three rounds of two servers (delay_loop 0.2)
        a, b = names(listeners)
        assert {(vs, rs, n, kind) for vs, rs, n, kind, _ in seen} == {
            ("[10.0.0.1]:tcp:80", f"[{a.split(':')[0]}]:{a.split(':')[1]}", 0, "TCP_CHECK"),
            ("[10.0.0.1]:tcp:80", f"[{b.split(':')[0]}]:{b.split(':')[1]}", 0, "TCP_CHECK"),
        }
        assert all(0 <= latency < 1 for *_, latency in seen)
    finally:
        await eng.stop()


async def test_a_check_flip_reads_only_its_own_service(listeners: list[Listener]) -> None:
    """A flip re-reads the one service it changes, not the whole table."""
    fake = FakeIpvs()
    text = vs_text(listeners) + vs_text(listeners[1:], vip="10.0.0.2")
    eng = engine(text, fake)
    await eng.start()
    try:
        a = names(listeners)[0]
        dumps, calls = fake.dumps, len(fake.calls)
        seen: list[object] = []
        real_dump = fake.dump

        async def spy(keys: object = None) -> object:
            seen.append(keys)
            return await real_dump(keys)  # type: ignore[arg-type]

        fake.dump = spy  # type: ignore[method-assign]
        await listeners[0].stop()
        await until(lambda: a not in table(fake))
        assert fake.dumps > dumps and seen and all(k == frozenset({VIP}) for k in seen), seen
        assert [type(op) for op in fake.calls[calls:]] == [DelDest]
        assert len(table(fake, VIP2)) == 1  # the other service untouched
    finally:
        await eng.stop()
