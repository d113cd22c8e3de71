"""plan(desired, observed): table-driven cases, properties, and the fake backend."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrpd.ipvs.backend import reconcile
from pyvrrpd.ipvs.fake import FakeIpvs
from pyvrrpd.ipvs.model import (
    Dest,
    DestKey,
    Family,
    FwdMethod,
    IpvsState,
    Protocol,
    Service,
    ServiceFlags,
    ServiceKey,
    TunFlags,
    TunType,
    make_state,
)
from pyvrrpd.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    EditDest,
    EditService,
    Op,
    OpResult,
    apply_to_state,
    describe,
    plan,
)

K1 = ServiceKey.of(Protocol.TCP, "192.0.2.1", 80)
K2 = ServiceKey.of(Protocol.UDP, "2001:db8::1", 53)
K3 = ServiceKey.for_fwmark(7)
K4 = ServiceKey.of(Protocol.SCTP, "192.0.2.2", 5060)
S1 = Service(K1, "rr")
S2 = Service(K2, "wlc")
S3 = Service(K3, "sh", ServiceFlags.PERSISTENT, 300)
S4 = Service(K4, "lc")
DA = Dest(ipaddress.ip_address("10.0.0.1"), 80, FwdMethod.NAT)
DB = Dest(ipaddress.ip_address("10.0.0.2"), 80, FwdMethod.DR, weight=2)
DC = Dest(ipaddress.ip_address("2001:db8::10"), 53, FwdMethod.DR)
BASE = make_state((S1, [DA, DB]), (S2, [DC]), (S3, []))


def replace_service(state: IpvsState, svc: Service) -> IpvsState:
    out = dict(state)
    out[svc.key] = out[svc.key]._replace(service=svc)
    return out


def replace_dest(state: IpvsState, key: ServiceKey, dest: Dest) -> IpvsState:
    out = dict(state)
    dests = dict(out[key].dests)
    dests[dest.key] = dest
    out[key] = out[key]._replace(dests=dests)
    return out


def drop_dest(state: IpvsState, key: ServiceKey, dk: DestKey) -> IpvsState:
    out = dict(state)
    out[key] = out[key]._replace(dests={k: d for k, d in out[key].dests.items() if k != dk})
    return out


def drop_service(state: IpvsState, key: ServiceKey) -> IpvsState:
    return {k: e for k, e in state.items() if k != key}


SERVICE_EDITS: list[tuple[str, Callable[[Service], Service]]] = [
    ("scheduler", lambda s: dataclasses.replace(s, scheduler="wrr")),
    ("persistence", lambda s: dataclasses.replace(s, flags=ServiceFlags.PERSISTENT, timeout=60)),
    ("timeout", lambda s: dataclasses.replace(s, timeout=5)),
    ("netmask", lambda s: dataclasses.replace(s, netmask=24)),
    ("pe_name", lambda s: dataclasses.replace(s, pe_name="sip")),
    ("ops", lambda s: dataclasses.replace(s, flags=ServiceFlags.ONEPACKET)),
    ("sh-port", lambda s: dataclasses.replace(s, flags=ServiceFlags.SH_PORT)),
    ("sh-fallback", lambda s: dataclasses.replace(s, flags=ServiceFlags.SH_FALLBACK)),
]

DEST_EDITS: list[tuple[str, Callable[[Dest], Dest]]] = [
    ("fwd NAT->DR", lambda d: dataclasses.replace(d, fwd=FwdMethod.DR)),
    ("fwd NAT->TUN", lambda d: dataclasses.replace(d, fwd=FwdMethod.TUN)),
    ("weight", lambda d: dataclasses.replace(d, weight=0)),
    ("u_threshold", lambda d: dataclasses.replace(d, u_threshold=100)),
    ("l_threshold", lambda d: dataclasses.replace(d, u_threshold=100, l_threshold=10)),
    (
        "tun gue",
        lambda d: dataclasses.replace(d, fwd=FwdMethod.TUN, tun_type=TunType.GUE, tun_port=6080),
    ),
    ("tun_flags", lambda d: dataclasses.replace(d, tun_flags=TunFlags.CSUM | TunFlags.REMCSUM)),
]


# (name, desired, observed, owned, flush, expected ops)
CASES: list[tuple[str, IpvsState, IpvsState, set[ServiceKey] | None, bool, list[Op]]] = [
    ("both empty", {}, {}, None, False, []),
    ("identical: adopt without writes", BASE, BASE, None, False, []),
    ("identical, everything owned", BASE, BASE, set(BASE), True, []),
    (
        "empty kernel: services then dests, sorted",
        BASE,
        {},
        None,
        False,
        [
            AddService(S1),
            AddService(S2),
            AddService(S3),
            AddDest(K1, DA),
            AddDest(K1, DB),
            AddDest(K2, DC),
        ],
    ),
    (
        "one service missing",
        BASE,
        drop_service(BASE, K2),
        None,
        False,
        [AddService(S2), AddDest(K2, DC)],
    ),
    ("one dest missing", BASE, drop_dest(BASE, K1, DB.key), None, False, [AddDest(K1, DB)]),
    (
        "extra dest in a desired service is deleted",
        drop_dest(BASE, K1, DA.key),
        BASE,
        None,
        False,
        [DelDest(K1, DA.key)],
    ),
    ("unowned extra service is left alone", drop_service(BASE, K2), BASE, None, False, []),
    ("unowned extra service, other owned", drop_service(BASE, K2), BASE, {K4}, False, []),
    (
        "owned extra service is deleted without dest ops",
        drop_service(BASE, K1),
        BASE,
        {K1},
        False,
        [DelService(K1)],
    ),
    (
        "flush_unowned deletes every undesired service",
        drop_service(drop_service(BASE, K1), K3),
        BASE,
        None,
        True,
        [DelService(K1), DelService(K3)],
    ),
    ("owned and desired stays", BASE, BASE, {K1, K2}, False, []),
    (
        "service key change (port) is add + delete",
        make_state((dataclasses.replace(S4), [DA])),
        make_state((S1, [DA])),
        {K1},
        False,
        [AddService(S4), AddDest(K4, DA), DelService(K1)],
    ),
    (
        "dest key change (port) is add + delete",
        make_state((S1, [dataclasses.replace(DA, port=8080)])),
        make_state((S1, [DA])),
        None,
        False,
        [AddDest(K1, dataclasses.replace(DA, port=8080)), DelDest(K1, DA.key)],
    ),
    (
        "ipv4 and ipv6 fwmark with the same mark are different services",
        make_state((S3, []), (Service(ServiceKey.for_fwmark(7, Family.INET6)), [])),
        make_state((S3, [])),
        None,
        False,
        [AddService(Service(ServiceKey.for_fwmark(7, Family.INET6)))],
    ),
    (
        "mixed: adds before edits before deletes",
        make_state((S1, [DA]), (dataclasses.replace(S2, scheduler="rr"), [DC]), (S4, [DB])),
        make_state((S1, [dataclasses.replace(DA, weight=5), DB]), (S2, [DC]), (S3, [])),
        {K3},
        False,
        [
            AddService(S4),
            EditService(dataclasses.replace(S2, scheduler="rr"), S2),
            AddDest(K4, DB),
            EditDest(K1, DA, dataclasses.replace(DA, weight=5)),
            DelDest(K1, DB.key),
            DelService(K3),
        ],
    ),
]
CASES += [
    (
        f"service {name} is edited in place",
        replace_service(BASE, edit(S1)),
        BASE,
        set(BASE),
        True,
        [EditService(edit(S1), S1)],
    )
    for name, edit in SERVICE_EDITS
]
CASES += [
    (
        f"dest {name} is edited in place",
        replace_dest(BASE, K1, edit(DA)),
        BASE,
        set(BASE),
        True,
        [EditDest(K1, edit(DA), DA)],
    )
    for name, edit in DEST_EDITS
]


@pytest.mark.parametrize(
    ("desired", "observed", "owned", "flush", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan_table(
    desired: IpvsState,
    observed: IpvsState,
    owned: set[ServiceKey] | None,
    flush: bool,
    expected: list[Op],
) -> None:
    ops = plan(desired, observed, owned=owned, flush_unowned=flush)
    assert ops == expected
    after = apply_to_state(observed, ops)
    for key, entry in desired.items():
        assert after[key] == entry


def test_each_edit_case_really_differs() -> None:
    for name, sedit in SERVICE_EDITS:
        assert sedit(S1) != S1, name
    for name, dedit in DEST_EDITS:
        assert dedit(DA) != DA, name


def test_edit_carries_old_and_new() -> None:
    new = dataclasses.replace(DA, weight=9)
    (op,) = plan(replace_dest(BASE, K1, new), BASE)
    assert isinstance(op, EditDest)
    assert (op.dest.weight, op.old and op.old.weight) == (9, 1)


def test_describe_names_the_object() -> None:
    assert describe(AddService(S1)) == "add service TCP 192.0.2.1:80"
    assert (
        describe(DelDest(K2, DC.key))
        == "delete destination [2001:db8::10]:53 from UDP [2001:db8::1]:53"
    )
    assert describe(EditService(S3)) == "edit service FWM 7 INET"
    r = OpResult(DelService(K1), errno.ESRCH, "ESRCH: No such process")
    assert (
        not r.ok and str(r) == "delete service TCP 192.0.2.1:80: error 3 (ESRCH: No such process)"
    )


# --- model rules ----------------------------------------------------------------------


def test_service_defaults_normalise_like_the_kernel() -> None:
    assert Service(K2).netmask == 128 and Service(K1).netmask == 32
    assert Service(K2) == Service(K2, netmask=128)
    assert Service(K1, pe_name="") == Service(K1)
    assert Service(K1, flags=ServiceFlags(0x2 | 0x1)).flags == ServiceFlags.PERSISTENT


@pytest.mark.parametrize(
    "build",
    [
        lambda: ServiceKey(Family.INET, Protocol.TCP, ipaddress.ip_address("::1"), 80),
        lambda: ServiceKey(Family.INET, fwmark=3, port=80),
        lambda: ServiceKey(Family.INET, Protocol.TCP, None, 80),
        lambda: ServiceKey.of(Protocol.TCP, "192.0.2.1", 70000),
        lambda: ServiceKey.for_fwmark(2**32),
        lambda: Service(K2, netmask=0),
        lambda: Service(K1, netmask=33),
        lambda: Service(K1, scheduler="x" * 16),
        lambda: Dest(ipaddress.ip_address("10.0.0.1"), -1, FwdMethod.NAT),
        lambda: Dest(ipaddress.ip_address("10.0.0.1"), 80, FwdMethod.NAT, weight=-1),
        lambda: make_state((S1, [DA, DA])),
        lambda: make_state((S1, []), (S1, [])),
    ],
)
def test_model_rejects_what_the_kernel_cannot_hold(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_fwmark_sorts_after_address_services() -> None:
    keys = sorted([K3, K2, K1], key=ServiceKey.sort_key)
    assert keys[-1] == K3


# --- properties -----------------------------------------------------------------------

ADDRS4 = [f"10.0.0.{i}" for i in range(1, 5)]
SKEYS = [K1, K2, K3, K4, ServiceKey.for_fwmark(9, Family.INET6)]

dests = st.builds(
    Dest,
    address=st.sampled_from(ADDRS4).map(ipaddress.ip_address),
    port=st.sampled_from([0, 80, 443]),
    fwd=st.sampled_from([FwdMethod.NAT, FwdMethod.DR, FwdMethod.TUN]),
    weight=st.integers(0, 3),
    u_threshold=st.sampled_from([0, 50]),
)


@st.composite
def states(draw: st.DrawFn) -> IpvsState:
    keys = draw(st.sets(st.sampled_from(SKEYS)))
    entries = []
    for key in sorted(keys, key=ServiceKey.sort_key):
        svc = Service(
            key,
            draw(st.sampled_from(["rr", "wlc", "sh"])),
            draw(st.sampled_from([ServiceFlags.NONE, ServiceFlags.PERSISTENT])),
            draw(st.sampled_from([0, 300])),
        )
        ds = draw(st.lists(dests, max_size=4, unique_by=lambda d: d.key))
        if key.family is Family.INET6:  # mixed family only with TUN
            ds = [dataclasses.replace(d, fwd=FwdMethod.TUN) for d in ds]
        entries.append((svc, ds))
    return make_state(*entries)


@settings(max_examples=200, deadline=None)
@given(desired=states(), observed=states(), flush=st.booleans())
def test_plan_reaches_desired_and_respects_ownership(
    desired: IpvsState, observed: IpvsState, flush: bool
) -> None:
    ops = plan(desired, observed, flush_unowned=flush)
    after = apply_to_state(observed, ops)
    expected = dict(desired)
    if not flush:  # unowned services untouched
        expected.update({k: e for k, e in observed.items() if k not in desired})
    assert after == expected
    assert plan(desired, after, flush_unowned=flush) == []
    # ordering: every dest op of a service comes after that service's add
    seen_add: set[ServiceKey] = set()
    kinds = [type(op) for op in ops]
    order = [AddService, EditService, AddDest, EditDest, DelDest, DelService]
    assert kinds == sorted(kinds, key=order.index)
    for op in ops:
        if isinstance(op, AddService):
            seen_add.add(op.service.key)
        elif isinstance(op, AddDest) and op.service not in observed:
            assert op.service in seen_add


@settings(max_examples=100, deadline=None)
@given(desired=states(), observed=states())
async def test_fake_backend_converges_with_all_ops_ok(
    desired: IpvsState, observed: IpvsState
) -> None:
    fake = FakeIpvs()
    assert all(r.ok for r in await fake.apply(plan(observed, {})))
    fake.calls.clear()
    results = await reconcile(fake, desired, flush_unowned=True)
    assert all(r.ok for r in results), [str(r) for r in results if not r.ok]
    assert await fake.dump() == desired
    assert await reconcile(fake, desired, flush_unowned=True) == []
    assert fake.writes == len(results)


# --- the fake's kernel rules ----------------------------------------------------------


async def test_fake_reports_each_error_with_kernel_errnos() -> None:
    fake = FakeIpvs()
    v6_nat = Dest(ipaddress.ip_address("10.0.0.9"), 53, FwdMethod.NAT)
    ops: list[Op] = [
        AddService(S1),
        AddService(S1),
        AddDest(K1, DA),
        AddDest(K1, DA),
        DelDest(K1, DB.key),
        DelService(K2),
        AddDest(K2, DC),
        AddService(Service(K4, "nosuch")),
        AddService(S2),
        AddDest(K2, v6_nat),
        AddDest(K1, dataclasses.replace(DB, l_threshold=5)),
        AddDest(K1, dataclasses.replace(DB, fwd=FwdMethod.TUN, tun_type=TunType.GUE)),
        EditDest(K1, DB),
    ]
    got = [r.errno for r in await fake.apply(ops)]
    E = errno
    assert got == [
        0,
        E.EEXIST,
        0,
        E.EEXIST,
        E.ENOENT,
        E.ESRCH,
        E.ESRCH,
        E.ENOENT,
        0,
        E.EINVAL,
        E.ERANGE,
        E.EINVAL,
        E.ENOENT,
    ]
    assert fake.writes == len(ops)


async def test_fake_injected_failure_does_not_stop_later_ops() -> None:
    fake = FakeIpvs()
    fake.fail[AddDest(K1, DA)] = errno.ENOMEM
    results = await fake.apply(plan(make_state((S1, [DA, DB])), {}))
    assert [r.errno for r in results] == [0, errno.ENOMEM, 0]
    assert list((await fake.dump())[K1].dests) == [DB.key]
