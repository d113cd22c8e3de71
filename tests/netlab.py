"""A network-namespace lab for tests that need root: hosts on one Linux bridge.

    with Lab() as lab:
        r1 = lab.add_host("r1", ["10.9.0.1/24", "fd00::1/64"])
        c = lab.add_host("c", ["10.9.0.100/24"])
        lab.exec(r1, ["ip", "-4", "addr"])
        proc = lab.popen(c, ["tcpdump", ...])          # own process group, killed at teardown
        with lab.capture(c, "arp or icmp6") as cap:    # tcpdump --immediate-mode -U
            ...
        packets = cap.packets()                        # scapy, after the capture stopped
        lab.partition(r1, r2); lab.heal(r1, r2)        # bridge port isolation
        lab.link_down(r1); lab.link_up(r1)             # carrier loss on the host's eth0

Every namespace is named ``<prefix>-<name>`` with a per-run prefix (``pvl<pid>x<rand>``);
the bridge lives in ``<prefix>-br``. Teardown (``__exit__``, atexit, SIGTERM) kills every
process started through :meth:`Lab.popen` by PID (its process group), then deletes the
namespaces, which deletes their links. :func:`sweep_stale` removes leftovers of dead runs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT_PREFIX = "pvl"
NETNS_DIR = Path("/run/netns")


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Poll ``cond`` until true; return the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(step)
    return None


def have_root_netns() -> bool:
    """Whether this process can build a lab (root, ``ip`` present)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def sweep_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone; return their names."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in NETNS_DIR.iterdir():
        m = re.fullmatch(rf"{ROOT_PREFIX}(\d+)x[0-9a-f]+-.+", entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)
        removed.append(entry.name)
    return removed


@dataclass(frozen=True)
class Host:
    """A namespace with one interface (``ifname``) plugged into the bridge at ``port``."""

    name: str
    ns: str
    ifname: str
    port: str
    addrs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.ns


@dataclass
class Capture:
    """A tcpdump running in a namespace, writing a pcap file."""

    lab: Lab
    ns: str
    path: Path
    proc: subprocess.Popen[bytes] | None = None
    captured: int | None = None
    received: int | None = None
    stderr: str = ""
    _started: float = field(default=0.0)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, settle: float = 0.05) -> None:
        """Stop tcpdump (SIGINT) and read its counters; checks nothing was lost."""
        if self.proc is None or self.proc.poll() is not None:
            return
        time.sleep(settle)
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.lab.forget(self.proc.pid)
        self.stderr = err.decode(errors="replace")
        m = re.search(r"(\d+) packets? captured", self.stderr)
        self.captured = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? received by filter", self.stderr)
        self.received = int(m.group(1)) if m else None

    @property
    def complete(self) -> bool:
        """Whether every packet the filter accepted reached the file."""
        return self.captured is not None and self.captured == self.received

    def packets(self) -> list[Any]:
        """The captured packets, decoded by scapy (each with ``.time``)."""
        from scapy.all import rdpcap

        self.stop()
        return list(rdpcap(str(self.path)))


