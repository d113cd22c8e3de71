"""``pyvrrpctl genhash``: print the MD5 digest of a web page, like keepalived's genhash."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from ipaddress import ip_address
from typing import TextIO

from .base import CheckFailed
from .conn import Endpoint
from .http import PROTOCOLS, HttpReply, TlsParams, fetch, host_header, tls_context
from .runner import describe


def build_parser() -> argparse.ArgumentParser:
    """The genhash options (keepalived's spelling)."""
    p = argparse.ArgumentParser(
        prog="pyvrrpctl genhash", description="MD5 digest of a remote web page"
    )
    p.add_argument("-s", "--server", required=True, help="IP address to connect to")
    p.add_argument("-p", "--port", type=int, required=True, help="port to connect to")
    p.add_argument("-u", "--url", required=True, help="path of the page")
    p.add_argument("-S", "--use-ssl", action="store_true", help="use TLS")
    p.add_argument("-V", "--use-virtualhost", metavar="HOST", help="virtual host to send")
    p.add_argument("-I", "--use-sni", metavar="NAME", help="SNI name to send (with -S)")
    p.add_argument(
        "-P", "--protocol", default="1.0", help="HTTP protocol: 1.0, 1.0C or 1.1 (default 1.0)"
    )
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="timeout in seconds")
    p.add_argument("-m", "--fwmark", type=int, help="firewall mark for the socket")
    p.add_argument("-v", "--verbose", action="store_true", help="show headers and body")
    return p


def render(reply: HttpReply, verbose: bool) -> str:
    """The output text: the digest, preceded by headers and body when ``verbose``."""
    if not verbose:
        return reply.digest + "\n"
    lines = [f"--- HTTP status {reply.status} {reply.reason}"]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    lines.append(f"--- body ({reply.length} bytes)")
    lines.append(reply.body.decode("utf-8", "replace"))
    lines.append(f"--- MD5SUM = {reply.digest}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run genhash with ``argv`` (no program name); 0 on success, 1 on failure."""
    out = out if out is not None else sys.stdout
    args = build_parser().parse_args(argv)
    protocol = args.protocol.upper()
    if protocol not in PROTOCOLS:
        print(f"genhash: invalid protocol {args.protocol!r}", file=sys.stderr)
        return 2
    try:
        ep = Endpoint(
            ip_address(args.server),
            args.port,
            fwmark=args.fwmark,
            connect_timeout=args.timeout,
        )
    except ValueError as exc:
        print(f"genhash: {exc}", file=sys.stderr)
        return 2
    tls = tls_context(TlsParams()) if args.use_ssl else None
    sni = (args.use_sni or args.use_virtualhost) if args.use_ssl else None

    async def go() -> HttpReply:
        return await fetch(
            ep,
            args.url,
            host=host_header(ep, args.use_virtualhost),
            protocol=protocol,
            tls=tls,
            sni=sni,
        )

    try:
        reply = asyncio.run(go())
    except (CheckFailed, OSError, TimeoutError, ValueError) as exc:
        print(f"genhash: {describe(exc)}", file=sys.stderr)
        return 1
    if reply.length == 0:
        print("no data received from remote webserver", file=sys.stderr)
        return 1
    out.write(render(reply, args.verbose))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
