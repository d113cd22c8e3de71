"""Run the daemon for a loaded configuration: logging, pid files, signals, the engines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .cli.daemon import SIGNUMS
from .config.load import LoadResult
from .control import DEFAULT_SOCKET, ControlServer, Handler
from .dumps import DATA_FILE, JSON_FILE, STATS_FILE, data_text, json_text, stats_text, write_dump
from .release import DEFAULT_STATE, StateRecorder
from .sdnotify import SdNotifier

if TYPE_CHECKING:
    from .daemon import Daemon, ReloadOutcome

log = logging.getLogger("pyvrrpd")

DEFAULT_PID = "/run/pyvrrpd/pyvrrpd.pid"

DUMP_SIGNALS: dict[int, str] = {
    SIGNUMS["DATA"]: "data",
    SIGNUMS["STATS"]: "stats",
    SIGNUMS["JSON"]: "json",
}


def setup_logging(args: argparse.Namespace) -> None:
    """Log to stderr (systemd's journal, or the console with -l); -D adds detail."""
    level = logging.DEBUG if getattr(args, "log_detail", False) else logging.INFO
    fmt = "%(asctime)s %(name)s: %(message)s"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(args, "log_file", None):
        handlers.append(logging.FileHandler(args.log_file))
    for h in handlers:
        h.addFilter(_quiet_libraries)
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Drop libraries' chatter below WARNING (pyroute2 logs every netlink message)."""
    if record.name.startswith(("pyroute2", "asyncio")):
        return record.levelno >= logging.WARNING
    return True


@contextlib.contextmanager
def pid_files(paths: list[str]) -> Iterator[None]:
    """Write our pid to each file, and remove them on exit."""
    written: list[str] = []
    try:
        for path in paths:
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                with open(path, "w", encoding="ascii") as fh:
                    fh.write(f"{os.getpid()}\n")
                written.append(path)
            except OSError as exc:
                log.warning("cannot write pid file %s: %s", path, exc)
        yield
    finally:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)


class Operations:
    """What the operator can ask of a running daemon: signals and control requests."""

    def __init__(self, daemon: Daemon, notifier: SdNotifier) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.lock = asyncio.Lock()  # one reload (or plan) at a time
        self.tasks: set[asyncio.Task[Any]] = set()

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        d = self.daemon
        states: dict[str, int] = {}
        if d.vrrp is not None:
            for inst in d.vrrp.instances.values():
                states[inst.fsm.state.value] = states.get(inst.fsm.state.value, 0) + 1
        parts = [f"{n} {s}" for s, n in sorted(states.items())] or ["no VRRP instance"]
        vs = len(d.balancer.states) if d.balancer is not None else 0
        return f"VRRP: {', '.join(parts)}; IPVS: {vs} virtual server(s); {d.reloads} reload(s)"

    async def reload(self, path: str | None = None) -> ReloadOutcome:
        """A reload bracketed by RELOADING=1 / READY=1."""
        async with self.lock:
            self.notifier.reloading()
            try:
                return await self.daemon.reload(path)
            finally:
                self.notifier.ready(self.summary())

    def on_hup(self) -> None:
        log.info("Reloading (SIGHUP)")
        self._spawn(self.reload())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def dump(self, kind: str) -> str:
        """Write keepalived's dump file of ``kind`` (data, stats, json); returns its path."""
        snap = self.daemon.status()
        if kind == "data":
            from .config.render import render  # YAML and the renderer: not on the start path

            config = render(self.daemon.result.config, "keepalived")
            return write_dump(DATA_FILE, data_text(snap, config))
        if kind == "stats":
            return write_dump(STATS_FILE, stats_text(snap))
        if kind == "json":
            return write_dump(JSON_FILE, json_text(snap))
        raise ValueError(f"unknown dump {kind!r} (data, stats, json)")

    def on_dump(self, kind: str) -> None:
        try:
            log.info("Dump of %s written to %s", kind, self.dump(kind))
        except OSError as exc:
            log.error("cannot write the %s dump: %s", kind, exc)

    def on_stats_clear(self) -> None:
        log.warning("STATS_CLEAR: clearing statistics is not supported; ignored")

    async def refresh_state(self, every: float = 1.0) -> None:
        """Keep the state file current (in-place address changes after a reload)."""
        while True:
            await asyncio.sleep(every)
            if self.daemon.recorder is not None:
                self.daemon.recorder.refresh()

    def handlers(self) -> dict[str, Handler]:
        """The control socket's commands."""
        d = self.daemon

        async def status(req: dict[str, Any]) -> dict[str, Any]:
            return {"status": d.status()}

        async def reload(req: dict[str, Any]) -> dict[str, Any]:
            return {"outcome": (await self.reload(req.get("path"))).as_dict()}

        async def plan(req: dict[str, Any]) -> dict[str, Any]:
            async with self.lock:
                return {"plan": await d.plan(req.get("path"))}

        async def drain(req: dict[str, Any]) -> dict[str, Any]:
            return {"drain": await d.drain(str(req["vs"]), str(req["rs"]))}

        async def undrain(req: dict[str, Any]) -> dict[str, Any]:
            ramp = float(req.get("ramp") or 0.0)
            return {"drain": await d.undrain(str(req["vs"]), str(req["rs"]), ramp)}

        async def dump(req: dict[str, Any]) -> dict[str, Any]:
            return {"path": self.dump(str(req.get("kind", "json")))}

        return {
            "status": status,
            "reload": reload,
            "plan": plan,
            "drain": drain,
            "undrain": undrain,
            "dump": dump,
        }


