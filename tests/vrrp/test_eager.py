"""start_eagerly: synchronous completion, hand-over to a task, results and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from pyvrrpd.vrrp.eager import start_eagerly


async def test_work_that_never_suspends_is_done_on_return() -> None:
    steps: list[str] = []

    async def quick() -> None:
        steps.append("a")
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        await done  # a finished future does not suspend
        steps.append("b")

    assert start_eagerly(asyncio.get_running_loop(), quick()) is None
    assert steps == ["a", "b"]


async def test_work_that_suspends_goes_on_in_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    steps: list[object] = []

    async def slow() -> None:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)
        steps.append("after")

    task = start_eagerly(loop, slow(), name="t")
    assert task is not None and task.get_name() == "t"
    assert steps == ["before"]  # ran up to the first suspension, synchronously
    loop.call_later(0.01, gate.set_result, 7)
    await task
    assert steps == ["before", 7, "after"]


async def test_errors_reach_the_caller_or_the_task() -> None:
    loop = asyncio.get_running_loop()

    async def fails_now() -> None:
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        start_eagerly(loop, fails_now())

    async def fails_later() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("later")

    task = start_eagerly(loop, fails_later())
    assert task is not None
    with pytest.raises(ValueError, match="later"):
        await task


async def test_cancelling_the_task_cancels_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = start_eagerly(loop, waits())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
