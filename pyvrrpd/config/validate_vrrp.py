"""Semantic checks of the VRRP side, in keepalived's terms.

Whatever keepalived 2.2.7 reports as a configuration error (``keepalived -t`` exit 5)
is an ERROR here; pitfalls that keepalived accepts are warnings (see lint_vrrp).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import lint_vrrp, validate_vrrp_refs
from .env import Environment
from .errors import SourceLoc
from .model import Config
from .model_vrrp import PRIO_OWNER, GlobalDefs, State, VrrpInstance
from .model_vrrp_items import AuthType
from .schema import Ctx

UNICAST_KEYWORDS = ("unicast_src_ip", "check_unicast_src", "unicast_ttl", "old_unicast_checksum")


def loc_of(obj: Any, field: str | None = None) -> SourceLoc | None:
    """Where ``field`` of a model object was set, else where the object starts."""
    if field is not None:
        loc: SourceLoc | None = obj.locs.get(field)
        if loc is not None:
            return loc
    return obj.loc  # type: ignore[no-any-return]


def check(config: Config, env: Environment, ctx: Ctx) -> None:
    """Add the VRRP side's diagnostics for ``config`` to ``ctx``."""
    g = config.global_defs
    seen: dict[str, VrrpInstance] = {}
    for inst in config.vrrp_instances:
        if inst.name in seen:
            ctx.error(
                inst.loc,
                f"vrrp instance {inst.name} already defined",
                f"rename it; the first is at {seen[inst.name].loc}",
                "duplicate",
            )
            continue
        seen[inst.name] = inst
        check_instance(inst, g, ctx)
    _check_duplicate_vrids(list(seen.values()), g, ctx)
    validate_vrrp_refs.check(config, env, ctx)
    lint_vrrp.check(config, env, ctx)


def instance_family(inst: VrrpInstance, ctx: Ctx | None = None) -> int:
    """The instance's family as keepalived deduces it, reporting what does not match."""
    items: list[tuple[SourceLoc | None, int, str, str]] = []
    if inst.native_ipv6:
        items.append((loc_of(inst, "native_ipv6"), 6, "native_ipv6", "native_ipv6"))
    for field in ("mcast_src_ip", "unicast_src_ip", "mcast_dst_ip"):
        value = getattr(inst, field)
        if value is not None:
            items.append((loc_of(inst, field), value.version, field, str(value)))
    for vip in inst.virtual_ipaddresses:
        items.append((vip.loc, vip.family, "vip", str(vip.address.ip)))
    for peer in inst.unicast_peers:
        items.append((peer.loc, peer.address.version, "unicast peer", str(peer.address)))
    items.sort(key=lambda it: (it[0] is None, it[0] or SourceLoc("", 0)))
    family = 0
    for loc, fam, what, text in items:
        if not family:
            family = fam
        elif fam != family and ctx is not None:
            if what == "vip":
                msg = f"({inst.name}) address family must match VRRP instance [{text}] - ignoring"
            elif what == "native_ipv6":
                msg = f"({inst.name}) cannot specify native_ipv6 with IPv4 addresses"
            else:
                msg = f"({inst.name}) {what} {text} must be of the same family as the instance"
            ctx.error(
                loc,
                msg,
                f"an instance is IPv4 or IPv6 (here IPv{family}); use a second instance "
                "or virtual_ipaddress_excluded for the other family",
                "family",
            )
    return family or 4


def _configured_unicast(inst: VrrpInstance) -> bool:
    return "unicast_peers" in inst.locs or any(k in inst.locs for k in UNICAST_KEYWORDS)


