"""Run the daemon for a loaded configuration: logging, pid files, signals, the engines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

from .config.load import LoadResult

log = logging.getLogger("pyvrrpd")

DEFAULT_PID = "/run/pyvrrpd/pyvrrpd.pid"


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


async def serve(result: LoadResult, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT, then leave cleanly (priority 0, VIPs removed).

    SIGHUP reloads the configuration (a bad one is reported and changes nothing).
    """
    from .daemon import Daemon
    from .net.linux import LinuxBackend

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with LinuxBackend() as net, contextlib.AsyncExitStack() as stack:
        daemon = Daemon(result, args, net, stack)
        reloading: list[asyncio.Task[object]] = []

        def on_hup() -> None:
            log.info("Reloading (SIGHUP)")
            reloading.append(loop.create_task(daemon.reload()))

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        await daemon.start()
        await stop.wait()
        log.info("Stopping")
        for task in reloading:
            with contextlib.suppress(Exception):
                await task
        await daemon.stop()
    return 0


def run_daemon(result: LoadResult, args: argparse.Namespace) -> int:
    """Run the daemon in the foreground; returns the exit code."""
    setup_logging(args)
    pids = [args.pid or DEFAULT_PID]
    if getattr(args, "vrrp_pid", None):
        pids.append(args.vrrp_pid)
    if getattr(args, "checkers_pid", None):
        pids.append(args.checkers_pid)
    log.info("Starting pyvrrpd with %s", result.files[0] if result.files else "?")
    with pid_files(pids):
        return asyncio.run(serve(result, args))
