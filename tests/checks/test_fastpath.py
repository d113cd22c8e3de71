"""The callback path of TCP_CHECK (start_connect, TcpCheck.start_check) and the registry's
deadline heap: same outcomes as the coroutine path, timeouts honoured, nothing leaked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar

import pytest

from pyvrrpd.checks.base import CheckResult, Schedule, Transition
from pyvrrpd.checks.conn import Endpoint, connect_tcp, start_connect
from pyvrrpd.checks.runner import CheckRegistry, CheckUpdate, Done
from pyvrrpd.checks.tcp import TcpCheck

from .conftest import closed_port, ep


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 whose full accept queue drops SYNs: connects hang."""
    with socket.socket() as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        port = lsn.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):  # backlog 0 admits one; the rest wait in SYN_SENT
                c = socket.socket()
                c.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    c.connect(("127.0.0.1", port))
                fillers.append(c)
            yield port
        finally:
            for c in fillers:
                c.close()


@contextlib.contextmanager
def listener() -> Iterator[int]:
    with socket.socket() as lsn:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(4096)  # never accepted: room for every check
        yield lsn.getsockname()[1]


async def wait_for(cond: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


def test_endpoint_derived_fields_do_not_change_identity() -> None:
    a = Endpoint(IPv4Address("192.0.2.1"), 80, connect_timeout=3.0)
    b = Endpoint(IPv4Address("192.0.2.1"), 80, connect_timeout=3.0)
    assert a == b and hash(a) == hash(b) and "_text" not in repr(a)
    assert a.sockaddr == ("192.0.2.1", 80) and a.describe() == "192.0.2.1:80"
    v6 = Endpoint(IPv6Address("2001:db8::1"), 443)
    assert v6.sockaddr == ("2001:db8::1", 443) and v6.describe() == "[2001:db8::1]:443"
    assert v6.family == socket.AF_INET6


async def test_loopback_connect_completes_inside_the_call() -> None:
    """On loopback the handshake runs inside connect(): no loop round trip is needed
    (unless the kernel deferred its softirq work, hence several tries)."""
    loop = asyncio.get_running_loop()
    got: list[tuple[socket.socket | None, Exception | None]] = []
    inline = 0
    with listener() as port:
        for _ in range(20):
            handle = start_connect(ep(port), loop, lambda s, e: got.append((s, e)))
            inline += handle is None
        await wait_for(lambda: len(got) == 20)
        for sock, exc in got:  # (before the listener closes and resets them)
            assert exc is None and sock is not None
            assert sock.getpeername() == ("127.0.0.1", port)
            sock.close()
    assert inline > 0


async def test_refused_is_an_oserror_naming_the_target() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError, match=f"127.0.0.1:{port}"):
        await connect_tcp(ep(port))


async def test_setup_errors_reach_the_callback_not_the_caller() -> None:
    loop = asyncio.get_running_loop()
    got: list[Exception | None] = []
    handle = start_connect(ep(80, bind_if="no-such-if0"), loop, lambda s, e: got.append(e))
    assert handle is None and isinstance(got[0], OSError)
    v6_from_v4 = ep(80, bindto=IPv6Address("::1"))
    start_connect(v6_from_v4, loop, lambda s, e: got.append(e))
    assert "not of the family" in str(got[1])


async def test_blackholed_connect_times_out_after_connect_timeout() -> None:
    loop = asyncio.get_running_loop()
    got: list[tuple[float, Exception | None]] = []
    before = open_fds()
    with blackhole() as port:
        t0 = loop.time()
        handle = start_connect(
            ep(port, timeout=0.3), loop, lambda s, e: got.append((loop.time(), e))
        )
        assert handle is not None and not got
        await wait_for(lambda: got)
    assert 0.29 <= got[0][0] - t0 < 1.0
    assert "timed out" in str(got[0][1])
    assert open_fds() == before


async def test_cancelling_a_pending_connect_closes_it_without_a_callback() -> None:
    loop = asyncio.get_running_loop()
    got: list[object] = []
    before = open_fds()
    with blackhole() as port:
        handle = start_connect(ep(port, timeout=0.2), loop, lambda s, e: got.append(e))
        assert handle is not None
        handle.cancel()
        handle.cancel()  # idempotent
        await asyncio.sleep(0.3)  # past the timeout: the timer was cancelled too
    assert got == [] and open_fds() == before


async def test_cancelled_connect_tcp_leaks_nothing() -> None:
    before = open_fds()
    with blackhole() as port:
        task = asyncio.create_task(connect_tcp(ep(port, timeout=5.0)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert open_fds() == before


async def test_start_check_and_check_agree() -> None:
    loop = asyncio.get_running_loop()
    with listener() as port:
        check = TcpCheck(ep(port))
        got: list[CheckResult | Exception] = []
        check.start_check(loop, got.append)
        await wait_for(lambda: got)
        assert got == [await check.check()]
        assert isinstance(got[0], CheckResult) and got[0].ok
        assert got[0].cause == f"connected to 127.0.0.1:{port}"


FAST = Schedule(delay_loop=0.05, retry=1, delay_before_retry=0.02)


async def test_registry_fast_path_refused_goes_down_after_retries() -> None:
    seen: list[CheckUpdate] = []
    async with CheckRegistry(draw=lambda: 0.0) as reg:
        sub = reg.subscribe(TcpCheck(ep(closed_port())), FAST, seen.append)
        await wait_for(lambda: len(seen) >= 3)
        assert not sub.state.up
    assert [u.transition for u in seen[:3]] == [None, Transition.DOWN, None]
    assert all("ConnectionRefused" in u.result.cause for u in seen)
    assert all(u.result.latency >= 0 for u in seen)


async def test_registry_blackhole_fails_in_connect_timeout_and_unsubscribe_cancels() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, CheckUpdate]] = []
    before = open_fds()
    with blackhole() as port:
        async with CheckRegistry(draw=lambda: 0.0) as reg:
            check = TcpCheck(ep(port, timeout=0.25))
            t0 = loop.time()
            sub = reg.subscribe(
                check, Schedule(delay_loop=10, retry=0), lambda u: seen.append((loop.time(), u))
            )
            await wait_for(lambda: seen)
            assert 0.24 <= seen[0][0] - t0 < 1.0
            assert "timed out" in seen[0][1].result.cause
            assert 0.24 <= seen[0][1].result.latency < 1.0
            sub.close()
            # A run in flight is abandoned (its socket closed) when its last subscriber leaves.
            idle = open_fds()
            late: list[CheckUpdate] = []
            slow = TcpCheck(ep(port, timeout=5.0))
            other = reg.subscribe(slow, Schedule(delay_loop=10, retry=5), late.append)
            await asyncio.sleep(0.05)
            assert open_fds() == idle + 1  # the connect in flight
            other.close()
            assert reg.running() == 0 and open_fds() == idle
    assert len(seen) == 1 and late == [] and open_fds() == before


