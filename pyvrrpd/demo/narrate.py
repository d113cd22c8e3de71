"""Timed narration: every line carries the seconds since the demo started (measured).

n = Narrator()
n.step("Election")
n.say("director1 holds the VIP")
n.check(ok, "VIP on director1 only", "VIP on director2")   # a failed check raises
n.timing("election", 3.42, expected="3.41 s (RFC 3768 master_down)")
n.summary()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


class DemoFailure(Exception):
    """A step did not behave as expected (the message says how)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """One measured duration shown in the summary."""

    name: str
    seconds: float
    expected: str = ""


@dataclass
class Narrator:
    """Prints ``[  12.3 s] text`` lines and keeps the checks and timings for the summary."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Callable[[], float] = time.monotonic
    start: float = -1.0
    checks_passed: int = 0
    current: str = ""
    timings: list[Timing] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.clock()

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return self.clock() - self.start

    def say(self, text: str) -> None:
        """One narration line (continuation lines are indented under it)."""
        stamp = f"[{self.elapsed():7.2f} s] "
        lines = text.splitlines() or [""]
        self.out.write(stamp + lines[0] + "\n")
        for line in lines[1:]:
            self.out.write(" " * len(stamp) + line + "\n")
        self.out.flush()

    def step(self, title: str) -> None:
        """A section heading."""
        self.current = title
        self.out.write("\n")
        self.say(f"== {title}")

    def check(self, ok: bool, success: str, failure: str) -> None:
        """Narrate a check; raise DemoFailure when it did not hold."""
        if not ok:
            self.say(f"FAILED: {failure}")
            raise DemoFailure(failure)
        self.checks_passed += 1
        self.say(f"ok: {success}")

    def timing(self, name: str, seconds: float, expected: str = "") -> None:
        """Record a measured duration for the summary."""
        self.timings.append(Timing(name, seconds, expected))

    def summary(self) -> None:
        """The table of measured timings and the number of checks passed."""
        self.step("Timings (measured)")
        width = max((len(t.name) for t in self.timings), default=10)
        rows = []
        for t in self.timings:
            exp = f"   (expected {t.expected})" if t.expected else ""
            rows.append(f"{t.name:<{width}}  {t.seconds:7.2f} s{exp}")
        self.say("\n".join(rows) if rows else "(none)")


def wait_for(
    cond: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Poll `cond` until true; the seconds it took, or None after `timeout`."""
    start = clock()
    while True:
        if cond():
            return clock() - start
        if clock() - start >= timeout:
            return None
        sleep(interval)
