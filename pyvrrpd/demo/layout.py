"""The lab's addressing plan and the directors' configuration (pure: no I/O).

The configuration has the shape of ``etc/lvs-dr-web.conf`` (one VRRP instance carrying the
VIP, a TCP web service balanced ``rr`` and a UDP DNS service balanced ``sh``, both LVS-DR)
with the lab's addresses and faster health checks, so that failures show in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBNET_PREFIX = 24
VIP = "192.0.2.100"
VRID = 51
ADVERT_INT = 1
WEB_PORT = 80
DNS_PORT = 53
AUTH_PASS = "s3cret"


@dataclass(frozen=True, slots=True)
class Node:
    """One namespace of the lab: its name, role, addresses (first is primary) and MAC."""

    name: str
    role: str  # "director", "web", "dns", "client"
    addrs: tuple[str, ...]
    mac: str

    @property
    def addr(self) -> str:
        return self.addrs[0]


def _mac(addr: str) -> str:
    """A locally administered MAC that spells the IPv4 address (02:00:c0:00:02:0b)."""
    octets = [int(x) for x in addr.split(".")]
    return "02:00:" + ":".join(f"{o:02x}" for o in octets)


def _node(name: str, role: str, *addrs: str) -> Node:
    return Node(name, role, addrs, _mac(addrs[0]))


DIRECTORS = (
    _node("director1", "director", "192.0.2.1"),
    _node("director2", "director", "192.0.2.2"),
)
WEB = (_node("web1", "web", "192.0.2.11"), _node("web2", "web", "192.0.2.12"))
DNS = (_node("dns1", "dns", "192.0.2.21"), _node("dns2", "dns", "192.0.2.22"))
CLIENT = _node("client", "client", "192.0.2.50", "192.0.2.51")


def nodes(full: bool) -> tuple[Node, ...]:
    """Every node of the lab; without the real servers when `full` is false (VRRP only)."""
    if full:
        return (*DIRECTORS, *WEB, *DNS, CLIENT)
    return (*DIRECTORS, CLIENT)


@dataclass(frozen=True, slots=True)
class CheckTiming:
    """Health-check knobs (etc/lvs-dr-web.conf uses 5/3/2/2; the demo wants seconds)."""

    delay_loop: int = 1
    connect_timeout: int = 1
    retry: int = 1
    delay_before_retry: int = 1


@dataclass(frozen=True, slots=True)
class DirectorRole:
    """What differs between the two directors' files."""

    router_id: str
    state: str
    priority: int


ROLES = (
    DirectorRole("LVS_DIRECTOR_1", "MASTER", 150),
    DirectorRole("LVS_DIRECTOR_2", "BACKUP", 100),
)


def master_down_interval(priority: int, advert_int: float = ADVERT_INT) -> float:
    """RFC 3768 (VRRPv2): 3 * advert_int + (256 - priority) / 256 seconds."""
    return 3 * advert_int + (256 - priority) / 256


def director_config(role: DirectorRole, timing: CheckTiming = CheckTiming()) -> str:
    """keepalived.conf text for one director of the lab."""
    web = "".join(_real_server(n.addr, WEB_PORT, _tcp_check(timing)) for n in WEB)
    dns = "".join(_real_server(n.addr, DNS_PORT, _dns_check(timing)) for n in DNS)
    return f"""\
# LVS-DR director of the pyvrrpd demo (generated; the shape of etc/lvs-dr-web.conf).

global_defs {{
    router_id {role.router_id}
    enable_script_security
    script_user root
}}

vrrp_instance VI_WEB {{
    state {role.state}
    interface eth0
    virtual_router_id {VRID}
    priority {role.priority}
    advert_int {ADVERT_INT}
    authentication {{
        auth_type PASS
        auth_pass {AUTH_PASS}
    }}
    virtual_ipaddress {{
        {VIP}/{SUBNET_PREFIX} dev eth0
    }}
}}

virtual_server {VIP} {WEB_PORT} {{
    delay_loop {timing.delay_loop}
    lb_algo rr
    lb_kind DR
    protocol TCP
{web}}}

virtual_server {VIP} {DNS_PORT} {{
    delay_loop {timing.delay_loop}
    lb_algo sh
    lb_kind DR
    protocol UDP
{dns}}}
"""


def _real_server(addr: str, port: int, check: str) -> str:
    return f"""
    real_server {addr} {port} {{
        weight 1
{check}    }}
"""


def _tcp_check(t: CheckTiming) -> str:
    return f"""\
        TCP_CHECK {{
            connect_timeout {t.connect_timeout}
            retry {t.retry}
            delay_before_retry {t.delay_before_retry}
        }}
"""


def _dns_check(t: CheckTiming) -> str:
    return f"""\
        DNS_CHECK {{
            connect_timeout {t.connect_timeout}
            retry {t.retry}
            delay_before_retry {t.delay_before_retry}
            type A
            name example.org
        }}
"""
