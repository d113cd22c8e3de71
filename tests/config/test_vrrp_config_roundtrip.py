"""Render round trip of the VRRP model, and keepalived's verdicts on its own samples."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrpd.config.env import Environment
from pyvrrpd.config.errors import Diagnostic, Severity, SourceLoc
from pyvrrpd.config.kw_vrrp import ROOT_KWS
from pyvrrpd.config.kw_vrrp_lines import fmt_vip, parse_vip, strict
from pyvrrpd.config.kw_vrrp_routes import fmt_route, parse_route
from pyvrrpd.config.load import build_config
from pyvrrpd.config.model import Config
from pyvrrpd.config.schema import Ctx, render_block, render_text
from pyvrrpd.config.spec import ROOT
from pyvrrpd.config.tree import Node, parse_lines
from pyvrrpd.config.validate import validate
from tests.config.test_global_defs import FULL
from tests.config.test_vrrp_config import INSTANCE, SCRIPTS
from tests.config.test_vrrp_config_validate import BAD

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
SAMPLES = CORPUS / "keepalived-samples"
HOST = Environment(interfaces=frozenset({"lo", "eth0"}))
VRRP_ROOTS = {name for kw in ROOT_KWS for name in kw.names()}


def strip_comments(line: str) -> str:
    """Crude stand-in for the preprocessor: drop '#'/'!' comments outside quotes."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch in "#!" and not quoted:
            return line[:i]
    return line


def tree(text: str, file: str = "t.conf") -> tuple[Node, ...]:
    lines = ((strip_comments(s), SourceLoc(file, i + 1)) for i, s in enumerate(text.splitlines()))
    return parse_lines(lines)


def build(text: str, file: str = "t.conf") -> tuple[Config, list[Diagnostic]]:
    ctx = Ctx()
    config = build_config(tree(text, file), ctx)
    return config, ctx.diagnostics


def round_trip(config: Config) -> Config:
    text = render_text(render_block(ROOT, config))
    again, diags = build(text, "rendered.conf")
    bad = [d.format() for d in diags if d.code in ("bad-value", "unknown-keyword")]
    assert bad == [], text
    return again


INLINE = [INSTANCE, SCRIPTS, FULL, *(t for _, t, _ in BAD)]


@pytest.mark.parametrize("text", INLINE, ids=[f"inline{i}" for i in range(len(INLINE))])
def test_round_trip_inline(text: str) -> None:
    config, _ = build(text)
    assert round_trip(config) == config


def sample_files() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.iterdir() if p.name.startswith("keepalived.conf"))


needs_corpus = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"conformance corpus not found at {SAMPLES}"
)


@needs_corpus
@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_round_trip_corpus(path: Path) -> None:
    config, _ = build(path.read_text(), path.name)
    again = round_trip(config)
    assert again.global_defs == config.global_defs
    for field in ("vrrp_instances", "vrrp_sync_groups", "vrrp_scripts", "track_files"):
        assert getattr(again, field) == getattr(config, field), field
    for field in ("track_processes", "garp_groups", "static_ipaddress", "static_routes"):
        assert getattr(again, field) == getattr(config, field), field
    assert again.static_rules == config.static_rules


def vrrp_lines(nodes: tuple[Node, ...]) -> set[int]:
    """Line numbers covered by the VRRP side's top-level blocks."""

    def last(n: Node) -> int:
        return max([n.loc.line, *(last(c) for c in n.children or ())])

    return {
        line for n in nodes if n.keyword in VRRP_ROOTS for line in range(n.loc.line, last(n) + 1)
    }


def vrrp_errors(path: Path) -> list[Diagnostic]:
    text = path.read_text()
    config, diags = build(text, path.name)
    diags += validate(config, HOST)
    mine = vrrp_lines(tree(text, path.name))
    return [
        d
        for d in diags
        if d.severity is Severity.ERROR and d.loc is not None and d.loc.line in mine
    ]


