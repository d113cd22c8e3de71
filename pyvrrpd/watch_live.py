"""The capture shell of ``pyvrrpctl watch``: scapy sniffs, :mod:`pyvrrpd.watch` decodes.

scapy is the capture layer only (``AsyncSniffer`` with a BPF filter on one interface);
the frames are decoded by pyvrrpd's own codec.  scapy is imported lazily so the rest of
pyvrrpctl works without it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, TextIO

from pyvrrpd.vrrp.packet import IPPROTO_VRRP
from pyvrrpd.vrrp.packet_ip import IPPROTO_AH
from pyvrrpd.vrrp.pcap import LINKTYPE_ETHERNET, ip_datagram
from pyvrrpd.watch import SpeakerTable

BPF = "ip proto 112 or ip proto 51 or ip6 proto 112"  # VRRP, VRRP behind AH, VRRPv3/IPv6
DEFAULT_DURATION = 3.0  # seconds, for --once / --json without --count or --duration
REFRESH = 1.0  # seconds between live redraws
CLEAR = "\x1b[H\x1b[2J"
EXIT_OK, EXIT_FAIL, EXIT_NO_SCAPY = 0, 1, 2


class WatchError(Exception):
    """Capture could not start (no scapy, no such interface, no permission)."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class WatchOptions:
    """What ``pyvrrpctl watch`` was asked for."""

    iface: str
    count: int | None = None
    duration: float | None = None
    once: bool = False
    as_json: bool = False
    show_auth: bool = False
    vrids: frozenset[int] | None = None
    mcast_group4: IPv4Address | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``pyvrrpctl watch`` (on its sub-parser)."""
    p.add_argument("iface", metavar="IFACE", help="the interface to listen on")
    p.add_argument("--count", type=int, metavar="N", help="stop after N VRRP packets")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--once", action="store_true", help="no live table: print it once at the end")
    p.add_argument("--json", action="store_true", help="print the table once, as JSON")
    p.add_argument("--show-auth", action="store_true", help="print VRRPv2 passwords")
    p.add_argument(
        "--vrid",
        type=int,
        action="append",
        metavar="N",
        help="a VRID expected here (repeatable); others are flagged foreign",
    )
    p.add_argument(
        "-f", "--config", metavar="FILE", help="expect the VRIDs this configuration uses on IFACE"
    )
    p.add_argument(
        "--mcast-group4",
        type=IPv4Address,
        metavar="ADDR",
        help="group of the old unicast checksum (default 224.0.0.18)",
    )


def options_from_args(args: argparse.Namespace) -> WatchOptions:
    """Build :class:`WatchOptions` from parsed arguments (reads ``--config``)."""
    vrids: set[int] | None = set(args.vrid) if args.vrid else None
    if args.config:
        vrids = (vrids or set()) | config_vrids(args.config, args.iface, args.config_id)
    return WatchOptions(
        iface=args.iface,
        count=args.count,
        duration=args.duration,
        once=args.once,
        as_json=args.json,
        show_auth=args.show_auth,
        vrids=None if vrids is None else frozenset(vrids),
        mcast_group4=args.mcast_group4,
    )


def config_vrids(path: str, iface: str, config_id: str | None = None) -> set[int]:
    """VRIDs of the configuration's instances on ``iface`` (all of them if none is)."""
    from pyvrrpd.cli.configtest import check

    _, result = check(path, config_id)  # prints its diagnostics on stderr
    if result is None:
        raise WatchError(f"cannot read the configuration {path}")
    instances = result.config.vrrp_instances
    here = [i for i in instances if i.interface == iface] or list(instances)
    return {i.virtual_router_id for i in here if i.virtual_router_id is not None}


def frame_datagram(pkt: Any, l2types: Callable[[type], int | None]) -> bytes | None:
    """The IP datagram inside a sniffed scapy packet, from the bytes as captured."""
    raw = getattr(pkt, "original", None)
    if not isinstance(raw, bytes):
        raw = bytes(pkt)
    found = ip_datagram(l2types(type(pkt)) or LINKTYPE_ETHERNET, raw)
    return None if found is None else found[1]


def _scapy() -> tuple[Any, Any, Callable[[type], int | None]]:
    try:
        from scapy.arch.common import compile_filter
        from scapy.config import conf
        from scapy.layers import inet, inet6, l2  # noqa: F401 (frames dissect as Ether/IP)
        from scapy.sendrecv import AsyncSniffer
    except ImportError as exc:
        raise WatchError(
            f"pyvrrpctl watch needs scapy ({exc}): pip install scapy", EXIT_NO_SCAPY
        ) from exc
    layer2num = conf.l2types.layer2num

    def linktype(cls: type) -> int | None:
        value = layer2num.get(cls)
        return value if isinstance(value, int) else None

    sniffer: Any = AsyncSniffer
    compiler: Any = compile_filter
    return sniffer, compiler, linktype