class Lab:
    """Namespaces on a bridge; a context manager that always cleans up."""

    def __init__(self, *, learning: bool = False, bridge: str = "br0") -> None:
        self.prefix = f"{ROOT_PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.bridge_ns = f"{self.prefix}-br"
        self.bridge = bridge
        self.learning = learning
        self.hosts: dict[str, Host] = {}
        self.namespaces: list[str] = []
        self.pids: set[int] = set()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.owner_pid = os.getpid()
        self._old_sigterm: Any = None
        self._closed = False
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> Lab:
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._add_ns(self.bridge_ns)
            self.ip("link", "add", self.bridge, "type", "bridge", ns=self.bridge_ns)
            self.ip("link", "set", self.bridge, "type", "bridge", "mcast_snooping", "0",
                    ns=self.bridge_ns)  # fmt: skip
            self.ip("link", "set", self.bridge, "up", ns=self.bridge_ns)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.owner_pid:
            # a forked child (pyroute2 makes some to open netns sockets): not ours to clean
            os._exit(128 + signum)
        self.close()
        raise SystemExit(128 + signum)

    def close(self) -> None:
        """Kill tracked processes by PID, delete the namespaces and temp files (idempotent)."""
        if os.getpid() != self.owner_pid:
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for pid in sorted(self.pids):
            self._kill(pid)
        self.pids.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.namespaces.clear()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.close)
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)

    @staticmethod
    def _kill(pid: int, grace: float = 2.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return
                if done:
                    return
                time.sleep(0.02)

    def _add_ns(self, ns: str) -> None:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        self.namespaces.append(ns)
        self.ip("link", "set", "lo", "up", ns=ns)
        # No duplicate address detection: link-local addresses are usable at once (a
        # tentative link-local makes VRRPv3/IPv6 sends fail with EINVAL for ~2 s).
        for scope in ("all", "default"):
            self.exec(ns, ["sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"], check=False)

    # -- building ------------------------------------------------------------------

    def ns(self, host: Host | str) -> str:
        """The namespace of a host (or of a host name)."""
        if isinstance(host, Host):
            return host.ns
        return self.hosts[host].ns if host in self.hosts else host

    def add_host(
        self,
        name: str,
        addrs: Iterable[str] = (),
        *,
        ifname: str = "eth0",
        mac: str | None = None,
    ) -> Host:
        """A namespace ``<prefix>-<name>`` whose `ifname` is a veth into the bridge.

        IPv6 addresses are added with ``nodad`` so they are usable at once.
        """
        if name in self.hosts:
            raise ValueError(f"host {name} exists")
        ns = f"{self.prefix}-{name}"
        port = f"p{len(self.hosts)}-{name}"[:15]
        self._add_ns(ns)
        self.ip("link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns,
                ns=self.bridge_ns)  # fmt: skip
        self.ip("link", "set", port, "master", self.bridge, ns=self.bridge_ns)
        if not self.learning:
            self.bridge_cmd("link", "set", "dev", port, "learning", "off")
        self.ip("link", "set", port, "up", ns=self.bridge_ns)
        if mac is not None:
            self.ip("link", "set", ifname, "address", mac, ns=ns)
        host = Host(name, ns, ifname, port, tuple(addrs))
        for addr in host.addrs:
            extra = ["nodad"] if ":" in addr else []
            self.ip("addr", "add", addr, "dev", ifname, *extra, ns=ns)
        self.ip("link", "set", ifname, "up", ns=ns)
        self.hosts[name] = host
        return host

    # -- running -------------------------------------------------------------------

    def ip(self, *args: str, ns: Host | str | None = None, check: bool = True) -> str:
        """Run ``ip [-n NS] ARGS`` and return its stdout."""
        cmd = ["ip"] + (["-n", self.ns(ns)] if ns is not None else []) + list(args)
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
        return res.stdout

    def bridge_cmd(self, *args: str) -> str:
        """Run ``bridge ARGS`` in the bridge namespace."""
        res = self.exec(self.bridge_ns, ["bridge", *args])
        return res.stdout

    def exec(
        self, ns: Host | str, cmd: Sequence[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` to completion in a namespace (``ip netns exec``)."""
        full = ["ip", "netns", "exec", self.ns(ns), *cmd]
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} -> {res.returncode}: {res.stderr.strip()}")
        return res

    def popen(self, ns: Host | str, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `cmd` in a namespace, in its own process group, tracked for teardown."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(ns), *cmd], start_new_session=True, **kwargs
        )
        self.pids.add(proc.pid)
        return proc

    def forget(self, pid: int) -> None:
        """Stop tracking a PID that has been reaped."""
        self.pids.discard(pid)

    def kill_group(self, proc: subprocess.Popen[Any]) -> None:
        """``kill -9`` of a popen'd process's whole group (no clean-up of any kind)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.forget(proc.pid)

    def stop(self, proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> int:
        """Signal a process started by popen, wait for it and return its exit status."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill(proc.pid, grace=0.5)
            rc = proc.wait()
        self.forget(proc.pid)
        return rc

    def capture(
        self,
        ns: Host | str,
        bpf: str = "",
        *,
        ifname: str = "eth0",
        name: str = "capture",
        timeout: float = 5.0,
    ) -> Capture:
        """Start ``tcpdump --immediate-mode -U`` on `ifname`; returns once it is listening."""
        path = self.tmpdir / f"{name}-{secrets.token_hex(3)}.pcap"
        cmd = ["tcpdump", "--immediate-mode", "-U", "-n", "-i", ifname, "-w", str(path)]
        cmd += bpf.split() if bpf else []
        proc = self.popen(ns, cmd)
        cap = Capture(self, self.ns(ns), path, proc, _started=time.monotonic())
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"listening on" not in buf:
            if proc.poll() is not None or time.monotonic() > deadline:
                rest = proc.stderr.read() or b""
                self.stop(proc)
                raise RuntimeError(f"tcpdump did not start: {(buf + rest).decode()!r}")
            chunk = proc.stderr.read()
            buf += chunk or b""
            time.sleep(0.01)
        os.set_blocking(proc.stderr.fileno(), True)
        return cap

    # -- faults --------------------------------------------------------------------

    def partition(self, *hosts: Host | str) -> None:
        """Isolate the hosts' bridge ports: they can no longer reach one another."""
        for h in hosts:
            self.bridge_cmd("link", "set", "dev", self._host(h).port, "isolated", "on")

    def heal(self, *hosts: Host | str) -> None:
        """Undo :meth:`partition`."""
        for h in hosts:
            self.bridge_cmd("link", "set", "dev", self._host(h).port, "isolated", "off")

    def link_down(self, host: Host | str, *, side: str = "bridge") -> None:
        """Take the link down: ``bridge`` (carrier loss seen by the host) or ``host``."""
        self._set_link(host, "down", side)

    def link_up(self, host: Host | str, *, side: str = "bridge") -> None:
        """Bring the link back up (see link_down)."""
        self._set_link(host, "up", side)

    def _set_link(self, host: Host | str, state: str, side: str) -> None:
        h = self._host(host)
        if side == "bridge":
            self.ip("link", "set", h.port, state, ns=self.bridge_ns)
        elif side == "host":
            self.ip("link", "set", h.ifname, state, ns=h.ns)
        else:
            raise ValueError(f"side must be 'bridge' or 'host', not {side!r}")

    def _host(self, host: Host | str) -> Host:
        return host if isinstance(host, Host) else self.hosts[host]

    def mac(self, host: Host | str) -> str:
        """The MAC address of a host's interface."""
        h = self._host(host)
        out = self.ip("-br", "link", "show", "dev", h.ifname, ns=h.ns)
        return out.split()[2]
