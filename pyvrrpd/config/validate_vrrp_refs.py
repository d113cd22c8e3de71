"""Cross-reference checks of the VRRP side: trackers, sync groups, routes, interfaces."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .env import Environment
from .errors import SourceLoc
from .model import Config
from .model_vrrp import PRIO_OWNER, VrrpInstance, VrrpSyncGroup
from .model_vrrp_items import TrackedObject, VirtualRoute, VirtualRule
from .schema import Ctx


def _loc(obj: Any, field: str | None = None) -> SourceLoc | None:
    if field is not None and field in obj.locs:
        loc: SourceLoc = obj.locs[field]
        return loc
    return obj.loc  # type: ignore[no-any-return]


def _before(a: SourceLoc | None, b: SourceLoc | None) -> bool:
    """True when ``a`` is known to come after ``b`` in the same file is False."""
    if a is None or b is None or a.file != b.file:
        return True
    return a.line < b.line


def check(config: Config, env: Environment, ctx: Ctx) -> None:
    """Trackers, sync groups, routes/rules, garp groups and interface existence."""
    _check_trackers(config, ctx)
    _check_sync_groups(config, ctx)
    for inst in config.vrrp_instances:
        _check_routes(inst.virtual_routes, ctx, "virtual_routes")
        _check_rules(inst.virtual_rules, ctx, "virtual_rules")
    _check_routes(config.static_routes, ctx, "static_routes")
    _check_rules(config.static_rules, ctx, "static_rules")
    for gg in config.garp_groups:
        if gg.garp_interval is None and gg.gna_interval is None:
            ctx.error(
                gg.loc,
                "garp group does not have any delay set - removing",
                "add garp_interval and/or gna_interval",
                "missing",
            )
    lvs = config.global_defs.lvs_sync_daemon
    if lvs and len(lvs) > 1 and lvs[1] not in _LVS_OPTIONS and not config.instance(lvs[1]):
        ctx.error(
            _loc(config.global_defs, "lvs_sync_daemon"),
            f"Unable to find vrrp instance {lvs[1]} for lvs_syncd - clearing lvs_syncd config",
            "name an existing vrrp_instance",
            "unknown-ref",
        )
    if env.interfaces is not None and config.global_defs.dynamic_interfaces is None:
        _check_interfaces(config, env.interfaces, ctx)


_LVS_OPTIONS = ("id", "maxlen", "port", "ttl", "group")


def _effective_weights(config: Config, kind: str, t: TrackedObject) -> int:
    if t.weight is not None:
        return t.weight
    if kind == "script":
        s = next((s for s in config.vrrp_scripts if s.name == t.name), None)
        return s.weight.value if s else 0
    if kind == "file":
        f = next((f for f in config.track_files if f.name == t.name), None)
        return f.weight.value if f else 1
    if kind == "process":
        p = next((p for p in config.track_processes if p.name == t.name), None)
        return p.weight.value if p else 0
    return 0


def _trackers(owner: Any) -> Iterator[tuple[str, TrackedObject]]:
    for kind in ("interface", "script", "file", "process"):
        for t in getattr(owner, f"track_{kind}{'es' if kind == 'process' else 's'}"):
            yield kind, t


def _check_trackers(config: Config, ctx: Ctx) -> None:
    defined: dict[str, dict[str, Any]] = {
        "script": {s.name: s for s in config.vrrp_scripts},
        "file": {f.name: f for f in config.track_files},
        "process": {p.name: p for p in config.track_processes},
    }
    used: set[tuple[str, str]] = set()
    owners: Sequence[VrrpInstance | VrrpSyncGroup] = (
        *config.vrrp_instances,
        *config.vrrp_sync_groups,
    )
    for owner in owners:
        seen: set[tuple[str, str]] = set()
        for kind, t in _trackers(owner):
            if (kind, t.name) in seen:
                ctx.error(
                    t.loc,
                    f"({owner.name}) duplicate track_{kind} {t.name} - ignoring",
                    "list each tracked object once",
                    "duplicate",
                )
                continue
            seen.add((kind, t.name))
            if kind == "interface":
                continue
            target = defined[kind].get(t.name)
            if target is None or not _before(target.loc, t.loc):
                block = {"script": "vrrp_script", "file": "track_file"}.get(
                    kind, "vrrp_track_" + kind
                )
                where = "" if target is None else f" before its definition at {target.loc}"
                ctx.error(
                    t.loc,
                    f"({owner.name}) track {kind} {t.name} not found{where}, ignoring...",
                    f"define '{block} {t.name} {{ ... }}' above its first use",
                    "unknown-ref",
                )
                continue
            used.add((kind, t.name))
    for s in config.vrrp_scripts:
        if not s.script:
            ctx.error(
                s.loc,
                f"No script set for vrrp_script {s.name} - removing",
                "add 'script \"/path/to/check\"'",
                "missing",
            )
        elif ("script", s.name) not in used:
            ctx.error(
                s.loc,
                f"Warning - script {s.name} is not used",
                "reference it from a track_script block or remove it",
                "unused",
            )
    for f in config.track_files:
        if not f.file:
            ctx.error(
                f.loc,
                f"No file set for track_file {f.name} - ignoring",
                "add 'file /path'",
                "missing",
            )
    for p in config.track_processes:
        if not p.process:
            ctx.error(
                p.loc,
                f"track process '{p.name}' process name not specified",
                "add 'process NAME'",
                "missing",
            )
    _check_tracker_weights(config, ctx)


def _check_tracker_weights(config: Config, ctx: Ctx) -> None:
    group_of: dict[str, VrrpSyncGroup] = {}
    for sg in config.vrrp_sync_groups:
        for member in sg.group:
            group_of.setdefault(member, sg)
    for inst in config.vrrp_instances:
        grp = group_of.get(inst.name)
        owner = inst.effective_priority == PRIO_OWNER
        no_weights = grp is not None and not grp.sync_group_tracking_weight
        if not (owner or no_weights):
            continue
        why = "SYNC group" if no_weights else "address owner"
        for kind, t in _trackers(inst):
            if kind == "interface" and inst.interface == t.name:
                continue
            if _effective_weights(config, kind, t):
                ctx.error(
                    t.loc,
                    f"({inst.name}) ignoring weight of tracked {kind} {t.name} due to {why}",
                    "use 'weight 0' (or sync_group_tracking_weight in the sync group)"
                    if no_weights
                    else "the priority-255 owner cannot have its priority "
                    "changed; use weight 0 or a lower priority",
                    "tracker-weight",
                )
    for inst in config.vrrp_instances:
        grp = group_of.get(inst.name)
        for t in inst.track_interfaces:
            if t.name == inst.interface:
                ctx.error(
                    t.loc,
                    f"({inst.name}) Ignoring track_interface {t.name} since own interface",
                    "the instance's own interface is always tracked",
                    "tracker",
                )
            elif grp is not None and any(x.name == t.name for x in grp.track_interfaces):
                ctx.error(
                    t.loc,
                    f"({inst.name}) track_interface {t.name} is configured on VRRP "
                    "instance and sync group",
                    "remove one of them",
                    "tracker",
                )


def _check_sync_groups(config: Config, ctx: Ctx) -> None:
    member_of: dict[str, str] = {}
    for sg in config.vrrp_sync_groups:
        if not sg.group:
            ctx.error(
                sg.loc,
                f"Sync group {sg.name} has no virtual router(s). removing",
                "list the instances in 'group { VI_1 VI_2 }'",
                "missing",
            )
            continue
        members = []
        for name in sg.group:
            inst = config.instance(name)
            loc = _loc(sg, "group")
            if inst is None:
                ctx.error(
                    loc,
                    f"Virtual router {name} specified in sync group {sg.name} doesn't "
                    "exist - ignoring",
                    "name an existing vrrp_instance",
                    "unknown-ref",
                )
            elif name in member_of:
                ctx.error(
                    loc,
                    f"Virtual router {name} cannot exist in more than one sync group; "
                    f"ignoring {sg.name}",
                    f"it is already in {member_of[name]}",
                    "duplicate",
                )
            else:
                member_of[name] = sg.name
                members.append(inst)
        if len(members) == 1:
            ctx.error(
                sg.loc,
                f"Sync group {sg.name} has only 1 virtual router(s) - this probably "
                "isn't what you want",
                "add another instance or drop the sync group",
                "sync-group",
            )
        owners = {m.effective_priority == PRIO_OWNER for m in members}
        if len(owners) > 1:
            ctx.error(
                sg.loc,
                f"Sync group {sg.name} has some member(s) as address owner and some "
                "not as address owner. This won't work.",
                "give all members priority 255 or none",
                "sync-group",
            )


def _check_routes(routes: Sequence[VirtualRoute], ctx: Ctx, block: str) -> None:
    for r in routes:
        dst = "default" if r.dst is None else str(r.dst.network)
        if not r.no_track:
            if r.protocol is not None and r.protocol not in ("keepalived", "18"):
                ctx.error(
                    r.loc,
                    f"{block}: route cannot be tracked if protocol is not "
                    "keepalived(18), resetting protocol",
                    "add no_track or drop 'protocol'",
                    "route",
                )
            if r.dev is None:
                ctx.error(
                    r.loc,
                    f"{block}: Warning - cannot track route {dst} with no interface "
                    "specified, not tracking",
                    "add 'dev IFNAME' or 'no_track'",
                    "route",
                )


def _check_rules(rules: Sequence[VirtualRule], ctx: Ctx, block: str) -> None:
    for i, r in enumerate(rules):
        if r.priority is None:
            ctx.error(
                r.loc,
                f"{block}: Rule has no preference specified - setting to "
                f"{16384 - i}. This is probably not what you want.",
                "add 'priority N' (ip rule preference)",
                "rule",
            )


def _iface_refs(config: Config) -> Iterator[tuple[str, SourceLoc | None, str]]:
    g = config.global_defs
    if g.default_interface:
        yield g.default_interface, _loc(g, "default_interface"), "default_interface"
    if g.lvs_sync_daemon:
        yield g.lvs_sync_daemon[0], _loc(g, "lvs_sync_daemon"), "lvs_sync_daemon"
    for inst in config.vrrp_instances:
        if inst.interface is not None:
            yield inst.interface, _loc(inst, "interface"), f"vrrp_instance {inst.name}"
        for t in inst.track_interfaces:
            yield t.name, t.loc, f"({inst.name}) tracked interface {{}}"
        yield from _item_refs(
            (*inst.virtual_ipaddresses, *inst.virtual_ipaddresses_excluded),
            inst.virtual_routes,
            inst.virtual_rules,
        )
    for sg in config.vrrp_sync_groups:
        for t in sg.track_interfaces:
            yield t.name, t.loc, f"({sg.name}) tracked interface {{}}"
    yield from _item_refs(config.static_ipaddress, config.static_routes, config.static_rules)
    for gg in config.garp_groups:
        for name in (*((gg.interface,) if gg.interface else ()), *gg.interfaces):
            yield name, gg.loc, "garp_group"


def _item_refs(addrs: Any, routes: Any, rules: Any) -> Iterator[tuple[str, SourceLoc | None, str]]:
    for a in addrs:
        if a.dev is not None:
            yield a.dev, a.loc, f"ip address {a.address.ip}"
    for r in routes:
        for dev in (r.dev, *(h.dev for h in r.nexthops)):
            if dev is not None:
                yield dev, r.loc, "VROUTE nexthop"
    for r in rules:
        for dev in (r.iif, r.oif):
            if dev is not None:
                yield dev, r.loc, "rule"


def _check_interfaces(config: Config, interfaces: frozenset[str], ctx: Ctx) -> None:
    for name, loc, what in _iface_refs(config):
        if name not in interfaces:
            msg = what.format(name) if "{}" in what else f"interface {name} for {what}"
            ctx.error(
                loc,
                f"WARNING - {msg} doesn't exist",
                f"this host has {', '.join(sorted(interfaces))}; fix the name or set "
                "global_defs dynamic_interfaces",
                "no-interface",
            )
        elif name == "lo" and what.startswith("vrrp_instance"):
            ctx.error(
                loc,
                f"({what.split()[1]}) cannot use a loopback interface (lo) for vrrp - ignoring",
                "use a broadcast-capable interface",
                "no-interface",
            )
