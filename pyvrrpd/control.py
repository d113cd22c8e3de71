"""The control socket: JSON lines over a unix stream socket (mode 0600, root only).

Each request is one line ``{"command": NAME, ...}``; each answer one line
``{"ok": true|false, ...}``. Commands: ``status``, ``reload`` (``path`` optional),
``plan`` (``path``: a dry run of a configuration file), ``drain``/``undrain``
(``vs``, ``rs``), ``dump`` (``kind``: data, stats or json; writes keepalived's file).
The server runs on the daemon's event loop; :func:`request` is the blocking client
``pyvrrpctl`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("pyvrrpd")

DEFAULT_SOCKET = "/run/pyvrrpd/control.sock"
MAX_LINE = 1 << 20

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A request the daemon could not carry out (answered with ok false)."""


class ControlServer:
    """Serves the control protocol on a unix socket; handlers answer dicts."""

    def __init__(self, path: str, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.Server | None = None
        self.requests = 0

    async def start(self) -> None:
        """Bind (replacing a stale socket file, refusing a live one) and listen."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} exists and is not a socket")
            if _alive(self.path):
                raise OSError(f"{self.path}: another daemon answers on it")
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=self.path, limit=MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _peer_allowed(writer):
                await _send(writer, {"ok": False, "error": "permission denied"})
                return
            while line := await reader.readline():
                self.requests += 1
                await _send(writer, await self.answer(line))
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line."""
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        name = req.get("command")
        handler = self.handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            known = sorted(self.handlers)
            return {"ok": False, "error": f"unknown command {name!r}", "commands": known}
        try:
            out = await handler(req)
        except (ControlError, LookupError, ValueError, OSError) as exc:
            return {"ok": False, "error": str(exc).strip("'\"")}
        except Exception as exc:
            log.exception("control: %s failed", name)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, **out}


def _peer_allowed(writer: asyncio.StreamWriter) -> bool:
    """Only root (or our own uid) may talk to us, whatever the file mode says."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    except OSError:
        return False
    uid = int.from_bytes(creds[4:8], "little")
    return uid in (0, os.geteuid())


async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj, default=str).encode() + b"\n")
    await writer.drain()


def _alive(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def request(path: str, command: str, /, *, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
    """Send one request to the daemon and return its answer (blocking).

    Raises OSError when the daemon cannot be reached.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps({"command": command, **params}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ConnectionError(f"{path}: the daemon closed the connection")
    answer = json.loads(buf)
    if not isinstance(answer, dict):
        raise ConnectionError(f"{path}: unexpected answer")
    return answer
