"""Shared helpers of the checker tests: local servers on 127.0.0.1 and a self-signed cert."""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyvrrpd.checks.conn import Endpoint

LOCAL = IPv4Address("127.0.0.1")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def ep(port: int, timeout: float = 2.0, **kw: object) -> Endpoint:
    """An endpoint on 127.0.0.1."""
    return Endpoint(LOCAL, port, connect_timeout=timeout, **kw)  # type: ignore[arg-type]


def closed_port() -> int:
    """A TCP/UDP port on 127.0.0.1 with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running test server: its port and how many connections it accepted."""

    port: int
    connections: int = 0


@asynccontextmanager
async def tcp_server(handler: Handler, **kw: object) -> AsyncIterator[Served]:
    """Serve ``handler`` on 127.0.0.1:0 for the duration of the block."""
    served = Served(0)
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        served.connections += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(r, w)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Server shutdown: end the handler quietly (asyncio's stream callback would
            # otherwise report the cancelled task as an error).
            pass
        finally:
            w.close()
            tasks.discard(task)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0, **kw)  # type: ignore[arg-type]
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await server.wait_closed()


@dataclass(frozen=True)
class CertFiles:
    """A self-signed certificate and its key, as PEM files."""

    cert: Path
    key: Path


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for ``localhost`` / 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyvrrpd-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(LOCAL)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    files = CertFiles(d / "cert.pem", d / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
