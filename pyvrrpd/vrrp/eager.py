"""Run a coroutine at once, up to its first suspension; a task carries on from there.

Python 3.12 has eager tasks; Debian 12 has 3.11. A VRRP takeover adds the addresses and
sends the gratuitous ARP from the timer callback that sent the advert: through a task that
would cost a trip round the event loop between the two packets. Most of that work never
suspends (the netlink acknowledgement is queued inside ``sendmsg``), so it completes here;
when it does suspend, :func:`start_eagerly` hands the started coroutine to a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


class _Continue:
    """Awaitable carrying on a coroutine that has already yielded ``first``."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


async def _carry_on(coro: Coroutine[Any, Any, None], first: Any) -> None:
    await _Continue(coro, first)


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], name: str | None = None
) -> asyncio.Task[None] | None:
    """Run ``coro`` now; None if it finished without suspending, else the task finishing it.

    An exception raised before the first suspension propagates to the caller.
    """
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_carry_on(coro, first), name=name)