async def test_registry_exit_abandons_runs_in_flight() -> None:
    before = open_fds()
    seen: list[CheckUpdate] = []
    with blackhole() as port:
        async with CheckRegistry(draw=lambda: 0.0) as reg:
            idle = open_fds()
            for i in range(5):
                reg.subscribe(TcpCheck(ep(port, timeout=5.0 + i / 100)), FAST, seen.append)
            await asyncio.sleep(0.05)
            assert open_fds() == idle + 5
        assert open_fds() == idle  # closed on exit, not at the 5 s timeout
    assert seen == [] and open_fds() == before


@dataclass(frozen=True)
class BrokenStart:
    """A callback-form checker whose start raises: a failure, siblings unharmed."""

    kind: ClassVar[str] = "BROKEN"

    async def check(self) -> CheckResult:
        raise AssertionError("the registry must use start_check")

    def start_check(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        raise RuntimeError("start failed")


async def test_a_raising_start_check_is_a_failure_and_siblings_run() -> None:
    broken: list[CheckUpdate] = []
    fine: list[CheckUpdate] = []
    with listener() as port:
        async with CheckRegistry(draw=lambda: 0.0) as reg:
            reg.subscribe(BrokenStart(), FAST, broken.append)
            reg.subscribe(TcpCheck(ep(port)), FAST, fine.append)
            await wait_for(lambda: len(broken) >= 3 and len(fine) >= 3)
    assert all(u.result.cause == "RuntimeError: start failed" for u in broken)
    assert all(u.result.ok for u in fine)


async def test_joining_a_running_check_keeps_its_state() -> None:
    seen: list[CheckUpdate] = []
    async with CheckRegistry(draw=lambda: 0.0) as reg:
        check = TcpCheck(ep(closed_port()))
        first = reg.subscribe(check, FAST, seen.append)
        await wait_for(lambda: not first.state.up)
        runs = reg.runs(check, FAST)
        later = reg.subscribe(check, FAST, lambda u: None)
        assert later.state is first.state and reg.running() == 1
        first.close()
        assert reg.runs(check, FAST) == runs  # still the same check, not restarted
        await wait_for(lambda: reg.runs(check, FAST) > runs)
        assert not later.state.up and later.state.has_run


def stamp(times: list[float]) -> Callable[[CheckUpdate], None]:
    loop = asyncio.get_running_loop()
    return lambda u: times.append(loop.time()) if u.result.ok else None


async def test_checks_due_together_never_start_early() -> None:
    """Many checks on one schedule: each run comes delay_loop or later after the previous."""
    times: dict[int, list[float]] = {}
    sched = Schedule(delay_loop=0.1, retry=0, warmup=0.1)
    with listener() as port:
        async with CheckRegistry() as reg:
            for i in range(20):
                check = TcpCheck(ep(port, timeout=1.0 + i / 1000))
                reg.subscribe(check, sched, stamp(times.setdefault(i, [])))
            await wait_for(lambda: all(len(t) >= 4 for t in times.values()))
    for t in times.values():
        assert all(b - a >= 0.099 for a, b in itertools.pairwise(t))


@dataclass(frozen=True)
class Busy:
    """Completes inside its start after 0.5 ms of CPU, and wrongly reports twice."""

    kind: ClassVar[str] = "BUSY"
    i: int

    async def check(self) -> CheckResult:
        raise AssertionError("the registry must use start_check")

    def start_check(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        end = time.perf_counter() + 0.0005
        while time.perf_counter() < end:
            pass
        done(CheckResult(True, "first"))
        done(CheckResult(False, "second"))


async def test_a_long_batch_yields_to_other_callbacks_and_double_reports_count_once() -> None:
    seen: list[CheckUpdate] = []
    progress: list[int] = []
    stop = False

    async def other_work() -> None:
        while not stop:
            progress.append(len(seen))
            await asyncio.sleep(0)

    sched = Schedule(delay_loop=3600, warmup=0.05)
    async with CheckRegistry(draw=lambda: 1.0) as reg:
        checks = [Busy(i) for i in range(100)]  # 50 ms of work, all due together
        for c in checks:
            reg.subscribe(c, sched, seen.append)
        task = asyncio.create_task(other_work())
        await wait_for(lambda: len(seen) == 100)
        await asyncio.sleep(0.02)
        stop = True
        await task
        assert all(reg.runs(c, sched) == 1 for c in checks)
    assert len(seen) == 100 and all(u.result.cause == "first" for u in seen)
    assert any(0 < n < 100 for n in progress)  # other work ran in the middle of the batch
