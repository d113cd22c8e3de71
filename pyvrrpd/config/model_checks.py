"""Health checker model blocks of keepalived.conf (the checkers inside ``real_server``).

One class per checker keyword. Fields left at ``None`` are inherited at run time from the
real server, then the virtual server (see :mod:`pyvrrpd.config.lvs_effective`); timers are
seconds as floats. Per-checker defaults that differ from the usual ones (``retry`` 1,
``delay_before_retry`` 1 s) are class attributes ``default_retry`` and
``default_delay_before_retry`` (None means "the checker's delay_loop").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .convert import IPAddress
from .schema import Located


@dataclass(frozen=True, slots=True, kw_only=True)
class Checker(Located):
    """Base of every checker block."""

    keyword: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolledChecker(Checker):
    """A checker run every ``delay_loop`` with keepalived's retry options."""

    default_retry: ClassVar[int] = 1
    default_delay_before_retry: ClassVar[float | None] = 1.0

    alpha: bool | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    log_all_failures: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectOptions(Located):
    """Where a checker connects to and from (``connect_ip``, ``bindto``...)."""

    connect_ip: IPAddress | None = None  # default: the real server's address
    connect_port: int | None = None  # default: the real server's port
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float | None = None  # default: real server, then virtual server (5 s)
    fwmark: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnChecker(PolledChecker):
    """A polled checker that opens a connection (all but MISC, FILE and BFD)."""

    connect_ip: IPAddress | None = None
    connect_port: int | None = None
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float | None = None
    fwmark: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpCheck(ConnChecker):
    """TCP_CHECK: a TCP connection must succeed."""

    keyword: ClassVar[str] = "TCP_CHECK"


@dataclass(frozen=True, slots=True, kw_only=True)
class PingCheck(ConnChecker):
    """PING_CHECK: an ICMP echo must be answered."""

    keyword: ClassVar[str] = "PING_CHECK"


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpCheck(ConnChecker):
    """UDP_CHECK: a datagram is sent; an ICMP error (or a wrong reply) fails."""

    keyword: ClassVar[str] = "UDP_CHECK"

    payload: str | None = None  # hex string as written (random payload when None)
    #: None: no reply needed; "": any reply; else the hex the reply must start with
    #: (X/x nibbles are wildcards).
    require_reply: str | None = None
    min_reply_length: int = 0
    max_reply_length: int = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsCheck(ConnChecker):
    """DNS_CHECK: a DNS query must be answered."""

    keyword: ClassVar[str] = "DNS_CHECK"
    default_retry: ClassVar[int] = 3
    default_delay_before_retry: ClassVar[float | None] = None

    type: str = "SOA"
    name: str = "."


@dataclass(frozen=True, slots=True, kw_only=True)
class Url(Located):
    """One ``url {}`` of HTTP_GET/SSL_GET."""

    path: str | None = None
    digest: str | None = None  # 32 hex digits (MD5)
    status_code: tuple[tuple[int, int], ...] = ()  # ranges; empty means 200-299
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: tuple[str, ...] = ()
    regex_stack: tuple[int, int] | None = None
    regex_min_offset: int | None = None
    regex_max_offset: int | None = None
    tls_compliant: bool | None = None


class HttpProtocol:
    """The values of ``http_protocol``."""

    V1_0 = "1.0"
    V1_0C = "1.0C"
    V1_1 = "1.1"
    ALL = (V1_0, V1_0C, V1_1)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpGet(ConnChecker):
    """HTTP_GET: each URL must answer with an accepted status (and digest/regex)."""

    keyword: ClassVar[str] = "HTTP_GET"
    default_delay_before_retry: ClassVar[float | None] = 3.0

    urls: tuple[Url, ...] = ()
    virtualhost: str | None = None
    http_protocol: str = HttpProtocol.V1_0
    fast_recovery: bool = False
    enable_sni: bool = False
    sni_name: str | None = None
    tls_compliant: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SslGet(HttpGet):
    """SSL_GET: HTTP_GET over TLS (uses the top-level SSL block)."""

    keyword: ClassVar[str] = "SSL_GET"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpHost(ConnectOptions):
    """An old-style ``host {}`` of SMTP_CHECK: one more address to check."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpCheck(ConnChecker):
    """SMTP_CHECK: the SMTP server must greet and accept HELO."""

    keyword: ClassVar[str] = "SMTP_CHECK"

    helo_name: str | None = None  # default: the host name
    hosts: tuple[SmtpHost, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MiscCheck(PolledChecker):
    """MISC_CHECK: a script's exit status decides (and may set the weight)."""

    keyword: ClassVar[str] = "MISC_CHECK"
    default_retry: ClassVar[int] = 0

    misc_path: tuple[str, ...] = ()  # the command line as written (quoted string = one word)
    misc_timeout: int | None = None  # seconds; default: delay_loop
    misc_dynamic: bool = False
    user: tuple[str, ...] | None = None  # user [group]


@dataclass(frozen=True, slots=True)
class TrackWeight:
    """FILE_CHECK ``weight N [reverse]``: multiplier of the tracked file's value."""

    weight: int
    reverse: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCheck(Checker):
    """FILE_CHECK: a ``track_file``'s value adjusts the weight."""

    keyword: ClassVar[str] = "FILE_CHECK"

    track_file: str | None = None
    weight: TrackWeight | None = None  # default: the track_file's own weight


@dataclass(frozen=True, slots=True, kw_only=True)
class BfdCheck(Checker):
    """BFD_CHECK: follows a ``bfd_instance``'s state."""

    keyword: ClassVar[str] = "BFD_CHECK"

    name: str | None = None
    alpha: bool | None = None


#: Every checker class, in keepalived.conf(5) order.
CHECKER_CLASSES: tuple[type[Checker], ...] = (
    HttpGet,
    SslGet,
    TcpCheck,
    SmtpCheck,
    DnsCheck,
    MiscCheck,
    BfdCheck,
    UdpCheck,
    PingCheck,
    FileCheck,
)
