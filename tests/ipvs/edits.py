"""Seeded random edits of a director's configuration, with what each must leave alone.

Pure (no I/O, no clock): a small model of a director's keepalived.conf (VRRP instances
holding VIPs, DR virtual servers on those VIPs, real servers with weights), a renderer
to keepalived syntax, and :func:`generate`, which walks from a base model through
``count`` random edits. Each :class:`Edit` says what a reload to it must not disturb:

- ``unchanged_instances``: identical blocks (the reload planner leaves them alone);
- ``stable_vips``: VIPs held before and after by an instance that is not restarted
  (unchanged, or changed in place: priority or address list); none may be removed or
  added again;
- ``unchanged_services``: identical virtual server blocks on a stable VIP: their
  destinations must stay in the kernel's table and no request to them may fail;
- ``kept_services``: present before and after on a stable VIP (possibly edited).

A broken edit (syntax or semantic error) keeps the model: everything is unchanged.
Used by tests/ipvs/test_ops_load_vm.py (in the IPVS VM) and tested on the host by
tests/ipvs/test_edits.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

# -- the model ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Real:
    """A real server of a virtual server: a name of the layout and its weight."""

    name: str
    weight: int


@dataclass(frozen=True)
class Service:
    """A TCP virtual server ``vip:port`` (DR) with its real servers."""

    vip: str
    port: int
    algo: str
    check: str  # "TCP_CHECK" or "HTTP_GET"
    reals: tuple[Real, ...]

    @property
    def key(self) -> str:
        return f"{self.vip}:{self.port}"


@dataclass(frozen=True)
class Instance:
    """A VRRP instance (always MASTER on a lone director) and the VIPs it holds."""

    name: str
    priority: int
    advert_int: int
    vips: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    """A director's configuration: instances and services, kept sorted."""

    instances: tuple[Instance, ...]
    services: tuple[Service, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "instances", tuple(sorted(self.instances, key=lambda i: i.name)))
        object.__setattr__(self, "services", tuple(sorted(self.services, key=_service_order)))

    def instance(self, name: str) -> Instance | None:
        return next((i for i in self.instances if i.name == name), None)

    def service(self, key: str) -> Service | None:
        return next((s for s in self.services if s.key == key), None)

    def vips(self) -> dict[str, str]:
        """VIP -> the instance holding it."""
        return {v: i.name for i in self.instances for v in i.vips}


def _service_order(s: Service) -> tuple[tuple[int, ...], int]:
    return tuple(int(p) for p in s.vip.split(".")), s.port


@dataclass(frozen=True)
class Layout:
    """Where a model lives: interface, instances' VRIDs and VIP pools, real servers."""

    interface: str = "eth0"
    vrids: Mapping[str, int] = field(default_factory=lambda: {"VI_1": 51, "VI_2": 52, "VI_3": 53})
    pools: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            f"VI_{k}": tuple(f"10.80.0.{100 + 10 * (k - 1) + j}" for j in range(4))
            for k in (1, 2, 3)
        }
    )
    real_servers: Mapping[str, str] = field(
        default_factory=lambda: {"rs1": "10.80.0.11", "rs2": "10.80.0.12", "rs3": "10.80.0.13"}
    )
    #: real servers that never answer (their checks fail): never in the expected table
    down: frozenset[str] = frozenset()
    ports: tuple[int, ...] = (80, 8080)
    algos: tuple[str, ...] = ("rr", "wrr", "wlc")
    checks: tuple[str, ...] = ("TCP_CHECK", "HTTP_GET")
    delay_loop: int = 2

    def all_vips(self) -> list[str]:
        return [v for pool in self.pools.values() for v in pool]


DEFAULT_LAYOUT = Layout()


def with_down_server(layout: Layout = DEFAULT_LAYOUT) -> Layout:
    """`layout` plus rs4, a real server that never answers (only its checks see it)."""
    return replace(
        layout, real_servers={**layout.real_servers, "rs4": "10.80.0.14"}, down=frozenset({"rs4"})
    )


