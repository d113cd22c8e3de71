"""Config checker blocks -> runnable checks (:mod:`pyvrrpd.checks`) and their schedules.

No I/O happens here; the check objects only run when the engine subscribes them. Targets
and timers follow keepalived's defaults and inheritance (:mod:`pyvrrpd.config.lvs_effective`):
a checker connects to ``connect_ip``/``connect_port``, else the real server's address and
the port keepalived programs for it; DNS_CHECK defaults to port 53.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pyvrrpd.checks import dns, file, http, misc, ping, smtp, tcp, udp
from pyvrrpd.checks.base import Checker as Check
from pyvrrpd.checks.base import Schedule
from pyvrrpd.checks.conn import Endpoint
from pyvrrpd.config import model_checks as mc
from pyvrrpd.config.lvs_effective import effective_checker, effective_port, effective_real_server
from pyvrrpd.config.model import Config
from pyvrrpd.config.model_lvs import RealServer, VirtualServer
from pyvrrpd.scripts import split_script

DNS_PORT = 53
#: FILE_CHECK polls (keepalived uses inotify): at most this many seconds between reads.
FILE_POLL = 1.0


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One runnable check of a real server and its schedule."""

    check: Check
    schedule: Schedule

    @property
    def key(self) -> tuple[Hashable, Schedule]:
        """Identity of the check (equal specs are one shared check)."""
        return (self.check, self.schedule)


class Unsupported(ValueError):
    """A checker this build cannot run (e.g. BFD_CHECK)."""


def _endpoint(
    vs: VirtualServer, rs: RealServer, chk: mc.ConnChecker | mc.SmtpHost, default_port: int = 0
) -> Endpoint:
    ers = effective_real_server(vs, rs)
    port = chk.connect_port
    if port is None:
        port = effective_port(vs, rs) or default_port
    timeout = chk.connect_timeout if chk.connect_timeout is not None else ers.connect_timeout
    return Endpoint(
        address=chk.connect_ip or rs.address,
        port=port,
        bindto=chk.bindto,
        bind_port=chk.bind_port,
        bind_if=chk.bind_if,
        fwmark=chk.fwmark,
        connect_timeout=timeout,
    )


def schedule_for(vs: VirtualServer, rs: RealServer, chk: mc.Checker) -> Schedule:
    """keepalived's timers of ``chk`` after inheritance."""
    eff = effective_checker(vs, rs, chk)
    if not isinstance(chk, mc.PolledChecker):
        return Schedule(delay_loop=min(eff.delay_loop, FILE_POLL), retry=0, alpha=eff.alpha)
    return Schedule(
        delay_loop=eff.delay_loop,
        retry=eff.retry,
        delay_before_retry=eff.delay_before_retry,
        alpha=eff.alpha,
        warmup=eff.warmup,
    )


def _urls(chk: mc.HttpGet) -> tuple[http.Url, ...]:
    return tuple(
        http.Url(
            path=u.path or "/",
            digest=u.digest,
            status_code=u.status_code,
            virtualhost=u.virtualhost,
            regex=u.regex,
            regex_no_match=u.regex_no_match,
        )
        for u in chk.urls
    )


def _tls(config: Config) -> http.TlsParams:
    s = config.ssl
    if s is None:
        return http.TlsParams()
    return http.TlsParams(certfile=s.certificate, keyfile=s.key, password=s.password, cafile=s.ca)


def _udp(ep: Endpoint, chk: mc.UdpCheck) -> udp.UdpCheck:
    payload = None
    if chk.payload is not None:
        payload, _ = udp.parse_hex_pattern(chk.payload)
    data = mask = b""
    if chk.require_reply:
        data, mask = udp.parse_hex_pattern(chk.require_reply)
    return udp.UdpCheck(
        ep,
        payload=payload,
        require_reply=chk.require_reply is not None,
        reply_data=data,
        reply_mask=mask,
        min_reply_length=chk.min_reply_length,
        max_reply_length=chk.max_reply_length,
    )


def _file(config: Config, chk: mc.FileCheck) -> file.FileCheck:
    tf = next((t for t in config.track_files if t.name == chk.track_file), None)
    if tf is None or tf.file is None:
        raise ValueError(f"FILE_CHECK track_file {chk.track_file!r} is not defined")
    if chk.weight is not None:
        return file.FileCheck(tf.file, chk.weight.weight, chk.weight.reverse)
    return file.FileCheck(tf.file, tf.weight.value, tf.weight.reverse)


def _misc(vs: VirtualServer, rs: RealServer, chk: mc.MiscCheck) -> misc.MiscCheck:
    if not chk.misc_path:
        raise ValueError("MISC_CHECK has no misc_path")
    argv = tuple(split_script(" ".join(chk.misc_path)))
    timeout = chk.misc_timeout or effective_checker(vs, rs, chk).delay_loop
    user = chk.user[0] if chk.user else None
    group = chk.user[1] if chk.user and len(chk.user) > 1 else None
    return misc.MiscCheck(argv, float(timeout), chk.misc_dynamic, user, group)


def build_checks(config: Config, vs: VirtualServer, rs: RealServer, chk: mc.Checker) -> list[Check]:
    """The runnable checks of one checker block (SMTP_CHECK gives one per host)."""
    if isinstance(chk, mc.MiscCheck):
        return [_misc(vs, rs, chk)]
    if isinstance(chk, mc.FileCheck):
        return [_file(config, chk)]
    if isinstance(chk, mc.HttpGet):  # SSL_GET included
        ers = effective_real_server(vs, rs)
        return [
            http.HttpCheck(
                _endpoint(vs, rs, chk),
                _urls(chk),
                virtualhost=chk.virtualhost or ers.virtualhost,
                http_protocol=chk.http_protocol,
                tls=_tls(config) if isinstance(chk, mc.SslGet) else None,
                enable_sni=chk.enable_sni,
                sni_name=chk.sni_name,
            )
        ]
    if isinstance(chk, mc.SmtpCheck):
        helo = chk.helo_name or config.global_defs.smtp_helo_name or smtp.DEFAULT_HELO
        targets = [_endpoint(vs, rs, h) for h in chk.hosts] or [_endpoint(vs, rs, chk)]
        return [smtp.SmtpCheck(ep, helo) for ep in targets]
    if isinstance(chk, mc.DnsCheck):
        return [dns.DnsCheck(_endpoint(vs, rs, chk, DNS_PORT), chk.type, chk.name)]
    if isinstance(chk, mc.UdpCheck):
        return [_udp(_endpoint(vs, rs, chk), chk)]
    if isinstance(chk, mc.PingCheck):
        return [ping.PingCheck(_endpoint(vs, rs, chk))]
    if isinstance(chk, mc.TcpCheck):
        return [tcp.TcpCheck(_endpoint(vs, rs, chk))]
    raise Unsupported(f"{chk.keyword} is not supported")


def real_server_checks(
    config: Config, vs: VirtualServer, rs: RealServer
) -> tuple[list[CheckSpec], list[str]]:
    """Every check of ``rs`` with its schedule, and problems with the ones left out."""
    specs: list[CheckSpec] = []
    problems: list[str] = []
    for chk in rs.checkers:
        try:
            schedule = schedule_for(vs, rs, chk)
            specs.extend(CheckSpec(c, schedule) for c in build_checks(config, vs, rs, chk))
        except ValueError as exc:
            problems.append(f"{vs.describe()} real server {rs.address}: {exc} - checker ignored")
    return specs, problems