def metrics_module(args: argparse.Namespace) -> ModuleType | None:
    """pyvrrpd.metrics when --metrics is given, else None (ImportError: no prometheus_client)."""
    if getattr(args, "metrics", None) is None:
        return None
    from . import metrics

    return metrics


async def serve(result: LoadResult, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT, then leave cleanly (priority 0, VIPs removed).

    SIGHUP reloads the configuration (a bad one is reported and changes nothing);
    SIGUSR1, SIGUSR2 and SIGRTMIN+2 write keepalived's data, stats and JSON dumps. The
    control socket and systemd notifications are set up here too.
    """
    from .daemon import Daemon
    from .net.linux import LinuxBackend

    try:
        metrics_mod = metrics_module(args)
    except ImportError as exc:
        log.error("%s", exc)
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    notifier = SdNotifier()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with LinuxBackend() as net, contextlib.AsyncExitStack() as stack:
        daemon = Daemon(result, args, net, stack)
        state_file = getattr(args, "state_file", None) or DEFAULT_STATE
        if state_file != "none":
            daemon.recorder = StateRecorder(state_file)
        ops = Operations(daemon, notifier)
        loop.add_signal_handler(signal.SIGHUP, ops.on_hup)
        for signum, kind in DUMP_SIGNALS.items():
            loop.add_signal_handler(signum, ops.on_dump, kind)
        loop.add_signal_handler(SIGNUMS["STATS_CLEAR"], ops.on_stats_clear)
        await daemon.start()
        control = ControlServer(getattr(args, "control_socket", None) or DEFAULT_SOCKET,
                                ops.handlers())  # fmt: skip
        if control.path != "none":
            try:
                await control.start()
            except OSError as exc:
                log.error("control socket %s: %s (pyvrrpctl will not reach us)", control.path, exc)
        metrics = None
        if metrics_mod is not None:
            metrics = await metrics_mod.start_metrics(daemon.status, args.metrics)
            if metrics is not None:  # every check result feeds the latency histograms
                daemon.result_hooks.append(metrics.collector.histograms.record)
        notifier.ready(ops.summary())
        notifier.start_watchdog()
        refresher = loop.create_task(ops.refresh_state())
        await stop.wait()
        log.info("Stopping")
        notifier.stopping()
        refresher.cancel()
        await control.close()
        if metrics is not None:
            await metrics.close()
        for task in list(ops.tasks):
            with contextlib.suppress(Exception):
                await task
        await daemon.stop()
        await notifier.stop_watchdog()
    return 0


def raise_open_files_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (as keepalived raises its own): every
    health check in flight holds a socket, and 1,024 is the usual soft default."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            return want
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d: %s", soft, exc)
    return soft


def run_daemon(result: LoadResult, args: argparse.Namespace) -> int:
    """Run the daemon in the foreground; returns the exit code."""
    setup_logging(args)
    pids = [args.pid or DEFAULT_PID]
    if getattr(args, "vrrp_pid", None):
        pids.append(args.vrrp_pid)
    if getattr(args, "checkers_pid", None):
        pids.append(args.checkers_pid)
    log.info("Starting pyvrrpd with %s", result.files[0] if result.files else "?")
    raise_open_files_limit()
    with pid_files(pids):
        return asyncio.run(serve(result, args))
