"""Observers for the ops-under-load test; standard library only, run by path.

``python -S -u tests/ipvs/opsprogs.py load RATE TIMEOUT | ipvswatch PERIOD``

- ``load``: HTTP requests (tests/ipvs/lvsprogs.py's ``http_get``) to a changing set of
  targets, each on its own thread at RATE per second, one connection per request.
  Stdin: ``targets NAME=HOST:PORT ...`` replaces the set (answers ``ok``); ``stop`` (or
  EOF) ends and prints one JSON line: ``{"results": [[name, start, duration, answer]]}``,
  ``start`` on the system's monotonic clock (the same in every process of the machine).
- ``ipvswatch``: reads /proc/net/ip_vs every PERIOD s; prints ``ready``, then a JSON line
  ``[time, table]`` whenever the table differs from the last one printed (the first
  always); on ``stop`` a last line ``{"samples": N, "max_gap": S}``. ``table`` maps
  ``PROTO ADDR:PORT SCHED`` to {``ADDR:PORT``: [forward, weight]}.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def http_get(host: str, port: int, timeout: float) -> str:
    """lvsprogs.http_get (imported by path: this file runs without the package)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from lvsprogs import http_get as get  # type: ignore[import-not-found]

    return str(get(host, port, timeout))


class _Target:
    def __init__(self, name: str, host: str, port: int, rate: float, timeout: float) -> None:
        self.name, self.host, self.port = name, host, port
        self.period, self.timeout = 1.0 / rate, timeout
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        nxt = time.monotonic()
        while not self.stopped.is_set():
            t0 = time.monotonic()
            answer = http_get(self.host, self.port, self.timeout)
            with _LOCK:
                _RESULTS.append([self.name, round(t0, 4), round(time.monotonic() - t0, 4), answer])
            nxt = max(nxt + self.period, time.monotonic())
            self.stopped.wait(max(0.0, nxt - time.monotonic()))


_LOCK = threading.Lock()
_RESULTS: list[list[Any]] = []


def load(rate: float, timeout: float) -> None:
    """See the module docstring."""
    running: dict[str, _Target] = {}
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "stop":
            if words:
                break
            continue
        wanted = {}
        for word in words[1:]:
            name, _, where = word.partition("=")
            host, _, port = where.rpartition(":")
            wanted[word] = (name, host.strip("[]"), int(port))
        for spec in [s for s in running if s not in wanted]:
            running.pop(spec).stopped.set()
        for spec, (name, host, port) in wanted.items():
            if spec not in running:
                running[spec] = _Target(name, host, port, rate, timeout)
                running[spec].thread.start()
        print("ok", flush=True)
    for t in running.values():
        t.stopped.set()
    for t in running.values():
        t.thread.join(timeout + 1)
    with _LOCK:
        print(json.dumps({"results": sorted(_RESULTS, key=lambda r: r[1])}), flush=True)


def _addr(hexaddr: str) -> str:
    """``0A500064:0050`` -> ``10.80.0.100:80`` (IPv6 left as the kernel writes it)."""
    host, _, port = hexaddr.rpartition(":")
    if len(host) == 8:
        host = socket.inet_ntoa(bytes.fromhex(host))
    return f"{host}:{int(port, 16)}"


def parse_proc(text: str) -> dict[str, dict[str, list[Any]]]:
    """/proc/net/ip_vs -> {``PROTO ADDR:PORT SCHED``: {dest: [forward, weight]}}."""
    table: dict[str, dict[str, list[Any]]] = {}
    current: dict[str, list[Any]] | None = None
    for line in text.splitlines()[3:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "->":
            if current is not None and len(words) >= 4:
                current[_addr(words[1])] = [words[2], int(words[3])]
        elif words[0] == "FWM":
            current = table.setdefault(f"FWM {int(words[1], 16)} {words[2]}", {})
        else:
            current = table.setdefault(f"{words[0]} {_addr(words[1])} {words[2]}", {})
    return table


def ipvswatch(period: float) -> None:
    """See the module docstring."""
    last: dict[str, Any] | None = None
    samples, max_gap, prev = 0, 0.0, time.monotonic()
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], period)[0]:
        with open("/proc/net/ip_vs") as fh:
            table = parse_proc(fh.read())
        now = time.monotonic()
        samples += 1
        max_gap, prev = max(max_gap, now - prev), now
        if table != last:
            print(json.dumps([round(now, 4), table]), flush=True)
            last = table
    print(json.dumps({"samples": samples, "max_gap": round(max_gap, 3)}), flush=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[0] == "load":
        load(float(argv[1]), float(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "ipvswatch":
        ipvswatch(float(argv[1]))
        return 0
    print("usage: opsprogs load RATE TIMEOUT | opsprogs ipvswatch PERIOD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
