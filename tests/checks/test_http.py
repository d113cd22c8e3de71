"""HTTP_GET / SSL_GET and genhash against local servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import ssl

import pytest

from pyvrrpd.checks import genhash
from pyvrrpd.checks.http import HttpCheck, TlsParams, Url, build_request
from pyvrrpd.checks.runner import run_once

from .conftest import CertFiles, Handler, closed_port, ep, tcp_server

BODY = b"<html>hello pyvrrpd, all is well</html>\n"
DIGEST = hashlib.md5(BODY).hexdigest()


def responder(
    status: int = 200, body: bytes = BODY, requests: list[bytes] | None = None, raw: bytes = b""
) -> Handler:
    """A handler that records the request head and answers (HTTP/1.0 style, then closes)."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        if requests is not None:
            requests.append(head)
        if raw:
            w.write(raw)
        else:
            w.write(f"HTTP/1.0 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await w.drain()

    return handle


def check(port: int, *urls: Url, timeout: float = 2.0, **kw: object) -> HttpCheck:
    return HttpCheck(ep(port, timeout), urls or (Url("/"),), **kw)  # type: ignore[arg-type]


async def test_up_with_digest_and_regex() -> None:
    async with tcp_server(responder()) as srv:
        res = await run_once(check(srv.port, Url("/x", digest=DIGEST.upper(), regex="all is w")))
    assert res.ok, res.cause


async def test_down_when_nothing_listens() -> None:
    res = await run_once(check(closed_port()))
    assert not res.ok and "ConnectionRefused" in res.cause


async def test_slow_server_times_out() -> None:
    async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with tcp_server(mute) as srv:
        res = await run_once(check(srv.port, timeout=0.3))
    assert not res.ok and "timed out" in res.cause
    assert res.latency < 2


@pytest.mark.parametrize(
    ("status", "codes", "ok"),
    [
        (500, (), False),
        (301, (), False),
        (204, (), True),
        (500, ((500, 503),), True),
        (200, ((500, 503),), False),
    ],
)
async def test_status_codes(status: int, codes: tuple[tuple[int, int], ...], ok: bool) -> None:
    async with tcp_server(responder(status)) as srv:
        res = await run_once(check(srv.port, Url("/", status_code=codes)))
    assert res.ok is ok, res.cause
    if not ok:
        assert f"status {status}" in res.cause


async def test_wrong_digest() -> None:
    async with tcp_server(responder()) as srv:
        res = await run_once(check(srv.port, Url("/", digest="0" * 32)))
    assert not res.ok and "digest" in res.cause and DIGEST in res.cause


@pytest.mark.parametrize(
    ("regex", "no_match", "ok"),
    [
        ("hello", False, True),
        ("absent", False, False),
        ("hello", True, False),
        ("nope", True, True),
    ],
)
async def test_regex(regex: str, no_match: bool, ok: bool) -> None:
    async with tcp_server(responder()) as srv:
        res = await run_once(check(srv.port, Url("/", regex=regex, regex_no_match=no_match)))
    assert res.ok is ok, res.cause


async def test_garbage_reply_is_down() -> None:
    async with tcp_server(responder(raw=b"SSH-2.0-OpenSSH_9\r\nnot http at all\r\n\r\n")) as srv:
        res = await run_once(check(srv.port))
    assert not res.ok and "bad HTTP answer" in res.cause


async def test_empty_reply_is_down() -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")

    async with tcp_server(hang_up) as srv:
        res = await run_once(check(srv.port))
    assert not res.ok


async def test_every_url_must_pass() -> None:
    async def by_path(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        status = 200 if head.startswith(b"GET /good ") else 404
        w.write(f"HTTP/1.0 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())

    async with tcp_server(by_path) as srv:
        good = await run_once(check(srv.port, Url("/good"), Url("/good")))
        bad = await run_once(check(srv.port, Url("/good"), Url("/bad")))
        assert srv.connections == 4  # one connection per URL
    assert good.ok and not bad.ok and "/bad" in bad.cause


@pytest.mark.parametrize(
    ("protocol", "line", "close"),
    [("1.0", b"HTTP/1.0", False), ("1.0C", b"HTTP/1.0", True), ("1.1", b"HTTP/1.1", True)],
)
async def test_request_format(protocol: str, line: bytes, close: bool) -> None:
    seen: list[bytes] = []
    async with tcp_server(responder(requests=seen)) as srv:
        res = await run_once(check(srv.port, http_protocol=protocol))
        res2 = await run_once(
            check(srv.port, Url("/v", virtualhost="url.example"), virtualhost="c")
        )
        res3 = await run_once(check(srv.port, virtualhost="chk.example"))
    assert res.ok and res2.ok and res3.ok
    first = seen[0].split(b"\r\n")
    assert first[0] == b"GET / " + line
    assert b"User-Agent: KeepAliveClient" in first
    assert (b"Connection: close" in first) is close
    assert f"Host: 127.0.0.1:{srv.port}".encode() in first
    assert b"Host: url.example" in seen[1].split(b"\r\n")
    assert b"Host: chk.example" in seen[2].split(b"\r\n")


def test_build_request_rejects_unknown_protocol() -> None:
    with pytest.raises(ValueError):
        build_request("/", "2.0", "h")
    with pytest.raises(ValueError):
        Url("/", digest="xyz")


async def test_chunked_http11_digest_covers_the_framing_as_keepalived() -> None:
    """keepalived 2.2.7's genhash hashes a chunked body with its framing (checked against
    /usr/bin/genhash on a chunked server); the regex sees the decoded body."""
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (BODY[:10], BODY[10:])) + b"0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
    want = hashlib.md5(framed).hexdigest()
    url = Url("/", digest=want, regex=re.escape(BODY[5:20].decode()))
    async with tcp_server(responder(raw=raw)) as srv:
        res = await run_once(check(srv.port, url, http_protocol="1.1"))
        assert res.ok, res.cause
        res = await run_once(check(srv.port, Url("/", digest=DIGEST), http_protocol="1.1"))
    assert not res.ok and "digest" in res.cause  # the decoded body's digest is not it


def _server_tls(files: CertFiles, names: list[str | None]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)

    def record(sock: object, name: str | None, c: object) -> None:
        names.append(name)

    ctx.sni_callback = record
    return ctx


async def test_ssl_get_self_signed_and_sni(self_signed: CertFiles) -> None:
    names: list[str | None] = []
    async with tcp_server(responder(), ssl=_server_tls(self_signed, names)) as srv:
        plain = await run_once(check(srv.port, Url("/", digest=DIGEST), tls=TlsParams()))
        sni = await run_once(
            check(srv.port, tls=TlsParams(), enable_sni=True, virtualhost="www.example")
        )
        named = await run_once(
            check(srv.port, tls=TlsParams(), enable_sni=True, sni_name="sni.example")
        )
    assert plain.ok, plain.cause
    assert sni.ok and named.ok
    assert names == [None, "www.example", "sni.example"]
    assert check(1, tls=TlsParams()).kind == "SSL_GET" and check(1).kind == "HTTP_GET"


async def test_ssl_verification_only_when_asked(self_signed: CertFiles) -> None:
    async with tcp_server(responder(), ssl=_server_tls(self_signed, [])) as srv:
        untrusted = await run_once(check(srv.port, tls=TlsParams(verify=True)))
        trusted = await run_once(
            check(srv.port, tls=TlsParams(verify=True, cafile=str(self_signed.cert)))
        )
    assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.cause
    assert trusted.ok, trusted.cause


async def test_plain_http_against_tls_server_is_down(self_signed: CertFiles) -> None:
    async with tcp_server(responder(), ssl=_server_tls(self_signed, [])) as srv:
        res = await run_once(check(srv.port, timeout=0.5))
    assert not res.ok


def _genhash(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return genhash.main(argv, out), out.getvalue()


async def test_genhash_prints_the_digest(self_signed: CertFiles) -> None:
    seen: list[bytes] = []
    async with tcp_server(responder(requests=seen)) as srv:
        port = str(srv.port)
        rc, text = await asyncio.to_thread(
            _genhash, ["-s", "127.0.0.1", "-p", port, "-u", "/p", "-V", "vh.example"]
        )
        assert (rc, text) == (0, DIGEST + "\n")
        rc, text = await asyncio.to_thread(
            _genhash, ["-s", "127.0.0.1", "-p", port, "-u", "/p", "-v"]
        )
        assert rc == 0 and f"MD5SUM = {DIGEST}" in text and "hello pyvrrpd" in text
    assert b"Host: vh.example" in seen[0]
    async with tcp_server(responder(), ssl=_server_tls(self_signed, [])) as srv:
        rc, text = await asyncio.to_thread(
            _genhash, ["-s", "127.0.0.1", "-p", str(srv.port), "-u", "/", "-S"]
        )
    assert (rc, text) == (0, DIGEST + "\n")
    rc, text = await asyncio.to_thread(
        _genhash, ["-s", "127.0.0.1", "-p", str(closed_port()), "-u", "/", "-t", "1"]
    )
    assert rc == 1 and text == ""


async def test_body_delimited_by_close_is_digested_whole() -> None:
    raw = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n" + BODY
    async with tcp_server(responder(raw=raw)) as srv:
        res = await run_once(check(srv.port, Url("/", digest=DIGEST)))
    assert res.ok, res.cause


@pytest.mark.keepalived
@pytest.mark.parametrize("chunked", [False, True])
async def test_genhash_agrees_with_keepalived_genhash(chunked: bool) -> None:
    import shutil
    import sys

    if shutil.which("genhash") is None:
        pytest.skip("keepalived's genhash is not installed")
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (BODY[:7], BODY[7:])) + b"0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed if chunked else b""

    async def digest(*cmd: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out
        return out.decode().split()[-1]

    async with tcp_server(responder(raw=raw)) as srv:
        args = ["-s", "127.0.0.1", "-p", str(srv.port), "-u", "/", "-P", "1.1"]
        theirs = await digest("genhash", *args)
        ours = await digest(sys.executable, "-m", "pyvrrpd.cli.ctl", "genhash", *args)
    assert ours == theirs
    assert theirs == hashlib.md5(framed if chunked else BODY).hexdigest()