def check_instance(inst: VrrpInstance, g: GlobalDefs, ctx: Ctx) -> None:
    """Checks that concern one vrrp_instance."""
    name = inst.name
    family = instance_family(inst, ctx)
    version = inst.version
    if version == 2 and family == 6:
        ctx.error(
            loc_of(inst, "version"),
            f"({name}) version 2 conflicts with IPv6 addresses (VRRPv2 is IPv4 only)",
            "use version 3",
            "version",
        )
    strict = inst.effective_strict(g)
    if version is None:
        version = 3 if family == 6 else g.vrrp_version
    if inst.virtual_router_id is None:
        ctx.error(
            inst.loc,
            f"({name}) the virtual router id must be set",
            "add 'virtual_router_id 1..255'",
            "missing",
        )
    if inst.interface is None and not inst.unicast:
        ctx.error(inst.loc, f"({name}) Unknown interface!", "add 'interface NAME'", "missing")
    if inst.interface is None and inst.unicast and inst.source_ip is None:
        ctx.error(
            inst.loc,
            f"({name}): unicast instances must have unicast_src_ip or interface",
            "add 'interface NAME' or 'unicast_src_ip ADDRESS'",
            "missing",
        )
    if not inst.virtual_ipaddresses:
        need = "required" if version == 3 or strict else "sensible"
        ctx.error(
            inst.loc,
            f"({name}) No VIP specified; at least one is {need}",
            "add a virtual_ipaddress block",
            "missing",
        )
    prio = inst.effective_priority
    state = inst.effective_state
    if strict and inst.state is not None and (inst.state is State.MASTER) != (prio == PRIO_OWNER):
        ctx.error(
            loc_of(inst, "state"),
            f"({name}) State MASTER must match being address owner",
            "with vrrp_strict/strict_mode only the priority-255 owner may start as MASTER",
            "strict",
        )
        state = State.MASTER if prio == PRIO_OWNER else State.BACKUP
    _check_auth(inst, family, version, strict, state, prio, ctx)
    if strict and inst.unicast and inst.interface is not None:
        ctx.error(
            loc_of(inst, "unicast_peers"),
            f"({name}) Unicast peers are not supported in strict mode",
            "remove vrrp_strict/strict_mode or the unicast_peer block",
            "strict",
        )
    if _configured_unicast(inst) and not inst.unicast and not inst.unicast_fault_no_peer:
        field = next((k for k in ("unicast_peers", *UNICAST_KEYWORDS) if k in inst.locs), None)
        ctx.error(
            loc_of(inst, field),
            f"({name}) A unicast keyword has been specified without any unicast peers. "
            "Defaulting to multicast (deprecated usage)",
            "add peers to unicast_peer, or remove the unicast keywords",
            "unicast",
        )
    if inst.unicast_ttl is not None and not inst.unicast:
        ctx.error(
            loc_of(inst, "unicast_ttl"),
            f"({name}): Cannot use unicast_ttl without unicast peers - resetting",
            "add unicast_peer addresses or remove unicast_ttl",
            "unicast",
        )
    if inst.mcast_dst_ip is not None:
        if inst.unicast:
            ctx.error(
                loc_of(inst, "mcast_dst_ip"),
                f"({name}) multicast destination specified with unicast - ignoring",
                "remove mcast_dst_ip",
                "unicast",
            )
        elif not inst.mcast_dst_ip.is_multicast or (
            inst.mcast_dst_ip.version == 6 and not str(inst.mcast_dst_ip).startswith("ff02:")
        ):
            ctx.error(
                loc_of(inst, "mcast_dst_ip"),
                f"({name}) mcast_dst_ip {inst.mcast_dst_ip} not (link-local) multicast",
                "use 224.0.0.0/4 or ff02::/16",
                "bad-value",
            )
    _check_preempt(inst, strict, state, prio, ctx)
    _check_strict_timers(inst, strict, ctx)
    _check_advert_int(inst, version, ctx)
    _check_vmac(inst, ctx)


def _check_auth(
    inst: VrrpInstance, family: int, version: int, strict: bool, state: State, prio: int, ctx: Ctx
) -> None:
    auth = inst.authentication
    if auth is None or auth.auth_type is None:
        return
    name, loc = inst.name, loc_of(inst, "authentication")
    if strict:
        ctx.error(
            loc,
            f"({name}) Strict mode does not support authentication. Ignoring.",
            "remove the authentication block (vrrp_strict forbids it)",
            "strict",
        )
    elif version == 3:
        ctx.error(
            loc,
            f"({name}) VRRP version 3 does not support authentication. Ignoring.",
            "remove the authentication block or use version 2",
            "auth",
        )
    elif not auth.auth_pass:
        ctx.error(
            loc,
            f"({name}) Authentication specified but no password given. Ignoring",
            "add 'auth_pass SECRET'",
            "auth",
        )
    elif family == 6 and auth.auth_type is AuthType.AH:
        ctx.error(
            loc,
            f"({name}) Cannot use AH authentication with IPv6. ignoring",
            "use auth_type PASS or none",
            "auth",
        )
    elif auth.auth_type is AuthType.AH and state is State.MASTER and prio != PRIO_OWNER:
        ctx.error(
            loc_of(inst, "state"),
            f"({name}) Initial state master is incompatible with AH authentication - clearing",
            "use 'state BACKUP' (AH needs a received advert before taking over)",
            "auth",
        )
    if auth.auth_pass is not None and len(auth.auth_pass) > 8:
        ctx.error(
            loc_of(auth, "auth_pass"),
            f"({name}) Truncating auth_pass to 8 characters",
            "use at most 8 characters",
            "auth",
        )


def _check_preempt(inst: VrrpInstance, strict: bool, state: State, prio: int, ctx: Ctx) -> None:
    name = inst.name
    nopreempt_loc = loc_of(inst, "nopreempt")
    if inst.nopreempt and prio == PRIO_OWNER:
        ctx.error(
            nopreempt_loc,
            f"({name}) nopreempt is incompatible with priority 255. resetting nopreempt",
            "the address owner always preempts; remove nopreempt",
            "pitfall",
        )
    elif inst.nopreempt and state is State.MASTER:
        ctx.error(
            nopreempt_loc,
            f"({name}) Warning - nopreempt will not work with initial state MASTER - clearing",
            "nopreempt needs 'state BACKUP' on every node",
            "pitfall",
        )
    if inst.preempt_delay:
        loc = loc_of(inst, "preempt_delay")
        if state is State.MASTER:
            ctx.error(
                loc,
                f"({name}) Warning - preempt delay will not work with initial state "
                "MASTER - clearing",
                "preempt_delay needs 'state BACKUP'",
                "pitfall",
            )
        elif strict:
            ctx.error(
                loc,
                f"({name}) preempt_delay is incompatible with strict mode - resetting",
                "remove preempt_delay or vrrp_strict",
                "strict",
            )
        elif inst.nopreempt:
            ctx.error(
                loc,
                f"({name}) preempt_delay is incompatible with nopreempt mode - resetting",
                "keep only one of nopreempt and preempt_delay",
                "pitfall",
            )