def base_model(layout: Layout = DEFAULT_LAYOUT) -> Model:
    """Two instances with two VIPs each; three services over every real server."""
    names = sorted(layout.pools)[:2]
    reals = tuple(Real(n, 1) for n in sorted(layout.real_servers))
    reals = tuple(sorted(reals, key=lambda r: r.name in layout.down))  # an up one first
    inst = [Instance(n, 150, 1, layout.pools[n][:2]) for n in names]
    a, b = inst[0].vips[0], inst[1].vips[0]
    port = layout.ports[0]
    services = [
        Service(a, port, "rr", "HTTP_GET", reals),
        Service(a, layout.ports[-1], "wrr", "TCP_CHECK", reals[:2]),
        Service(b, port, "wlc", "TCP_CHECK", reals[1:]),
    ]
    return Model(tuple(inst), tuple(services))


# -- rendering ---------------------------------------------------------------------


def _check_block(kind: str) -> str:
    body = "     url {\n      path /\n      status_code 200\n     }\n" if kind == "HTTP_GET" else ""
    timers = "     connect_timeout 2\n     retry 1\n     delay_before_retry 1\n"
    return f"    {kind} {{\n{body}{timers}    }}\n"


def render(model: Model, layout: Layout = DEFAULT_LAYOUT, router_id: str = "director") -> str:
    """keepalived.conf for `model` (instances start MASTER: one director, no peer)."""
    out = [f"global_defs {{\n  router_id {router_id}\n}}\n"]
    for inst in model.instances:
        vips = "".join(f"    {v}/32 dev {layout.interface}\n" for v in inst.vips)
        out.append(
            f"vrrp_instance {inst.name} {{\n  state MASTER\n  interface {layout.interface}\n"
            f"  virtual_router_id {layout.vrids[inst.name]}\n  priority {inst.priority}\n"
            f"  advert_int {inst.advert_int}\n  virtual_ipaddress {{\n{vips}  }}\n}}\n"
        )
    for s in model.services:
        out.append(
            f"virtual_server {s.vip} {s.port} {{\n  delay_loop {layout.delay_loop}\n"
            f"  lb_algo {s.algo}\n  lb_kind DR\n  protocol TCP\n"
        )
        for r in s.reals:
            out.append(
                f"  real_server {layout.real_servers[r.name]} {s.port} {{\n"
                f"    weight {r.weight}\n{_check_block(s.check)}  }}\n"
            )
        out.append("}\n")
    return "".join(out)


def expected_table(model: Model, layout: Layout = DEFAULT_LAYOUT) -> dict[str, dict[str, int]]:
    """Service ``vip:port`` -> {``rs:port``: weight}: the table with every server up."""
    return {
        s.key: {
            f"{layout.real_servers[r.name]}:{s.port}": r.weight
            for r in s.reals
            if r.name not in layout.down
        }
        for s in model.services
    }


#: Ways to break a configuration (each is refused by the loader): name -> text to append.
BROKEN = {
    "unclosed block": "vrrp_instance VI_BROKEN {\n  virtual_router_id 999\n",
    "VRID out of range": (
        "vrrp_instance VI_BROKEN {\n  interface eth0\n  virtual_router_id 300\n"
        "  priority 100\n  virtual_ipaddress {\n    10.80.0.250/32\n  }\n}\n"
    ),
}

# -- the edits ---------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One reload: the configuration text to load and what it must leave alone."""

    index: int
    kind: str
    description: str
    before: Model
    after: Model  # == before when broken
    text: str
    broken: bool
    unchanged_instances: frozenset[str]
    stable_vips: frozenset[str]
    unchanged_services: frozenset[str]
    kept_services: frozenset[str]
    #: the reload planner's classes (pyvrrpd.vrrp.reload) as this edit predicts them
    vrrp_plan: Mapping[str, tuple[str, ...]]


def classify(before: Model, after: Model) -> dict[str, frozenset[str]]:
    """What a reload from `before` to `after` must leave alone (see the module doc)."""
    unchanged = frozenset(i.name for i in after.instances if before.instance(i.name) == i)
    stable: set[str] = set()
    for new in after.instances:
        old = before.instance(new.name)
        if old is not None and old.advert_int == new.advert_int:  # not restarted
            stable |= set(old.vips) & set(new.vips)
    kept = frozenset(
        s.key for s in after.services if before.service(s.key) is not None and s.vip in stable
    )
    same = frozenset(k for k in kept if before.service(k) == after.service(k))
    return {
        "unchanged_instances": unchanged,
        "stable_vips": frozenset(stable),
        "unchanged_services": same,
        "kept_services": kept,
    }


