"""SMTP_CHECK against local SMTP-speaking servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pyvrrpd.checks.runner import run_once
from pyvrrpd.checks.smtp import SmtpCheck, parse_code

from .conftest import closed_port, ep, tcp_server


def smtp_server(
    banner: bytes = b"220 mx.test ESMTP\r\n",
    helo_reply: bytes = b"250 mx.test hello\r\n",
    transcript: list[bytes] | None = None,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(banner)
        while True:
            line = await r.readline()
            if not line:
                return
            if transcript is not None:
                transcript.append(line)
            if line.upper().startswith(b"HELO"):
                w.write(helo_reply)
            elif line.upper().startswith(b"QUIT"):
                w.write(b"221 bye\r\n")
                await w.drain()
                return

    return handle


async def test_up_and_dialogue() -> None:
    said: list[bytes] = []
    async with tcp_server(smtp_server(transcript=said)) as srv:
        res = await run_once(SmtpCheck(ep(srv.port), helo_name="checker.example"))
    assert res.ok, res.cause
    assert said == [b"HELO checker.example\r\n", b"QUIT\r\n"]


async def test_multiline_banner_is_read_whole() -> None:
    banner = b"220-mx.test first\r\n220-second\r\n220 mx.test ready\r\n"
    async with tcp_server(smtp_server(banner=banner)) as srv:
        res = await run_once(SmtpCheck(ep(srv.port)))
    assert res.ok, res.cause


@pytest.mark.parametrize(
    ("banner", "helo", "cause"),
    [
        (b"554 go away\r\n", b"250 ok\r\n", "bad banner 554"),
        (b"SSH-2.0-OpenSSH\r\n", b"250 ok\r\n", "bad banner -1"),
        (b"220 ok\r\n", b"502 no HELO here\r\n", "HELO refused 502"),
    ],
)
async def test_wrong_replies_are_down(banner: bytes, helo: bytes, cause: str) -> None:
    async with tcp_server(smtp_server(banner=banner, helo_reply=helo)) as srv:
        res = await run_once(SmtpCheck(ep(srv.port)))
    assert not res.ok and cause in res.cause


async def test_down_when_nothing_listens() -> None:
    res = await run_once(SmtpCheck(ep(closed_port())))
    assert not res.ok and "ConnectionRefused" in res.cause


async def test_silent_server_times_out() -> None:
    async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with tcp_server(mute) as srv:
        res = await run_once(SmtpCheck(ep(srv.port, timeout=0.3)))
    assert not res.ok and "timed out" in res.cause


async def test_server_hanging_up_before_quit_reply_is_down() -> None:
    async def rude(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 hi\r\n")
        await r.readline()
        w.write(b"250 hi\r\n")
        await r.readline()

    async with tcp_server(rude) as srv:
        res = await run_once(SmtpCheck(ep(srv.port)))
    assert not res.ok and "closed" in res.cause


def test_parse_code() -> None:
    assert parse_code("220 x") == 220
    assert parse_code("250-x") == 250
    assert parse_code("250") == 250
    assert parse_code("2500 x") == -1
    assert parse_code("abc") == -1