def _check_strict_timers(inst: VrrpInstance, strict: bool, ctx: Ctx) -> None:
    if not strict:
        return
    name = inst.name
    checks: Iterable[tuple[str, bool, str]] = (
        (
            "down_timer_adverts",
            inst.down_timer_adverts != 3,
            "down_timer_adverts is incompatible with strict mode - resetting",
        ),
        (
            "garp_lower_prio_repeat",
            bool(inst.garp_lower_prio_repeat),
            "Strict mode requires no repeat garps. resetting",
        ),
        (
            "garp_lower_prio_delay",
            bool(inst.garp_lower_prio_delay),
            "Strict mode requires no repeat garp delay. resetting",
        ),
        (
            "lower_prio_no_advert",
            inst.lower_prio_no_advert is False,
            "Strict mode requires no lower priority advert. resetting",
        ),
        (
            "higher_prio_send_advert",
            inst.higher_prio_send_advert is True,
            "strict mode requires higher_prio_send_advert to be clear. resetting",
        ),
        (
            "accept",
            inst.accept is True
            and inst.effective_priority != PRIO_OWNER
            and inst.version != 3
            and inst.family == 4,
            "warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting",
        ),
    )
    for field, bad, msg in checks:
        if bad:
            ctx.error(
                loc_of(inst, field),
                f"({name}) {msg}",
                f"remove '{field}' or vrrp_strict/strict_mode",
                "strict",
            )


def _check_advert_int(inst: VrrpInstance, version: int, ctx: Ctx) -> None:
    adv = inst.advert_int
    loc = loc_of(inst, "advert_int")
    centis = round(adv * 100)
    if version == 2 and abs(adv - round(adv)) > 1e-9:
        ctx.error(
            loc,
            f"({inst.name}) VRRPv2 advertisement interval {adv:f}s must be an integer. rounding",
            "VRRPv2 adverts carry whole seconds; use version 3 for sub-second intervals",
            "advert-int",
        )
    elif version == 3 and centis >= 4096:
        ctx.error(
            loc,
            f"({inst.name}) VRRPv3 advertisement interval {adv:.2f}s is out of range. "
            "Must be less than 40.96s",
            "use at most 40.95",
            "advert-int",
        )
    elif version == 3 and abs(adv * 100 - centis) > 1e-6:
        ctx.error(
            loc,
            f"({inst.name}) VRRPv3 advertisement interval {adv:f}s must be in units of "
            "10ms - rounding",
            "use a multiple of 0.01",
            "advert-int",
        )


def _check_vmac(inst: VrrpInstance, ctx: Ctx) -> None:
    if inst.vmac_xmit_base and inst.use_vmac is None:
        ctx.error(
            loc_of(inst, "vmac_xmit_base"),
            f"({inst.name}) vmac_xmit_base is only valid with a vmac",
            "add use_vmac or remove vmac_xmit_base",
            "vmac",
        )
    if inst.use_vmac is not None and inst.unicast:
        if inst.interface is None:
            ctx.error(
                loc_of(inst, "use_vmac"),
                f"({inst.name}): Cannot use VMAC with unicast and no interface - clearing use_vmac",
                "add 'interface NAME'",
                "vmac",
            )
        elif not inst.vmac_xmit_base:
            ctx.error(
                loc_of(inst, "use_vmac"),
                f"({inst.name}) unicast with use_vmac requires vmac_xmit_base - setting",
                "add vmac_xmit_base",
                "vmac",
            )


def _check_duplicate_vrids(insts: list[VrrpInstance], g: GlobalDefs, ctx: Ctx) -> None:
    for i, a in enumerate(insts):
        for b in insts[:i]:
            if a.virtual_router_id is None or a.virtual_router_id != b.virtual_router_id:
                continue
            fa, fb = instance_family(a), instance_family(b)
            if fa != fb or a.interface != b.interface:
                continue
            if a.unicast or b.unicast:
                if not (a.unicast and b.unicast) or a.source_ip != b.source_ip:
                    continue
                if not {p.address for p in a.unicast_peers} & {p.address for p in b.unicast_peers}:
                    continue
            elif a.interface is None or a.multicast_group(g) != b.multicast_group(g):
                continue
            ctx.error(
                loc_of(a, "virtual_router_id"),
                f"{b.name} and {a.name} both use VRID {a.virtual_router_id} with IPv{fa} "
                f"on interface {a.interface}",
                f"give each instance on one interface its own virtual_router_id "
                f"(the other is at {loc_of(b, 'virtual_router_id')})",
                "duplicate-vrid",
            )
