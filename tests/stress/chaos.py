"""Seeded fault injection over VRRP nodes in a namespace lab, checked against a model.

    with Lab() as lab:
        run = Chaos(lab, ["pyvrrpd", "pyvrrpd", "keepalived"], seed=42)
        run.start()
        records = run.run(20)          # raises ChaosFailure (with the seed) on a violation

Every node runs one instance (VRID 51, VRRPv3, multicast, ``advert_int`` 0.1 s by
default, preempt on) with a ``vrrp_script`` that fails while a flag file exists (weight
-50, interval 1 s). Faults, chosen by a ``random.Random(seed)``:

- ``kill9``: ``kill -9`` of the node's process group, then a restart;
- ``stop``: SIGSTOP of its process group, then SIGCONT;
- ``link``: its bridge port down (carrier loss on its eth0), or back up;
- ``isolate``: its bridge port isolated (isolated ports cannot reach one another:
  isolating two nodes of three cuts only the link between them), or not;
- ``track``: the flag file created (the script fails: priority -50) or removed;
- ``reprio``: a new base priority written to its config, then SIGHUP.

kill9 and stop are transient: the check runs once while the node is down (ignoring what
it holds: a killed or frozen node keeps its VIP, as keepalived does) and once after it is
back. The others persist until chosen again.

The model (what pyvrrpd and keepalived both do with preempt on): a node is *live* when
its process runs and its link is up (carrier loss puts the instance in FAULT, which
releases the VIP). Two live nodes hear each other unless both ports are isolated.
Priorities never tie (each node's priorities have their own residue mod 10), so the
stable state is unique: going down the nodes by effective priority, a node is master
iff none of its neighbours above it is master (a backup with preempt ignores adverts of
lower priority, so its down timer makes it master; a master hearing a higher priority
steps down). Connected nodes thus have exactly one VIP holder; a partition has one per
side. A higher-priority backup takes over only when its down timer expires (keepalived
and pyvrrpd alike), so every check allows one master-down interval plus a margin (plus
the script interval for ``track``, the start-up for a restart). After convergence the
holders must stay put for a few advert intervals.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyvrrpd.control import request
from tests.integration.vrrplab import Daemon, global_conf, instance_conf, start_daemon
from tests.netlab import Host, Lab

VIP = "10.77.0.100"
BASES = (100, 130, 160, 190, 220)  # plus 3 x node index: no two nodes ever tie
WEIGHT = -50
SCRIPT_INTERVAL = 1.0
FAULTS = ("kill9", "stop", "link", "isolate", "track", "reprio")


class ChaosFailure(AssertionError):
    """The holders of the VIP did not match the model in time."""


@dataclass
class Node:
    """One router and everything the model knows about it."""

    name: str
    kind: str  # "pyvrrpd" or "keepalived"
    index: int
    host: Host
    base: int
    flag: Path
    daemon: Daemon | None = None
    running: bool = False  # process alive and not stopped
    link_up: bool = True
    isolated: bool = False
    failing: bool = False  # the track script fails
    restarts: int = 0

    @property
    def ip(self) -> str:
        return f"10.77.0.{self.index + 1}"

    @property
    def priority(self) -> int:
        """Effective priority (the script's weight applied)."""
        return self.base + (WEIGHT if self.failing else 0)

    @property
    def live(self) -> bool:
        return self.running and self.link_up


@dataclass
class FaultRecord:
    """One injected fault and how long the nodes took to match the model."""

    index: int
    fault: str
    node: str
    detail: str
    expected: tuple[str, ...]  # the model's holders after the fault
    before: tuple[str, ...] = ()  # ... and before it
    during: tuple[str, ...] = ()  # ... while a killed or stopped node was down
    took: list[float] = field(default_factory=list)  # one per check


def expected_holders(nodes: list[Node], exclude: str | None = None) -> set[str]:
    """The model's VIP holders among live nodes (``exclude``: a node taken as dead)."""
    live = [n for n in nodes if n.live and n.name != exclude]
    live.sort(key=lambda n: (n.priority, n.ip), reverse=True)
    masters: list[Node] = []
    for n in live:
        if not any(not (m.isolated and n.isolated) for m in masters):
            masters.append(n)
    return {m.name for m in masters}


class Chaos:
    """A lab of VRRP nodes and a seeded stream of faults (see the module docstring)."""

    def __init__(
        self,
        lab: Lab,
        kinds: list[str],
        seed: int,
        *,
        advert_int: float = 0.1,
        margin: float = 1.0,
        startup: float = 6.0,
        faults: tuple[str, ...] = FAULTS,
        log: Callable[[str], None] = print,
    ) -> None:
        self.lab = lab
        self.seed = seed
        self.rng = random.Random(seed)
        self.advert_int = advert_int
        self.margin = margin
        self.startup = startup
        self.faults = faults
        self.log = log
        self.records: list[FaultRecord] = []
        self.nodes: list[Node] = []
        for i, kind in enumerate(kinds):
            name = f"n{i}"
            host = lab.add_host(name, (f"10.77.0.{i + 1}/24",))
            base = self.rng.choice(BASES) + 3 * i
            flag = lab.tmpdir / f"{name}.fail"
            self.nodes.append(Node(name, kind, i, host, base, flag))

    # -- configuration and processes ---------------------------------------------

    def master_down(self, node: Node | None = None) -> float:
        """The largest master-down interval of any node (or of ``node``)."""
        prios = [node.priority] if node else [n.priority for n in self.nodes]
        return max(3 * self.advert_int + (256 - p) * self.advert_int / 256 for p in prios)

    def config(self, node: Node) -> str:
        script = (
            "vrrp_script chk {\n"
            f'    script "/usr/bin/test ! -e {node.flag}"\n'
            f"    interval {SCRIPT_INTERVAL:g}\n    fall 1\n    rise 1\n    weight {WEIGHT}\n}}\n"
        )
        inst = instance_conf(
            priority=node.base,
            advert_int=self.advert_int,
            version=3,
            extra="track_script {\n    chk\n}",
        )
        return global_conf(node.name.upper()) + script + inst

    def _start(self, node: Node) -> None:
        if node.daemon is not None and node.daemon.log.exists():  # keep the old log
            node.daemon.log.rename(node.daemon.log.with_suffix(f".{node.restarts}"))
            # a killed keepalived's VRRP child may linger as a zombie (reparented to a pid 1
            # that does not reap): keepalived would take its pid file for a live daemon
            for pidfile in ("main.pid", "vrrp.pid"):
                (node.daemon.conf.parent / pidfile).unlink(missing_ok=True)
        node.daemon = start_daemon(self.lab, node.host, node.kind, self.config(node))
        node.running = True
        self._wait_ready(node)

    def _wait_ready(self, node: Node) -> None:
        """Wait until the daemon has set itself up (a SIGHUP before that would kill a
        pyvrrpd still importing its modules): pyvrrpd answers on its control socket,
        keepalived's VRRP child has written its pid file."""
        assert node.daemon is not None
        d = node.daemon.conf.parent
        deadline = time.monotonic() + self.startup
        while time.monotonic() < deadline:
            if node.daemon.proc.poll() is not None:
                break
            if node.kind == "keepalived" and (d / "vrrp.pid").exists():
                return
            if node.kind == "pyvrrpd" and (d / "control.sock").exists():
                with contextlib.suppress(OSError):
                    request(str(d / "control.sock"), "status", timeout=2)
                    return
            time.sleep(0.02)
        raise ChaosFailure(
            f"CHAOS_SEED={self.seed}: {node.name} ({node.kind}) not ready within "
            f"{self.startup} s:\n{node.daemon.log_text()[-2000:]}"
        )

    def _signal_group(self, node: Node, sig: int) -> None:
        assert node.daemon is not None
        os.killpg(node.daemon.proc.pid, sig)

    def start(self) -> None:
        """Start every node and wait for the first election."""
        self.log(f"chaos seed {self.seed}: " + ", ".join(
            f"{n.name} {n.kind} prio {n.base}" for n in self.nodes
        ))  # fmt: skip
        for n in self.nodes:
            self._start(n)
        self._converge("start", None, self.startup + self.master_down())

    # -- observation ---------------------------------------------------------------

    def holders(self) -> set[str]:
        """Nodes whose eth0 holds the VIP."""
        out = set()
        for n in self.nodes:
            text = self.lab.ip("-o", "-4", "addr", "show", "dev", "eth0", ns=n.host, check=False)
            if f" {VIP}/" in text:
                out.add(n.name)
        return out

    def _converge(
        self, what: str, ignore: str | None, deadline: float, settle: float = 0.0
    ) -> float:
        """Wait until the holders match the model and stay so; return the seconds taken.

        A match counts once it has lasted a few advert intervals and reached ``settle``
        seconds after the call (the time the daemons need to react at all: a match at
        once, before the fault took effect, proves nothing). Earlier mismatches restart
        the wait (a restarted keepalived first removes the VIP a kill -9 left behind,
        then takes it back); the whole must fit in ``deadline`` (+ ``settle``).
        """
        want = expected_holders(self.nodes, exclude=ignore)
        skip = {ignore} if ignore else set()
        hold = max(3 * self.advert_int, 0.3)
        t0 = time.monotonic()
        limit = t0 + max(deadline, settle) + hold
        since: float | None = None
        seen: set[str] = set()
        while True:
            self._check_processes(what)
            seen = self.holders() - skip
            now = time.monotonic()
            if seen != want:
                since = None
            elif since is None:
                since = now
            if since is not None and now >= max(since + hold, t0 + settle):
                return since - t0
            if now > limit:
                raise self._failure(what, want, seen, f"not within {limit - t0:.2f} s")
            time.sleep(0.02)

    def _check_processes(self, what: str) -> None:
        for n in self.nodes:
            if n.running and n.daemon is not None and n.daemon.proc.poll() is not None:
                raise ChaosFailure(
                    f"CHAOS_SEED={self.seed}: after {what}: {n.name} ({n.kind}) exited with "
                    f"{n.daemon.proc.returncode}; logs in {self.lab.tmpdir}"
                )

    def _failure(self, what: str, want: set[str], seen: set[str], how: str) -> ChaosFailure:
        state = "; ".join(
            f"{n.name}({n.kind} base {n.base} eff {n.priority} "
            f"{'run' if n.running else 'DOWN'} link {'up' if n.link_up else 'DOWN'}"
            f"{' isolated' if n.isolated else ''}{' failing' if n.failing else ''})"
            for n in self.nodes
        )
        return ChaosFailure(
            f"CHAOS_SEED={self.seed}: after {what}: VIP holders {sorted(seen)}, model says "
            f"{sorted(want)} ({how}); nodes: {state}; logs in {self.lab.tmpdir}"
        )

    # -- faults --------------------------------------------------------------------

    def run(self, count: int) -> list[FaultRecord]:
        """Inject ``count`` faults, checking the model after each."""
        for _ in range(count):
            self.step()
        return self.records

    def step(self) -> FaultRecord:
        """Pick one fault at random, inject it and check (and undo it if transient)."""
        fault = self.rng.choice(self.faults)
        masters = sorted(expected_holders(self.nodes))
        broken = {
            "link": [n for n in self.nodes if not n.link_up],
            "isolate": [n for n in self.nodes if n.isolated],
            "track": [n for n in self.nodes if n.failing],
        }.get(fault, [])
        if broken and self.rng.random() < 0.6:  # mostly heal what is broken: a walk that
            node = self.rng.choice(broken)  # keeps most nodes up moves the VIP more often
        elif masters and self.rng.random() < 0.5:  # half the faults hit a master
            pick = self.rng.choice(masters)
            node = next(n for n in self.nodes if n.name == pick)
        else:
            node = self.rng.choice(self.nodes)
        rec = FaultRecord(len(self.records), fault, node.name, "", (), tuple(masters))
        mdi = self.master_down()
        base = mdi + self.margin
        what = f"fault {rec.index} {fault} {node.name}"
        if fault in ("kill9", "stop"):
            sig = signal.SIGKILL if fault == "kill9" else signal.SIGSTOP
            self._signal_group(node, sig)
            node.running = False
            if fault == "kill9":
                assert node.daemon is not None
                node.daemon.proc.wait(timeout=10)
                self.lab.forget(node.daemon.proc.pid)
            rec.detail = "down"
            rec.during = tuple(sorted(expected_holders(self.nodes, exclude=node.name)))
            rec.took.append(self._converge(what + " (down)", node.name, base, mdi))
            pause = self.rng.uniform(0, 2 * self.master_down())
            time.sleep(pause)
            if fault == "kill9":
                node.restarts += 1
                self._start(node)
                deadline = base + self.startup
                settle = mdi + 1.0
            else:
                self._signal_group(node, signal.SIGCONT)
                node.running = True
                deadline = base
                settle = mdi
            rec.detail = f"back after {pause:.2f} s"
            rec.took.append(self._converge(what + " (back)", None, deadline, settle))
        else:
            deadline, settle = base, mdi
            if fault == "link":
                node.link_up = not node.link_up
                (self.lab.link_up if node.link_up else self.lab.link_down)(node.host)
                rec.detail = "up" if node.link_up else "down"
            elif fault == "isolate":
                node.isolated = not node.isolated
                (self.lab.partition if node.isolated else self.lab.heal)(node.host)
                rec.detail = "isolated" if node.isolated else "rejoined"
            elif fault == "track":
                node.failing = not node.failing
                if node.failing:
                    node.flag.touch()
                else:
                    node.flag.unlink()
                rec.detail = "script fails" if node.failing else "script passes"
                deadline += SCRIPT_INTERVAL + 0.5
                settle = SCRIPT_INTERVAL + mdi
            else:
                node.base = self.rng.choice([b for b in BASES if b + 3 * node.index != node.base])
                node.base += 3 * node.index
                assert node.daemon is not None
                node.daemon.conf.write_text(self.config(node))
                os.kill(node.daemon.proc.pid, signal.SIGHUP)
                rec.detail = f"priority {node.base}"
                deadline += 1.0  # the reload itself
                settle = 0.5 + mdi
            rec.took.append(self._converge(what, None, deadline, settle))
        rec.expected = tuple(sorted(expected_holders(self.nodes)))
        self.records.append(rec)
        self.log(
            f"  {rec.index:3d} {fault:7s} {node.name} {rec.detail:22s} -> "
            f"{','.join(rec.expected) or '-'} in " + "/".join(f"{t:.2f}" for t in rec.took)
        )
        return rec


def seed_from_env() -> int:
    """``CHAOS_SEED`` if set (to replay a failure), else a fresh random seed."""
    value = os.environ.get("CHAOS_SEED")
    return int(value) if value else random.SystemRandom().randrange(1 << 32)


def daemon_logs(run: Chaos, tail: int = 30) -> str:
    """The last lines of each node's log, for a failure report."""
    out = []
    for n in run.nodes:
        if n.daemon is not None:
            lines = n.daemon.log_text().splitlines()[-tail:]
            out.append(f"--- {n.name} ({n.kind}) ---\n" + "\n".join(lines))
    return "\n".join(out)


__all__ = [
    "FAULTS",
    "Chaos",
    "ChaosFailure",
    "FaultRecord",
    "Node",
    "daemon_logs",
    "expected_holders",
    "seed_from_env",
]
