"""HTTP_GET and SSL_GET: every URL must answer with an accepted status, digest and regex.

Requests are written like keepalived's (``User-Agent: KeepAliveClient``, ``Host`` is the
virtual host or ``ip:port``, ``Connection: close`` for 1.0C and 1.1); responses are parsed
with h11. The MD5 digest is of the body bytes as they came on the wire after the headers
(for a chunked answer: with its chunk framing), as keepalived and its genhash compute it,
so digests made with either tool agree; the regex sees the decoded body. TLS does not
verify the server unless
:attr:`TlsParams.verify` is set (keepalived never does).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import ClassVar

import h11

from .base import CheckFailed, CheckResult, passed
from .conn import Endpoint, close_writer, open_stream

PROTOCOLS = ("1.0", "1.0C", "1.1")
DEFAULT_STATUS = ((200, 299),)
READ_SIZE = 65536
MAX_KEPT_BODY = 4 * 1024 * 1024  # bytes kept for the regex (the digest covers everything)


@dataclass(frozen=True, slots=True)
class Url:
    """One ``url {}`` block: the path and what the answer must look like."""

    path: str
    digest: str | None = None  # 32 hex digits
    status_code: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty: 200-299
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False

    def __post_init__(self) -> None:
        if self.digest is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{32}", self.digest):
                raise ValueError(f"digest {self.digest!r} is not 32 hex digits")
            object.__setattr__(self, "digest", self.digest.lower())

    def accepts(self, status: int) -> bool:
        """Whether ``status`` is one of the accepted codes."""
        return any(lo <= status <= hi for lo, hi in self.status_code or DEFAULT_STATUS)


@dataclass(frozen=True, slots=True)
class TlsParams:
    """The ``SSL {}`` block: optional client certificate, CA file, and opt-in verification."""

    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None
    cafile: str | None = None
    verify: bool = False


@functools.lru_cache(maxsize=64)
def tls_context(params: TlsParams) -> ssl.SSLContext:
    """A client context for ``params`` (cached: contexts are costly to build)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if params.verify:
        if params.cafile:
            ctx.load_verify_locations(cafile=params.cafile)
        else:
            ctx.load_default_certs()
        ctx.check_hostname = False  # the target is an address; the chain is what we check
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if params.certfile:
        ctx.load_cert_chain(params.certfile, params.keyfile, params.password)
    return ctx


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What a server answered to one GET."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes  # at most MAX_KEPT_BODY bytes
    digest: str  # MD5 of the body as sent (chunk framing included), lowercase hex
    length: int