# Why keepalived 2.2.7 exits 5 on the samples whose failure is on the VRRP side.
REASONS = {
    "keepalived.conf.SSL_GET": ["Initial state master is incompatible with AH"],
    "keepalived.conf.etc-template": [
        "vrrp_garp_interval: 0 is out of range",
        "vrrp_gna_interval: 0 is out of range",
        "State MASTER must match being address owner",
        "Strict mode does not support authentication",
    ],
    "keepalived.conf.track_interface": [
        "interface eth0.1 for vrrp_instance VI_1 doesn't exist",
        "cannot track route 192.168.112.0/24 with no interface",
    ],
    "keepalived.conf.vrrp": ["interface eth1 for vrrp_instance VI_3 doesn't exist"],
    "keepalived.conf.vrrp.localcheck": ["(VI_1) tracked interface eth1 doesn't exist"],
    "keepalived.conf.vrrp.lvs_syncd": [
        "Sync group VG1 has no virtual router(s)",
        "'lvs_sync_daemon_interface' is deprecated",
        "interface eth1 for vrrp_instance VI_3 doesn't exist",
    ],
    "keepalived.conf.vrrp.routes": [
        "'gw' for routes is deprecated",
        "'or' for routes is deprecated",
        "interface eth3 for VROUTE nexthop doesn't exist",
    ],
    "keepalived.conf.vrrp.rules": [
        "invalid rule to address 192.168.100./24",
        "Rule has no preference specified",
    ],
    "keepalived.conf.vrrp.static_ipaddress": [
        "interface eth1 for ip address 192.168.200.17 doesn't exist",
    ],
    "keepalived.conf.vrrp.sync": ["interface eth1 for vrrp_instance VI_2 doesn't exist"],
}
# Needs the preprocessor (@high/@low lines and a config id): checked by the lead's loader.
NEEDS_PREPROCESSOR = {"keepalived.conf.conditional_conf"}


def verdicts() -> dict[str, int]:
    tsv = SAMPLES.parent / "keepalived-samples.verdicts.tsv"
    if not tsv.is_file():
        return {}
    rows = (line.split("\t") for line in tsv.read_text().splitlines() if line.strip())
    return {name: int(code) for name, code in rows}


def vrrp_samples() -> list[Path]:
    return [
        p
        for p in sample_files()
        if p.name not in NEEDS_PREPROCESSOR
        and any(n.keyword in VRRP_ROOTS - {"global_defs"} for n in tree(p.read_text(), p.name))
    ]


@needs_corpus
@pytest.mark.parametrize("path", vrrp_samples(), ids=lambda p: p.name)
def test_corpus_verdicts(path: Path) -> None:
    """VRRP-side ERRORs exactly on the samples keepalived rejects, for the same reasons."""
    expected = verdicts()[path.name]
    errs = vrrp_errors(path)
    if path.name in REASONS:
        assert expected == 5
        text = "\n".join(d.message for d in errs)
        for reason in REASONS[path.name]:
            assert reason in text
    else:
        assert expected == 0 or path.name == "keepalived.conf.fwmark"
        assert errs == [], [d.format() for d in errs]


@needs_corpus
def test_corpus_coverage() -> None:
    names = {p.name for p in vrrp_samples()}
    assert set(REASONS) <= names
    assert len(names) >= 12


_octet = st.integers(0, 255)
_v4 = st.tuples(_octet, _octet, _octet, _octet).map(lambda t: ".".join(map(str, t)))
_v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@given(
    addr=st.one_of(_v4, _v6),
    plen=st.one_of(st.none(), st.integers(0, 32)),
    dev=st.one_of(st.none(), st.sampled_from(["eth0", "bond0.10"])),
    no_track=st.booleans(),
    flags=st.lists(st.sampled_from(["home", "-nodad", "noprefixroute"]), max_size=2),
)
def test_vip_line_round_trip(
    addr: str, plen: int | None, dev: str | None, no_track: bool, flags: list[str]
) -> None:
    words = [addr if plen is None else f"{addr}/{plen}"]
    if dev:
        words += ["dev", dev]
    words += flags
    if no_track:
        words.append("no_track")
    vip = strict(parse_vip)(words)
    assert strict(parse_vip)(fmt_vip(vip)) == vip
    assert vip.no_track is no_track and vip.dev == dev


@given(
    dst=st.one_of(st.just("default"), _v4.map(lambda a: a + "/24")),
    via=st.one_of(st.none(), _v4),
    dev=st.one_of(st.none(), st.just("eth0")),
    metric=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    kind=st.one_of(st.none(), st.sampled_from(["blackhole", "unreachable"])),
)
def test_route_line_round_trip(
    dst: str, via: str | None, dev: str | None, metric: int | None, kind: str | None
) -> None:
    words = ([kind] if kind else []) + [dst]
    if via:
        words += ["via", via]
    if dev:
        words += ["dev", dev]
    if metric is not None:
        words += ["metric", str(metric)]
    route = strict(parse_route)(words)
    assert strict(parse_route)(fmt_route(route)) == route
    assert route.metric == metric and route.type == kind
