"""Keyword tables of the health checkers (TCP_CHECK, HTTP_GET, MISC_CHECK...).

Structural problems keepalived reports when a checker block ends (no url, no path, no
misc_path, min > max reply length...) are reported by each block's ``finish``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .convert import Conv, Invalid, address, boolean, integer, text
from .convert_lvs import (
    UINT32_MAX,
    block_parser,
    hex_string,
    hint_all,
    port,
    script,
    timer,
    track_weight,
    uint,
)
from .model_checks import (
    CHECKER_CLASSES,
    BfdCheck,
    Checker,
    DnsCheck,
    FileCheck,
    HttpGet,
    HttpProtocol,
    MiscCheck,
    PingCheck,
    SmtpCheck,
    SmtpHost,
    SslGet,
    TcpCheck,
    UdpCheck,
    Url,
)
from .schema import BlockSpec, Ctx, Kw, Mode, RNode, render_block
from .tree import Node

DNS_TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")

#: regex_options keepalived passes to PCRE2 (unknown ones are silently ignored by it).
REGEX_OPTIONS = tuple(
    [
        "allow_empty_class",
        "alt_bsux",
        "auto_callout",
        "caseless",
        "dollar_endonly",
        "dotall",
        "dupnames",
        "extended",
        "firstline",
        "match_unset_backref",
        "multiline",
        "never_ucp",
        "never_utf",
        "no_auto_capture",
        "no_auto_possess",
        "no_dotstar_anchor",
        "no_start_optimize",
        "ucp",
        "ungreedy",
        "utf",
        "never_backslash_c",
        "alt_circumflex",
        "alt_verbnames",
        "use_offset_limit",
    ]
)


# ---------------------------------------------------------------------------------------
# Converters


def _dns_type() -> Conv[str]:
    def parse(args: Sequence[str]) -> str:
        word = text("a DNS type").parse(args)
        if word.upper() not in DNS_TYPES:
            raise Invalid(f"unknown DNS check type {word}", "use one of " + ", ".join(DNS_TYPES))
        return word.upper()

    return Conv(parse, lambda v: (v,), "a DNS query type")


def _dns_name() -> Conv[str]:
    def parse(args: Sequence[str]) -> str:
        name = text("a domain name").parse(args)
        if (name.startswith(".") and name != ".") or ".." in name:
            raise Invalid(f"DNS_CHECK name '{name}' has empty label", "remove the extra dot")
        return name

    return Conv(parse, lambda v: (v,), "a domain name")


def _http_protocol() -> Conv[str]:
    def parse(args: Sequence[str]) -> str:
        word = text("1.0, 1.0C or 1.1").parse(args)
        canon = "1.0C" if word == "1.0c" else word
        if canon not in HttpProtocol.ALL:
            raise Invalid(f"invalid http_protocol version {word}", "use 1.0, 1.0C or 1.1")
        return canon

    return Conv(parse, lambda v: (v,), "an HTTP protocol version")


def _digest() -> Conv[str]:
    def parse(args: Sequence[str]) -> str:
        word = text("an MD5 digest").parse(args)
        if len(word) != 32:
            raise Invalid(
                f"digest '{word}' character length should be 32 rather than {len(word)}",
                "compute it with genhash",
            )
        try:
            int(word, 16)
        except ValueError:
            raise Invalid(
                f"digest '{word}' is not hexadecimal", "compute it with genhash"
            ) from None
        return word.lower()

    return Conv(parse, lambda v: (v,), "an MD5 digest (32 hex digits)")


def _status_codes() -> Conv[tuple[tuple[int, int], ...]]:
    def parse(args: Sequence[str]) -> tuple[tuple[int, int], ...]:
        if not args:
            raise Invalid("missing value: expected status codes such as 200 or 200-299")
        out = []
        for word in args:
            lo_s, _, hi_s = word.partition("-")
            try:
                lo = int(lo_s, 10)
                hi = int(hi_s, 10) if hi_s else lo
            except ValueError:
                lo, hi = 0, -1
            if not (100 <= lo <= hi <= 599):
                raise Invalid(
                    f"invalid HTTP_GET status code '{word}'", "use codes or ranges within 100-599"
                )
            out.append((lo, hi))
        return tuple(out)

    def fmt(v: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
        return tuple(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in v)

    return Conv(parse, fmt, "status codes or ranges", nargs=None)


def _regex_stack() -> Conv[tuple[int, int]]:
    num = integer(0)

    def parse(args: Sequence[str]) -> tuple[int, int]:
        if len(args) != 2:
            raise Invalid("regex_stack requires start and max values")
        start, most = num.parse(args[:1]), num.parse(args[1:])
        if start > most:
            raise Invalid("regex stack start cannot exceed max value")
        return (start, most)

    return Conv(parse, lambda v: (str(v[0]), str(v[1])), "START MAX", nargs=None)


def _words_conv(what: str) -> Conv[tuple[str, ...]]:
    def parse(args: Sequence[str]) -> tuple[str, ...]:
        if not args:
            raise Invalid(f"missing value: expected {what}")
        return tuple(args)

    return Conv(parse, lambda v: tuple(v), what, nargs=None)


def _nb_get_retry(node: Node, ctx: Ctx) -> int:
    value = uint().parse(node.arg_texts)
    ctx.error(node.loc, "nb_get_retry is deprecated", "use 'retry'", "deprecated")
    return value


# ---------------------------------------------------------------------------------------
# Common keywords

POLL_KWS: tuple[Kw, ...] = (
    Kw("retry", "retry", uint()),
    Kw("delay_before_retry", "delay_before_retry", timer(0)),
    Kw("warmup", "warmup", timer(0)),
    Kw("delay_loop", "delay_loop", timer()),
    Kw("alpha", "alpha", boolean()),
    Kw("log_all_failures", "log_all_failures", boolean()),
)

CONN_KWS: tuple[Kw, ...] = (
    Kw("connect_ip", "connect_ip", address()),
    Kw("connect_port", "connect_port", port()),
    Kw("bindto", "bindto", address()),
    Kw("bind_port", "bind_port", port()),
    Kw("bind_if", "bind_if", text("an interface name")),
    Kw("connect_timeout", "connect_timeout", timer(0.000001, 4294.967295)),
    Kw("fwmark", "fwmark", uint()),
)


def _check_conn(obj: Any, ctx: Ctx) -> None:
    """connect_ip and bindto must share a family (keepalived drops the later one)."""
    dst, src = obj.connect_ip, obj.bindto
    if dst is not None and src is not None and dst.version != src.version:
        later = "connect_ip" if obj.locs["connect_ip"] > obj.locs["bindto"] else "bindto"
        ctx.error(
            obj.locs[later],
            f"{later} address does not match the address family of "
            f"{'bindto' if later == 'connect_ip' else 'connect_ip'}",
            "use addresses of one family",
            "bad-value",
        )


def _finish_conn(obj: Any, ctx: Ctx) -> Any:
    _check_conn(obj, ctx)
    return obj


# ---------------------------------------------------------------------------------------
# HTTP_GET / SSL_GET

_URL_BASE = (
    Kw("path", "path", text("a URL path")),
    Kw("digest", "digest", _digest()),
    Kw("status_code", "status_code", _status_codes()),
    Kw("virtualhost", "virtualhost", text("a host name")),
    Kw("regex", "regex", text("a regular expression")),
    Kw("regex_no_match", "regex_no_match", mode=Mode.FLAG),
    Kw("regex_options", "regex_options", _words_conv("regex options")),
    Kw("regex_stack", "regex_stack", _regex_stack()),
    Kw("regex_min_offset", "regex_min_offset", integer(0)),
    Kw("regex_max_offset", "regex_max_offset", integer(0)),
)


def _finish_url(obj: Url, ctx: Ctx) -> Url:
    if obj.path is None:
        ctx.error(obj.loc, "HTTP/SSL_GET checker url has no path", "add 'path /...'", "missing")
    return obj


def _url_spec(ssl: bool) -> BlockSpec:
    kws = _URL_BASE + ((Kw("tls_compliant", "tls_compliant", boolean()),) if ssl else ())
    return BlockSpec("url", Url, hint_all(kws), finish=_finish_url, doc="a URL to check")


def _finish_http(obj: HttpGet, ctx: Ctx) -> HttpGet:
    if not any(u.path is not None for u in obj.urls):  # keepalived drops path-less urls
        ctx.error(
            obj.loc,
            f"{obj.keyword} checker has no urls specified",
            "add a 'url { path / }' block",
            "missing",
        )
    _check_conn(obj, ctx)
    return obj


def _http_spec(cls: type[HttpGet]) -> BlockSpec:
    ssl = cls is SslGet
    url = _url_spec(ssl)
    kws: tuple[Kw, ...] = (
        *CONN_KWS,
        *POLL_KWS,
        Kw("nb_get_retry", "retry", uint(), parse_node=_nb_get_retry, render_value=lambda v: []),
        Kw("virtualhost", "virtualhost", text("a host name")),
        Kw("http_protocol", "http_protocol", _http_protocol()),
        Kw("enable_sni", "enable_sni", boolean()),
        Kw("sni_name", "sni_name", text("a server name")),
        Kw("fast_recovery", "fast_recovery", boolean()),
        Kw(
            "url",
            "urls",
            mode=Mode.BLOCK,
            spec=url,
            repeat=True,
            parse_node=block_parser(url, once=("digest",)),
        ),
    )
    if ssl:
        kws += (Kw("tls_compliant", "tls_compliant", boolean()),)
    return BlockSpec(cls.keyword, cls, hint_all(kws), finish=_finish_http, doc=cls.__doc__ or "")


# ---------------------------------------------------------------------------------------
# The other checkers


def _finish_udp(obj: UdpCheck, ctx: Ctx) -> UdpCheck:
    if obj.min_reply_length > obj.max_reply_length:
        ctx.error(
            obj.locs.get("min_reply_length", obj.loc),
            f"UDP_CHECK min_reply_length {obj.min_reply_length} > max_reply_length "
            f"{obj.max_reply_length} - will always fail",
            "make min_reply_length at most max_reply_length",
            "bad-value",
        )
    _check_conn(obj, ctx)
    return obj


def _require_reply(node: Node, ctx: Ctx) -> str:
    """``require_reply [HEX]``: the bare keyword is stored as an empty string."""
    return hex_string(wildcards=True).parse(node.arg_texts) if node.args else ""


def _render_require_reply(value: str | None) -> list[RNode]:
    return [] if value is None else [RNode(("require_reply", *value.split()))]


UDP_KWS: tuple[Kw, ...] = (
    *CONN_KWS,
    *POLL_KWS,
    Kw("payload", "payload", hex_string()),
    Kw(
        "require_reply",
        "require_reply",
        parse_node=_require_reply,
        render_value=_render_require_reply,
    ),
    Kw("min_reply_length", "min_reply_length", integer(0, 65535)),
    Kw("max_reply_length", "max_reply_length", integer(0, 65535)),
)


def _finish_misc(obj: MiscCheck, ctx: Ctx) -> MiscCheck:
    if not obj.misc_path:
        ctx.error(
            obj.loc,
            "no script path has been specified for MISC_CHECK",
            "add 'misc_path /path/to/script'",
            "missing",
        )
    return obj


def _finish_file(obj: FileCheck, ctx: Ctx) -> FileCheck:
    if obj.track_file is None:
        ctx.error(
            obj.loc, "FILE_CHECK has no track_file specified", "add 'track_file NAME'", "missing"
        )
    return obj


def _finish_bfd(obj: BfdCheck, ctx: Ctx) -> BfdCheck:
    if obj.name is None:
        ctx.error(obj.loc, "no name has been specified for BFD_CHECK", "add 'name BFD'", "missing")
    return obj


SMTP_HOST = BlockSpec(
    "host",
    SmtpHost,
    hint_all(CONN_KWS),
    finish=_finish_conn,
    doc="an extra address (deprecated form)",
)


def _spec(cls: type[Checker], kws: Sequence[Kw], finish: Any = _finish_conn) -> BlockSpec:
    return BlockSpec(cls.keyword, cls, hint_all(kws), finish=finish, doc=cls.__doc__ or "")


CHECKER_SPECS: dict[type[Checker], BlockSpec] = {
    HttpGet: _http_spec(HttpGet),
    SslGet: _http_spec(SslGet),
    TcpCheck: _spec(TcpCheck, (*CONN_KWS, *POLL_KWS)),
    PingCheck: _spec(PingCheck, (*CONN_KWS, *POLL_KWS)),
    UdpCheck: _spec(UdpCheck, UDP_KWS, _finish_udp),
    DnsCheck: _spec(
        DnsCheck,
        (*CONN_KWS, *POLL_KWS, Kw("type", "type", _dns_type()), Kw("name", "name", _dns_name())),
    ),
    SmtpCheck: _spec(
        SmtpCheck,
        (
            *CONN_KWS,
            *POLL_KWS,
            Kw("helo_name", "helo_name", text("a host name")),
            Kw("host", "hosts", mode=Mode.BLOCK, spec=SMTP_HOST, repeat=True),
        ),
    ),
    MiscCheck: _spec(
        MiscCheck,
        (
            *POLL_KWS,
            Kw("misc_path", "misc_path", script()),
            Kw("misc_timeout", "misc_timeout", uint(0, UINT32_MAX // 1000000)),
            Kw("misc_dynamic", "misc_dynamic", mode=Mode.FLAG),
            Kw("user", "user", _words_conv("a user name [group]")),
        ),
        _finish_misc,
    ),
    FileCheck: _spec(
        FileCheck,
        (
            Kw("track_file", "track_file", text("a track_file name")),
            Kw("weight", "weight", track_weight()),
        ),
        _finish_file,
    ),
    BfdCheck: _spec(
        BfdCheck,
        (Kw("name", "name", text("a bfd_instance name")), Kw("alpha", "alpha", boolean())),
        _finish_bfd,
    ),
}

_ONCE: dict[type[Checker], tuple[str, ...]] = {DnsCheck: ("name",)}


def render_checkers(value: Sequence[Checker]) -> list[RNode]:
    """The checker blocks of a real server, in order."""
    out = []
    for chk in value:
        spec = CHECKER_SPECS[type(chk)]
        out.append(RNode((spec.name,), render_block(spec, chk)))
    return out


def _checker_kw(cls: type[Checker], first: bool) -> Kw:
    spec = CHECKER_SPECS[cls]
    return Kw(
        cls.keyword,
        "checkers",
        mode=Mode.BLOCK,
        spec=spec,
        repeat=True,
        parse_node=block_parser(spec, once=_ONCE.get(cls, ())),
        render_value=render_checkers if first else (lambda v: []),
    )


#: The checker keywords of real_server; all append to RealServer.checkers.
CHECKER_KWS: tuple[Kw, ...] = tuple(
    _checker_kw(cls, i == 0) for i, cls in enumerate(CHECKER_CLASSES)
)