def build_request(path: str, protocol: str, host: str) -> bytes:
    """The GET request keepalived would send for ``protocol`` (1.0, 1.0C or 1.1)."""
    if protocol.upper() not in PROTOCOLS:
        raise ValueError(f"unknown http_protocol {protocol!r}")
    minor = 1 if protocol == "1.1" else 0
    close = "Connection: close\r\n" if protocol.upper() in ("1.0C", "1.1") else ""
    text = (
        f"GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
    return text.encode("latin-1")


def host_header(ep: Endpoint, vhost: str | None) -> str:
    """The Host value: the virtual host as given, else the target ``ip:port``."""
    return vhost if vhost else ep.describe()


async def fetch(
    ep: Endpoint,
    path: str,
    *,
    host: str,
    protocol: str = "1.0",
    tls: ssl.SSLContext | None = None,
    sni: str | None = None,
) -> HttpReply:
    """GET ``path`` and read the whole answer; each read must finish within the timeout."""
    reader, writer = await open_stream(ep, tls, sni)
    try:
        writer.write(build_request(path, protocol, host))
        async with asyncio.timeout(ep.connect_timeout):
            await writer.drain()
        return await _read_reply(reader, ep, path, host)
    finally:
        await close_writer(writer)


async def _read_reply(
    reader: asyncio.StreamReader, ep: Endpoint, path: str, host: str
) -> HttpReply:
    conn = h11.Connection(our_role=h11.CLIENT)
    # Tell h11 a GET went out (we wrote our own bytes), so it frames the response for a GET.
    conn.send(h11.Request(method="GET", target=path.encode(), headers=[("Host", host)]))
    conn.send(h11.EndOfMessage())
    md5 = hashlib.md5(usedforsecurity=False)
    kept = bytearray()
    length = 0
    response: h11.Response | None = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise CheckFailed(f"bad HTTP answer from {ep.describe()}: {exc}") from None
        if event is h11.NEED_DATA:
            try:
                async with asyncio.timeout(ep.connect_timeout):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                raise CheckFailed(f"read from {ep.describe()} timed out") from None
            conn.receive_data(data)
            if response is not None:
                md5.update(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = event
            md5.update(conn.trailing_data[0])  # what followed the headers so far
        elif isinstance(event, h11.Data):
            chunk = bytes(event.data)
            length += len(chunk)
            if len(kept) < MAX_KEPT_BODY:
                kept += chunk[: MAX_KEPT_BODY - len(kept)]
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    if response is None:
        raise CheckFailed(f"no HTTP answer from {ep.describe()}")
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers)
    return HttpReply(
        status=response.status_code,
        reason=response.reason.decode("latin-1"),
        headers=headers,
        body=bytes(kept),
        digest=md5.hexdigest(),
        length=length,
    )


def judge(url: Url, reply: HttpReply) -> str | None:
    """Why ``reply`` fails ``url`` (status, then digest, then regex), or None if it passes."""
    if not url.accepts(reply.status):
        return f"status {reply.status} not accepted"
    if url.digest is not None and reply.digest != url.digest:
        return f"digest {reply.digest} differs from {url.digest}"
    if url.regex is not None:
        matched = _compiled(url.regex).search(reply.body) is not None
        if matched == url.regex_no_match:
            return "regex matched" if matched else "regex did not match"
    return None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[bytes]:
    return re.compile(pattern.encode())


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """HTTP_GET (``tls`` None) or SSL_GET parameters; equal instances are one shared check.

    ``virtualhost`` is the checker's (real/virtual server values already folded in by the
    caller); a URL's own virtualhost wins. SNI, when enabled, is ``sni_name``, else the
    virtual host.
    """

    endpoint: Endpoint
    urls: tuple[Url, ...]
    virtualhost: str | None = None
    http_protocol: str = "1.0"
    tls: TlsParams | None = None
    enable_sni: bool = False
    sni_name: str | None = None
    _kinds: ClassVar[tuple[str, str]] = ("HTTP_GET", "SSL_GET")

    def __post_init__(self) -> None:
        if self.http_protocol.upper() not in PROTOCOLS:
            raise ValueError(f"unknown http_protocol {self.http_protocol!r}")
        if not self.urls:
            raise ValueError("an HTTP check needs at least one url")

    @property
    def kind(self) -> str:
        """HTTP_GET or SSL_GET."""
        return self._kinds[self.tls is not None]

    def sni_for(self, url: Url) -> str | None:
        """The SNI name to send for ``url`` (None: none)."""
        if not self.enable_sni or self.tls is None:
            return None
        return self.sni_name or url.virtualhost or self.virtualhost

    async def check(self) -> CheckResult:
        """Fetch every URL in turn on a new connection; the first failing one fails."""
        ctx = tls_context(self.tls) if self.tls is not None else None
        for url in self.urls:
            vhost = url.virtualhost or self.virtualhost
            reply = await fetch(
                self.endpoint,
                url.path,
                host=host_header(self.endpoint, vhost),
                protocol=self.http_protocol.upper(),
                tls=ctx,
                sni=self.sni_for(url),
            )
            why = judge(url, reply)
            if why is not None:
                raise CheckFailed(f"{url.path}: {why}")
        return passed(f"{len(self.urls)} url(s) ok")