class Capture:
    """An ``AsyncSniffer`` feeding ``(ip_datagram, time)`` into a queue."""

    def __init__(self, iface: str) -> None:
        sniffer_cls, compile_filter, self._l2 = _scapy()
        self.queue: queue.SimpleQueue[tuple[bytes, float]] = queue.SimpleQueue()
        self._started = threading.Event()
        kwargs: dict[str, Any] = {"filter": BPF}
        try:
            compile_filter(BPF, iface)
        except Exception:  # no libpcap/tcpdump to compile BPF: _on_packet filters alone
            kwargs = {}
        self._sniffer = sniffer_cls(iface=iface, prn=self._on_packet, store=False,
                                    started_callback=self._started.set, **kwargs)  # fmt: skip
        self.iface = iface

    def _on_packet(self, pkt: Any) -> None:
        data = frame_datagram(pkt, self._l2)
        if data is not None and is_vrrp(data):
            self.queue.put((data, float(pkt.time)))

    def start(self, timeout: float = 5.0) -> None:
        """Start sniffing; raise :class:`WatchError` if the sniffer cannot."""
        self._sniffer.start()
        deadline = time.monotonic() + timeout
        while not self._started.wait(0.05):
            thread = self._sniffer.thread
            if thread is None or not thread.is_alive() or time.monotonic() > deadline:
                exc = self._sniffer.exception
                reason = f"{type(exc).__name__}: {exc}" if exc else "sniffer did not start"
                if isinstance(exc, PermissionError):
                    reason += " (capturing needs root or CAP_NET_RAW)"
                self.stop()
                raise WatchError(f"cannot capture on {self.iface}: {reason}")

    def stop(self) -> None:
        """Stop the sniffer thread (idempotent)."""
        if self._sniffer.running:
            with contextlib.suppress(Exception):  # already stopping on its own
                self._sniffer.stop(join=True)


def is_vrrp(datagram: bytes) -> bool:
    """Whether an IP datagram is VRRP or AH (what the BPF filter lets through)."""
    if len(datagram) >= 20 and datagram[0] >> 4 == 4:
        return datagram[9] in (IPPROTO_VRRP, IPPROTO_AH)
    return len(datagram) >= 40 and datagram[0] >> 4 == 6 and datagram[6] == IPPROTO_VRRP


def watch(opts: WatchOptions, out: TextIO = sys.stdout) -> int:
    """Run a watch: live table on a terminal, else one table (or JSON) at the end."""
    live = not (opts.once or opts.as_json) and out.isatty()
    duration = opts.duration
    if duration is None and opts.count is None and not live:
        duration = DEFAULT_DURATION
    table = SpeakerTable(vrids=opts.vrids, mcast_group4=opts.mcast_group4)
    cap = Capture(opts.iface)
    cap.start()
    start = time.time()
    next_draw = start
    try:
        while True:
            now = time.time()
            if opts.count is not None and table.packets >= opts.count:
                break
            if duration is not None and now - start >= duration:
                break
            if live and now >= next_draw:
                out.write(CLEAR + _title(opts, table, now - start) + "\n")
                out.write(table.render(now, show_auth=opts.show_auth) + "\n")
                out.flush()
                next_draw = now + REFRESH
            wait = REFRESH if not live else max(0.0, next_draw - now)
            if duration is not None:
                wait = min(wait, max(0.0, start + duration - now))
            try:
                data, stamp = cap.queue.get(timeout=max(wait, 0.001))
            except queue.Empty:
                continue
            table.observe(data, stamp)
    except KeyboardInterrupt:
        pass
    finally:
        cap.stop()
    while not cap.queue.empty() and (opts.count is None or table.packets < opts.count):
        data, stamp = cap.queue.get_nowait()
        table.observe(data, stamp)
    now = time.time()
    if opts.as_json:
        doc = {"interface": opts.iface, "duration": round(now - start, 3)}
        doc.update(table.to_json(now, show_auth=opts.show_auth))
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        title = _title(opts, table, now - start)
        out.write(table.render(now, show_auth=opts.show_auth, title=title) + "\n")
    return EXIT_OK


def _title(opts: WatchOptions, table: SpeakerTable, elapsed: float) -> str:
    return (
        f"pyvrrpctl watch {opts.iface}: {len(table.speakers)} speakers, "
        f"{table.packets} adverts in {elapsed:.0f}s"
    )


def main(args: argparse.Namespace) -> int:
    """``pyvrrpctl watch`` from its parsed arguments; prints errors, returns the exit code."""
    try:
        return watch(options_from_args(args))
    except WatchError as exc:
        print(f"pyvrrpctl watch: {exc}", file=sys.stderr)
        return exc.code