def vrrp_plan(before: Model, after: Model) -> dict[str, tuple[str, ...]]:
    """The reload planner's classes for these two models (priority never 255 here)."""
    out: dict[str, list[str]] = {
        k: [] for k in ("unchanged", "addresses", "priority", "restart", "removed", "added")
    }
    for new in after.instances:
        old = before.instance(new.name)
        if old is None:
            out["added"].append(new.name)
        elif old == new:
            out["unchanged"].append(new.name)
        elif old.advert_int != new.advert_int:
            out["restart"].append(new.name)
        else:
            if old.priority != new.priority:
                out["priority"].append(new.name)
            if old.vips != new.vips:
                out["addresses"].append(new.name)
    out["removed"] = [i.name for i in before.instances if after.instance(i.name) is None]
    return {k: tuple(sorted(v)) for k, v in out.items()}


_Step = Callable[[Model, Layout, random.Random], tuple[Model, str] | None]


def _drop_services(services: Iterable[Service], vips: set[str]) -> tuple[Service, ...]:
    return tuple(s for s in services if s.vip not in vips)


def _add_instance(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    free = [n for n in sorted(lay.pools) if m.instance(n) is None]
    if not free:
        return None
    name = rng.choice(free)
    vips = tuple(sorted(rng.sample(lay.pools[name], rng.randint(1, 2))))
    inst = Instance(name, rng.randrange(100, 250, 10), 1, vips)
    return Model((*m.instances, inst), m.services), f"add instance {name} {list(vips)}"


def _remove_instance(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    if len(m.instances) < 2:
        return None
    gone = rng.choice(m.instances)
    rest = tuple(i for i in m.instances if i is not gone)
    return Model(rest, _drop_services(m.services, set(gone.vips))), f"remove {gone.name}"


def _swap_instance(m: Model, inst: Instance, new: Instance) -> Model:
    return Model(tuple(new if i is inst else i for i in m.instances), m.services)


def _change_priority(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    inst = rng.choice(m.instances)
    prio = rng.choice([p for p in range(100, 250, 10) if p != inst.priority])
    desc = f"{inst.name} priority {inst.priority} -> {prio}"
    return _swap_instance(m, inst, replace(inst, priority=prio)), desc


def _restart_instance(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    inst = rng.choice(m.instances)
    new = replace(inst, advert_int=2 if inst.advert_int == 1 else 1)
    desc = f"{inst.name} advert_int {inst.advert_int} -> {new.advert_int} (restart)"
    return _swap_instance(m, inst, new), desc


def _add_vip(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    options = [(i, v) for i in m.instances for v in lay.pools[i.name] if v not in i.vips]
    if not options:
        return None
    inst, vip = rng.choice(options)
    new = replace(inst, vips=tuple(sorted((*inst.vips, vip))))
    return _swap_instance(m, inst, new), f"{inst.name} + VIP {vip}"


def _remove_vip(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    options = [(i, v) for i in m.instances for v in i.vips if len(i.vips) > 1]
    if not options:
        return None
    inst, vip = rng.choice(options)
    new = replace(inst, vips=tuple(v for v in inst.vips if v != vip))
    out = _swap_instance(m, inst, new)
    return Model(out.instances, _drop_services(out.services, {vip})), f"{inst.name} - VIP {vip}"


def _random_reals(lay: Layout, rng: random.Random) -> tuple[Real, ...]:
    up = sorted(set(lay.real_servers) - lay.down)
    names = {rng.choice(up), *rng.sample(sorted(lay.real_servers), rng.randint(0, 2))}
    return tuple(Real(n, rng.randint(1, 5)) for n in sorted(names))


def _up(s: Service, lay: Layout) -> int:
    return sum(r.name not in lay.down for r in s.reals)


def _add_service(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    used = {s.key for s in m.services}
    options = [(v, p) for v in sorted(m.vips()) for p in lay.ports if f"{v}:{p}" not in used]
    if not options:
        return None
    vip, port = rng.choice(options)
    s = Service(vip, port, rng.choice(lay.algos), rng.choice(lay.checks), _random_reals(lay, rng))
    return Model(m.instances, (*m.services, s)), f"add service {s.key}"


def _swap_service(m: Model, old: Service, new: Service | None) -> Model:
    rest = tuple(s for s in m.services if s is not old)
    return Model(m.instances, rest if new is None else (*rest, new))


def _remove_service(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    if len(m.services) < 2:
        return None
    s = rng.choice(m.services)
    return _swap_service(m, s, None), f"remove service {s.key}"


def _add_real(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    options = [(s, n) for s in m.services for n in sorted(lay.real_servers) if n not in _names(s)]
    if not options:
        return None
    s, name = rng.choice(options)
    new = replace(s, reals=tuple(sorted((*s.reals, Real(name, rng.randint(1, 5))))))
    return _swap_service(m, s, new), f"{s.key} + real server {name}"


def _names(s: Service) -> set[str]:
    return {r.name for r in s.reals}


def _remove_real(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    options = [  # every service keeps a real server that answers
        (s, r) for s in m.services for r in s.reals if _up(s, lay) > (r.name not in lay.down)
    ]
    if not options:
        return None
    s, real = rng.choice(options)
    new = replace(s, reals=tuple(r for r in s.reals if r != real))
    return _swap_service(m, s, new), f"{s.key} - real server {real.name}"


def _change_weight(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    s = rng.choice(m.services)
    real = rng.choice(s.reals)
    weight = rng.choice([w for w in range(1, 6) if w != real.weight])
    new = replace(s, reals=tuple(replace(r, weight=weight) if r == real else r for r in s.reals))
    desc = f"{s.key} {real.name} weight {real.weight} -> {weight}"
    return _swap_service(m, s, new), desc


def _change_algo(m: Model, lay: Layout, rng: random.Random) -> tuple[Model, str] | None:
    s = rng.choice(m.services)
    algo = rng.choice([a for a in lay.algos if a != s.algo])
    return _swap_service(m, s, replace(s, algo=algo)), f"{s.key} lb_algo {s.algo} -> {algo}"


#: Edit kinds and their relative frequencies.
STEPS: dict[str, tuple[_Step, int]] = {
    "add instance": (_add_instance, 1),
    "remove instance": (_remove_instance, 1),
    "change priority": (_change_priority, 2),
    "restart instance": (_restart_instance, 1),
    "add VIP": (_add_vip, 2),
    "remove VIP": (_remove_vip, 2),
    "add service": (_add_service, 2),
    "remove service": (_remove_service, 2),
    "add real server": (_add_real, 3),
    "remove real server": (_remove_real, 3),
    "change weight": (_change_weight, 3),
    "change algo": (_change_algo, 1),
}


def random_edit(model: Model, layout: Layout, rng: random.Random) -> tuple[str, Model, str]:
    """One applicable edit of `model`: (kind, new model, description)."""
    kinds = list(STEPS)
    weights = [STEPS[k][1] for k in kinds]
    while True:
        kind = rng.choices(kinds, weights)[0]
        done = STEPS[kind][0](model, layout, rng)
        # (every model keeps a service, so there is always traffic to watch)
        if done is not None and done[0] != model and done[0].services:
            return kind, done[0], done[1]


def generate(
    seed: int,
    count: int,
    *,
    layout: Layout = DEFAULT_LAYOUT,
    base: Model | None = None,
    broken: Iterable[int] | None = None,
) -> list[Edit]:
    """`count` edits from `base` (default :func:`base_model`), deterministic in `seed`.

    The edits at the indices of `broken` (default: the middle one, ``count // 2``) are
    broken configurations; the next valid edit starts from the model they did not change.
    """
    rng = random.Random(seed)
    bad = {count // 2} if broken is None else set(broken)
    model = base_model(layout) if base is None else base
    out = []
    for index in range(count):
        if index in bad:
            name = rng.choice(sorted(BROKEN))
            text = render(model, layout) + BROKEN[name]
            kind, after, desc = "broken", model, f"broken: {name}"
        else:
            kind, after, desc = random_edit(model, layout, rng)
            text = render(after, layout)
        c = classify(model, after)
        out.append(
            Edit(
                index,
                kind,
                desc,
                model,
                after,
                text,
                index in bad,
                c["unchanged_instances"],
                c["stable_vips"],
                c["unchanged_services"],
                c["kept_services"],
                vrrp_plan(model, after),
            )
        )
        model = after
    return out
