"""Network namespaces on one bridge, built with iproute2, torn down by recorded names/PIDs.

Every namespace is named ``<prefix>-<node>`` with a per-run prefix ``pvd<pid>x<hex>``; the
bridge lives in ``<prefix>-switch``. Processes are started in their own process group and
recorded; :meth:`Topology.close` (also run at exit, on SIGTERM and on Ctrl-C through the
``with`` block) signals those groups, deletes the veth links and the namespaces. Nothing is
created in, or sent on, the namespace this runs in.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from .layout import SUBNET_PREFIX, Node

PREFIX = "pvd"
NETNS_DIR = Path("/run/netns")


class TopologyError(RuntimeError):
    """An iproute2 command failed while building the lab."""


def sweep_stale() -> list[str]:
    """Delete demo namespaces left by runs whose process is gone; return their names."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in sorted(NETNS_DIR.iterdir()):
        m = re.fullmatch(rf"{PREFIX}(\d+)x[0-9a-f]+-.+", entry.name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, check=False)
        removed.append(entry.name)
    return removed


class Topology:
    """A bridge namespace and one namespace per node, each node's ``eth0`` on the bridge."""

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.switch_ns = f"{self.prefix}-switch"
        self.namespaces: list[str] = []
        self.ports: list[str] = []
        self.procs: dict[int, subprocess.Popen[Any]] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.keep_workdir = False
        self.owner = os.getpid()
        self._closed = False
        self._lock = threading.Lock()
        self._old_handlers: dict[int, Any] = {}

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> Topology:
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.owner:
            os._exit(128 + signum)
        raise SystemExit(128 + signum)  # unwinds through `with`, which closes

    def close(self) -> None:
        """Stop recorded processes (by process group), delete links and namespaces."""
        if os.getpid() != self.owner:
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_all()
        # veths first (freed at once; a namespace's deletion is asynchronous)
        if self.ports:
            self.batch([f"link del {p}" for p in self.ports], ns=self.switch_ns, check=False)
        if self.namespaces:
            self.batch([f"netns del {ns}" for ns in reversed(self.namespaces)], check=False)
        self.ports.clear()
        self.namespaces.clear()
        if not self.keep_workdir:
            for path in sorted(self.workdir.glob("**/*"), reverse=True):
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
            with contextlib.suppress(OSError):
                self.workdir.rmdir()
        atexit.unregister(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)

    # -- building ---------------------------------------------------------------

    def ns(self, node: Node | str) -> str:
        """The namespace name of a node (or of a node name)."""
        name = node.name if isinstance(node, Node) else node
        return f"{self.prefix}-{name}"

    def ip(self, *args: str, ns: str | None = None, check: bool = True) -> str:
        """Run ``ip [-n NS] ARGS``; its stdout."""
        cmd = ["ip", *(["-n", ns] if ns else []), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and res.returncode != 0:
            raise TopologyError(f"{' '.join(cmd)}: {res.stderr.strip()}")
        return res.stdout

    def batch(self, lines: Sequence[str], ns: str | None = None, check: bool = True) -> None:
        """Run iproute2 commands in one ``ip [-n NS] -batch -`` (one process, not one each).

        With `check` false, errors are ignored and every line is tried (``-force``).
        """
        cmd = ["ip", *(["-n", ns] if ns else []), *([] if check else ["-force"]), "-batch", "-"]
        res = subprocess.run(
            cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
        )
        if check and res.returncode != 0:
            raise TopologyError(f"{' '.join(cmd)}: {res.stderr.strip()}")

    def build(self, nodes: Sequence[Node], extra: dict[str, list[str]] | None = None) -> None:
        """The bridge ``br0`` in its own namespace and, per node, a namespace whose ``eth0``
        (the node's MAC and addresses) is a veth into br0; `extra` adds ``ip`` commands to
        run in a node's namespace (by node name).
        """
        names = [self.switch_ns, *(self.ns(n) for n in nodes)]
        self.namespaces += names  # recorded first: cleanup covers a half-built lab
        self.batch([f"netns add {ns}" for ns in names])
        switch = [
            "link set lo up",
            "link add br0 type bridge",
            "link set br0 type bridge mcast_snooping 0",
            "link set br0 up",
        ]
        for node in nodes:
            port = f"p-{node.name}"[:15]
            self.ports.append(port)
            switch.append(
                f"link add {port} type veth peer name eth0 address {node.mac} netns {self.ns(node)}"
            )
            switch.append(f"link set {port} master br0 up")
        self.batch(switch, ns=self.switch_ns)
        for node in nodes:
            lines = ["link set lo up"]
            lines += [f"addr add {a}/{SUBNET_PREFIX} dev eth0" for a in node.addrs]
            lines += (extra or {}).get(node.name, [])
            lines.append("link set eth0 up")
            self.batch(lines, ns=self.ns(node))

    # -- processes --------------------------------------------------------------

    def spawn(
        self,
        node: Node | str,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[Any]:
        """Start `argv` in the node's namespace, in its own process group, output to `log`."""
        fh: IO[bytes] = open(log, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(node), *argv],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        finally:
            fh.close()
        self.procs[proc.pid] = proc
        return proc

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a recorded process (only that PID) and reap it if it died."""
        proc = self.procs.get(pid)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()
            self.procs.pop(pid, None)

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every recorded process group, SIGKILL what is left after `grace` s."""
        procs = list(self.procs.values())
        self.procs.clear()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            alive = [p for p in procs if p.poll() is None]
            for proc in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            while any(p.poll() is None for p in alive) and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self, pid: int, grace: float = 5.0) -> None:
        """SIGTERM the recorded process group, SIGKILL after `grace` seconds; reap it."""
        proc = self.procs.pop(pid, None)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        if proc.poll() is None:
            proc.wait(timeout=5)
