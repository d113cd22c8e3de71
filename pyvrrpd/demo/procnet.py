"""Readers of the kernel's /proc/net tables the demo observes (pure: text in, values out).

``/proc/net/ip_vs`` (the IPVS table, what ``ipvsadm -Ln`` shows), ``/proc/net/ip_vs_conn``
(IPVS connection entries: which director forwarded a client's connection) and
``/proc/net/arp`` (which MAC the client uses for the VIP).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


def _hex_addr(text: str) -> str:
    """``C0000264`` -> ``192.0.2.100``; ``[fe80::1]`` -> ``fe80::1``."""
    if text.startswith("["):
        return str(ipaddress.ip_address(text.strip("[]")))
    return str(ipaddress.IPv4Address(int(text, 16)))


def _hex_endpoint(text: str) -> tuple[str, int]:
    addr, _, port = text.rpartition(":")
    return _hex_addr(addr), int(port, 16)


@dataclass(frozen=True, slots=True)
class IpvsDest:
    """A real server of a virtual service."""

    addr: str
    port: int
    forward: str
    weight: int


@dataclass(frozen=True, slots=True)
class IpvsService:
    """A virtual service (``fwmark`` services have addr "" and port = the mark)."""

    protocol: str
    addr: str
    port: int
    scheduler: str
    dests: tuple[IpvsDest, ...]

    def dest_addrs(self) -> list[str]:
        """Addresses of the real servers, in the kernel's order."""
        return [d.addr for d in self.dests]


def parse_ip_vs(text: str) -> dict[tuple[str, str, int], IpvsService]:
    """``/proc/net/ip_vs`` keyed by (protocol, address, port)."""
    services: dict[tuple[str, str, int], IpvsService] = {}
    current: tuple[str, str, int, str] | None = None
    dests: list[IpvsDest] = []

    def flush() -> None:
        if current is not None:
            proto, addr, port, sched = current
            services[(proto, addr, port)] = IpvsService(proto, addr, port, sched, tuple(dests))

    for line in text.splitlines():
        words = line.split()
        if not words or words[0] in ("IP", "Prot"):
            continue
        if words[0] == "->":
            if words[1] == "RemoteAddress:Port" or current is None:
                continue
            addr, port = _hex_endpoint(words[1])
            dests.append(IpvsDest(addr, port, words[2], int(words[3])))
            continue
        flush()
        dests = []
        if words[0] == "FWM":
            current = ("FWM", "", int(words[1], 16), words[2])
        else:
            addr, port = _hex_endpoint(words[1])
            current = (words[0], addr, port, words[2] if len(words) > 2 else "")
    flush()
    return services


@dataclass(frozen=True, slots=True)
class IpvsConn:
    """One IPVS connection entry: client -> virtual service -> real server."""

    protocol: str
    client: str
    client_port: int
    vaddr: str
    vport: int
    dest: str
    dest_port: int
    state: str


def parse_ip_vs_conn(text: str) -> list[IpvsConn]:
    """``/proc/net/ip_vs_conn`` (IPv4 lines; others are skipped)."""
    conns: list[IpvsConn] = []
    for line in text.splitlines():
        w = line.split()
        if len(w) < 8 or w[0] == "Pro":
            continue
        try:
            conns.append(
                IpvsConn(
                    w[0],
                    _hex_addr(w[1]),
                    int(w[2], 16),
                    _hex_addr(w[3]),
                    int(w[4], 16),
                    _hex_addr(w[5]),
                    int(w[6], 16),
                    w[7],
                )
            )
        except ValueError:
            continue
    return conns


def parse_arp(text: str) -> dict[str, str]:
    """``/proc/net/arp``: complete entries only, address -> MAC."""
    table: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        w = line.split()
        if len(w) >= 6 and int(w[2], 16) & 0x2:  # ATF_COM: resolved
            table[w[0]] = w[3].lower()
    return table
