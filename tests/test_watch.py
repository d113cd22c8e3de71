"""pyvrrpctl watch: the speaker table fed with crafted packets, and the CLI shell offline."""

from __future__ import annotations

import io
import json
import queue
import sys
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from pyvrrpd import watch_live
from pyvrrpd.cli.ctl import build_parser
from pyvrrpd.cli.ctl import main as ctl_main
from pyvrrpd.vrrp.packet import (
    Advert,
    AuthType,
    ChecksumForm,
    decode_ipv4_packet,
    encode_ipv4_packet,
    encode_ipv6_packet,
)
from pyvrrpd.vrrp.packet_ip import build_ipv4_header
from pyvrrpd.watch import SpeakerTable

GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")
VIP = IPv4Address("10.0.0.100")


def v4(
    src: str,
    vrid: int = 51,
    prio: int = 100,
    *,
    version: int = 3,
    interval: int = 100,
    form: ChecksumForm | None = None,
    ttl: int = 255,
    dst: IPv4Address = GROUP4,
    addrs: tuple[IPv4Address, ...] = (VIP,),
    auth: int = AuthType.NONE,
    password: bytes = b"",
) -> bytes:
    """A whole IPv4 datagram carrying one advert."""
    adv = Advert(version, vrid, prio, interval, addrs, auth_type=auth, auth_data=password)
    return encode_ipv4_packet(adv, src=IPv4Address(src), dst=dst, ttl=ttl, checksum_form=form)


def v6(src: str, vrid: int = 51, prio: int = 100) -> bytes:
    adv = Advert(3, vrid, prio, 100, (IPv6Address("fd00::100"),), family=6)
    return encode_ipv6_packet(adv, src=IPv6Address(src), dst=GROUP6)


def feed(table: SpeakerTable, packets: list[tuple[float, bytes]]) -> None:
    for t, p in sorted(packets, key=lambda x: x[0]):
        table.observe(p, t)


def flags_of(table: SpeakerTable, now: float) -> dict[str, tuple[str, ...]]:
    return {str(r.speaker.src): r.flags for r in table.rows(now)}


# -- checksum forms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "label"),
    [
        (v4("10.0.0.1"), "pseudo-header"),
        (v4("10.0.0.1", form=ChecksumForm.MESSAGE), "message-only"),
        (v4("10.0.0.1", version=2), "message"),
        (
            v4("10.0.0.1", form=ChecksumForm.OLD_UNICAST, dst=IPv4Address("10.0.0.2")),
            "old-unicast",
        ),
        (v6("fe80::1"), "pseudo-header"),
    ],
)
def test_checksum_form_is_detected(packet: bytes, label: str) -> None:
    table = SpeakerTable()
    sp = table.observe(packet, 1.0)
    assert sp is not None and sp.checksum == label
    assert sp.bad_checksums == 0
    assert "bad checksum" not in table.rows(1.0)[0].flags


def test_message_only_is_labelled_with_the_keepalived_keyword() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", form=ChecksumForm.MESSAGE), 1.0)
    assert "message-only (v3_checksum_as_v2)" in table.render(1.0)


def test_bad_checksum_is_flagged_and_warned() -> None:
    good = v4("10.0.0.1")
    bad = good[:26] + bytes([good[26] ^ 0xFF]) + good[27:]  # corrupt the VRRP checksum
    table = SpeakerTable()
    sp = table.observe(bad, 1.0)
    assert sp is not None and sp.checksum == "bad" and sp.bad_checksums == 1
    assert "bad checksum" in table.rows(1.0)[0].flags
    assert any("bad checksum" in w for w in table.warnings(1.0))


def test_old_unicast_honours_the_configured_group() -> None:
    group = IPv4Address("224.0.0.99")
    adv = Advert(3, 51, 100, 100, (VIP,))
    pkt = encode_ipv4_packet(adv, src=IPv4Address("10.0.0.1"), dst=IPv4Address("10.0.0.2"),
                             checksum_form=ChecksumForm.OLD_UNICAST, mcast_group=group)  # fmt: skip
    assert SpeakerTable().observe(pkt, 1.0).checksum == "bad"  # type: ignore[union-attr]
    sp = SpeakerTable(mcast_group4=group).observe(pkt, 1.0)
    assert sp is not None and sp.checksum == "old-unicast"


def test_checksum_form_mismatch_within_a_vrid() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", prio=150), 1.0)
    table.observe(v4("10.0.0.2", form=ChecksumForm.MESSAGE), 1.1)
    assert all("checksum form mismatch" in f for f in flags_of(table, 1.2).values())


# -- split brain ------------------------------------------------------------------------


def test_two_sources_both_sending_are_two_masters() -> None:
    table = SpeakerTable()
    feed(table, [(t, v4("10.0.0.1", prio=150)) for t in range(10)])
    feed(table, [(t + 0.5, v4("10.0.0.2", prio=100)) for t in range(10)])
    flags = flags_of(table, 10.0)
    assert "2 masters!" in flags["10.0.0.1"] and "2 masters!" in flags["10.0.0.2"]
    warn = [w for w in table.warnings(10.0) if "masters!" in w]
    assert len(warn) == 1 and "prio 150" in warn[0] and "prio 100" in warn[0]
    assert "VRID 51 (IPv4)" in warn[0]
    rows = table.rows(10.0)
    assert [r.speaker.priority for r in rows] == [150, 100]  # highest first
    # the other one goes quiet: no longer a split brain once it counts as silent
    feed(table, [(t, v4("10.0.0.1", prio=150)) for t in range(10, 15)])
    later = flags_of(table, 14.0)
    assert not any("masters!" in f for f in later["10.0.0.1"])
    assert "silent" in later["10.0.0.2"]


def test_equal_priorities_both_sending_are_two_masters_too() -> None:
    table = SpeakerTable()
    feed(
        table,
        [(t, v4("10.0.0.1")) for t in range(4)] + [(t + 0.3, v4("10.0.0.2")) for t in range(4)],
    )
    assert all("2 masters!" in f for f in flags_of(table, 4.0).values())


def test_preemption_is_not_a_split_brain() -> None:
    # the master at 100 hears the new one at 200 and sends at most one more advert
    table = SpeakerTable()
    old = [(float(t), v4("10.0.0.1", prio=100)) for t in range(5)] + [(5.01, v4("10.0.0.1"))]
    new = [(5.0 + t, v4("10.0.0.2", prio=200)) for t in range(4)]
    feed(table, old + new)
    for now in (5.5, 6.5, 8.1):
        assert not any("masters!" in " ".join(f) for f in flags_of(table, now).values()), now
    assert not any("masters!" in w for w in table.warnings(8.1))


def test_failover_after_silence_is_not_a_split_brain() -> None:
    table = SpeakerTable()
    feed(table, [(float(t), v4("10.0.0.1", prio=150)) for t in range(5)])
    feed(table, [(7.5 + t, v4("10.0.0.2", prio=100)) for t in range(3)])
    flags = flags_of(table, 9.6)
    assert not any("masters!" in " ".join(f) for f in flags.values())
    assert "silent" in flags["10.0.0.1"]
    assert "silent" not in flags["10.0.0.2"]


def test_returning_master_preempting_is_not_a_split_brain() -> None:
    # a: master, silent (crash), back later and preempting b, which sends one more advert
    table = SpeakerTable()
    a = [(float(t), v4("10.0.0.1", prio=150)) for t in range(5)]
    a += [(12.0 + t, v4("10.0.0.1", prio=150)) for t in range(4)]
    b = [(7.5 + t, v4("10.0.0.2", prio=100)) for t in range(5)] + [(12.01, v4("10.0.0.2"))]
    feed(table, a + b)
    for now in (13.5, 15.1):
        assert not any("masters!" in " ".join(f) for f in flags_of(table, now).values()), now


def test_resigning_master_is_not_counted() -> None:
    table = SpeakerTable()
    feed(table, [(float(t), v4("10.0.0.2")) for t in range(4)])
    feed(table, [(t + 0.5, v4("10.0.0.1", prio=150)) for t in range(3)])
    table.observe(v4("10.0.0.1", prio=0), 3.5)
    flags = flags_of(table, 3.6)
    assert "resigned" in flags["10.0.0.1"]
    assert not any("masters!" in " ".join(f) for f in flags.values())


def test_ipv4_and_ipv6_share_no_vrid_space() -> None:
    table = SpeakerTable()
    feed(table, [(float(t), v4("10.0.0.1")) for t in range(4)])
    feed(table, [(t + 0.5, v6("fe80::2")) for t in range(4)])
    assert len(table.rows(4.0)) == 2
    assert not any("masters!" in " ".join(f) for f in flags_of(table, 4.0).values())
    assert not any("version" in w or "masters" in w for w in table.warnings(4.0))


# -- mismatches ------------------------------------------------------------------------


def test_interval_mismatch_within_one_vrid() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", prio=150, version=2, interval=100), 1.0)
    table.observe(v4("10.0.0.2", prio=100, version=2, interval=300), 1.5)
    table.observe(v4("10.0.0.3", vrid=52, version=2, interval=500), 1.5)  # another VRID
    flags = flags_of(table, 2.0)
    assert "interval mismatch" in flags["10.0.0.1"] and "interval mismatch" in flags["10.0.0.2"]
    assert "interval mismatch" not in flags["10.0.0.3"]
    warn = [w for w in table.warnings(2.0) if "interval mismatch" in w]
    assert len(warn) == 1 and "1s" in warn[0] and "3s" in warn[0] and "VRID 51" in warn[0]


def test_equal_intervals_are_no_mismatch() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", prio=150), 1.0)
    table.observe(v4("10.0.0.2"), 1.5)
    assert not any("mismatch" in w for w in table.warnings(2.0))


def test_version_mismatch() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", version=2), 1.0)
    table.observe(v4("10.0.0.2", version=3), 1.2)
    assert all("version mismatch" in f for f in flags_of(table, 1.5).values())


def test_addresses_differ() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1"), 1.0)
    table.observe(v4("10.0.0.2", addrs=(VIP, IPv4Address("10.0.0.101"))), 1.2)
    assert all("addresses differ" in f for f in flags_of(table, 1.5).values())
    row = table.rows(1.5)[1]
    assert row.to_json()["address_count"] == 2
    assert row.to_json()["addresses"] == ["10.0.0.100", "10.0.0.101"]


# -- auth ------------------------------------------------------------------------------


def test_password_is_hidden_unless_asked() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", version=2, auth=AuthType.PASS, password=b"s3cr3t"), 1.0)
    text = table.render(1.5)
    assert "s3cr3t" not in text and " pass " in text
    doc = table.to_json(1.5)
    assert "s3cr3t" not in json.dumps(doc)
    sp = doc["speakers"][0]
    assert sp["auth"] == "pass" and sp["auth_password_present"] is True
    assert "auth_password" not in sp
    assert "pass:s3cr3t" in table.render(1.5, show_auth=True)
    assert table.to_json(1.5, show_auth=True)["speakers"][0]["auth_password"] == "s3cr3t"


def test_auth_none_and_v3() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", version=2), 1.0)
    table.observe(v4("10.0.0.2", vrid=52), 1.0)
    by_src = {s["source"]: s for s in table.to_json(1.0)["speakers"]}
    assert by_src["10.0.0.1"]["auth"] == "none"
    assert by_src["10.0.0.1"]["auth_password_present"] is False
    assert by_src["10.0.0.2"]["auth"] is None  # VRRPv3 has no authentication


def test_auth_mismatch() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", version=2, auth=AuthType.PASS, password=b"one"), 1.0)
    table.observe(v4("10.0.0.2", version=2, auth=AuthType.PASS, password=b"two"), 1.2)
    flags = flags_of(table, 1.5)
    assert all("auth mismatch" in f for f in flags.values())
    assert not any("one" in w or "two" in w for w in table.warnings(1.5))  # still hidden


def test_same_password_is_no_auth_mismatch() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", version=2, auth=AuthType.PASS, password=b"one"), 1.0)
    table.observe(v4("10.0.0.2", version=2, auth=AuthType.PASS, password=b"one"), 1.2)
    assert not any("auth" in " ".join(f) for f in flags_of(table, 1.5).values())


# -- per speaker flags and bookkeeping -------------------------------------------------


def test_foreign_vrids() -> None:
    table = SpeakerTable(vrids={51})
    table.observe(v4("10.0.0.1"), 1.0)
    table.observe(v4("10.0.0.9", vrid=77), 1.0)
    flags = flags_of(table, 1.0)
    assert "foreign VRID" in flags["10.0.0.9"] and "foreign VRID" not in flags["10.0.0.1"]
    assert any("foreign VRIDs on this segment: 77" in w for w in table.warnings(1.0))
    plain = SpeakerTable()
    plain.observe(v4("10.0.0.9", vrid=77), 1.0)
    assert "foreign VRID" not in plain.rows(1.0)[0].flags


def test_ttl_other_than_255() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", ttl=64), 1.0)
    table.observe(v4("10.0.0.2", vrid=52), 1.0)
    flags = flags_of(table, 1.0)
    assert "TTL 64" in flags["10.0.0.1"]
    assert not any(f.startswith("TTL") for f in flags["10.0.0.2"])
    assert any("TTL 64" in w for w in table.warnings(1.0))
    assert table.to_json(1.0)["speakers"][0]["ttl"] == 64


def test_unicast_destination_is_flagged() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", dst=IPv4Address("10.0.0.2")), 1.0)
    assert "unicast" in table.rows(1.0)[0].flags
    assert table.to_json(1.0)["speakers"][0]["destination"] == "10.0.0.2"


def test_counts_rate_and_age() -> None:
    table = SpeakerTable()
    feed(table, [(10.0 + t, v4("10.0.0.1", interval=100)) for t in range(6)])
    [row] = table.rows(15.5)
    assert row.speaker.packets == 6
    assert row.rate == pytest.approx(1.0)
    assert row.age == pytest.approx(0.5)
    doc = row.to_json()
    assert doc["advert_int"] == 1.0 and doc["version"] == 3 and doc["family"] == 4
    assert doc["priority"] == 100 and doc["packets"] == 6 and doc["vrid"] == 51
    assert "late" not in row.flags


def test_late_when_adverts_come_slower_than_advertised() -> None:
    table = SpeakerTable()
    feed(table, [(0.4 * t, v4("10.0.0.1", interval=10)) for t in range(5)])  # 0.1s advertised
    assert "late" in table.rows(1.7)[0].flags


def test_decoded_advert_equals_the_datagram() -> None:
    adv = Advert(3, 51, 120, 100, (VIP,))
    pkt = encode_ipv4_packet(adv, src=IPv4Address("10.0.0.1"), dst=GROUP4)
    from_bytes, from_advert = SpeakerTable(), SpeakerTable()
    from_bytes.observe(pkt, 1.0)
    from_advert.observe(decode_ipv4_packet(pkt).advert, 1.0, src=IPv4Address("10.0.0.1"))
    ja, jb = from_bytes.to_json(1.0)["speakers"][0], from_advert.to_json(1.0)["speakers"][0]
    assert ja["ttl"] == 255 and jb["ttl"] is None  # not given: unknown
    assert ja | {"ttl": None} == jb
    assert jb["checksum"] == "pseudo-header" and jb["destination"] == "224.0.0.18"
    # an advert built by hand carries checksum 0: it verifies under no form
    hand = SpeakerTable()
    hand.observe(adv, 1.0, src="10.0.0.1", ttl=255)
    assert hand.to_json(1.0)["speakers"][0]["checksum"] == "bad"
    with pytest.raises(ValueError, match="src"):
        SpeakerTable().observe(adv, 1.0)


def test_malformed_and_foreign_protocols() -> None:
    table = SpeakerTable()
    good = v4("10.0.0.7")
    broken = good[:23] + bytes([9]) + good[24:]  # address count 9, one address present
    assert table.observe(broken, 1.0) is None
    ah_other = build_ipv4_header(IPv4Address("10.0.0.8"), GROUP4, 12, protocol=51)
    assert table.observe(ah_other + bytes([6, 1]) + bytes(10), 1.0) is None  # AH carrying TCP
    assert table.speakers == {}
    assert table.ignored == 1 and table.packets == 0
    assert table.malformed == {("10.0.0.7", "bad_addr_count"): 1}
    assert any("10.0.0.7: 1 undecodable" in w for w in table.warnings(1.0))
    assert table.observe(b"", 1.0) is None
    assert table.to_json(1.0)["malformed"] == 2


def test_empty_table_renders() -> None:
    assert "no VRRP advert heard yet" in SpeakerTable().render(0.0, title="t")


def test_render_shows_columns() -> None:
    table = SpeakerTable()
    table.observe(v4("10.0.0.1", prio=150), 1.0)
    lines = table.render(1.0).splitlines()
    assert lines[0].split()[:5] == ["VRID", "IP", "VER", "SOURCE", "PRIO"]
    assert lines[1].split()[:6] == ["51", "v4", "3", "10.0.0.1", "150", "1s"]
    assert "1:10.0.0.100" in lines[1]


# -- the shell, without capturing ------------------------------------------------------


def test_parser_accepts_watch() -> None:
    args = build_parser().parse_args(
        ["watch", "eth0", "--duration", "3", "--json", "--vrid", "51", "--vrid", "52"]
    )
    opts = watch_live.options_from_args(args)
    assert opts.iface == "eth0" and opts.duration == 3.0 and opts.as_json
    assert opts.vrids == frozenset({51, 52}) and opts.count is None and not opts.show_auth


def test_config_gives_the_expected_vrids(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "".join(
            f"vrrp_instance VI_{v} {{\n  state BACKUP\n  interface {i}\n  virtual_router_id {v}\n"
            f"  priority 100\n  virtual_ipaddress {{\n    10.0.{v}.1/24\n  }}\n}}\n"
            for v, i in ((51, "eth0"), (52, "eth0"), (60, "eth1"))
        )
    )
    assert watch_live.config_vrids(str(conf), "eth0") == {51, 52}
    assert watch_live.config_vrids(str(conf), "eth1") == {60}
    assert watch_live.config_vrids(str(conf), "bond9") == {51, 52, 60}  # none there: all


class FakeCapture:
    """Stands in for the scapy sniffer: a queue filled in advance."""

    packets: list[tuple[bytes, float]] = []

    def __init__(self, iface: str) -> None:
        self.queue: queue.SimpleQueue[tuple[bytes, float]] = queue.SimpleQueue()
        for item in self.packets:
            self.queue.put(item)
        self.stopped = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def test_watch_loop_json_with_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    now = time.time()
    FakeCapture.packets = [(v4("10.0.0.1", prio=150), now + i * 0.01) for i in range(3)]
    FakeCapture.packets += [(v4("10.0.0.5", vrid=9, version=2), now)]
    monkeypatch.setattr(watch_live, "Capture", FakeCapture)
    out = io.StringIO()
    rc = watch_live.watch(watch_live.WatchOptions("eth0", count=3, as_json=True), out)
    assert rc == 0
    doc = json.loads(out.getvalue())
    assert doc["interface"] == "eth0" and doc["packets"] == 3  # stopped at the count
    assert [(s["source"], s["priority"], s["packets"]) for s in doc["speakers"]] == [
        ("10.0.0.1", 150, 3)
    ]


def test_watch_loop_text_with_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    FakeCapture.packets = [(v4("10.0.0.1", vrid=7), time.time())]
    monkeypatch.setattr(watch_live, "Capture", FakeCapture)
    out = io.StringIO()
    assert watch_live.watch(watch_live.WatchOptions("eth0", duration=0.2), out) == 0
    text = out.getvalue()
    assert text.startswith("pyvrrpctl watch eth0: 1 speakers, 1 adverts")
    assert "\x1b[" not in text  # not a terminal: no live redraw
    assert "10.0.0.1" in text


def test_missing_scapy_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "scapy.sendrecv", None)
    assert ctl_main(["watch", "eth0", "--once", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "needs scapy" in err and "pip install scapy" in err


def test_frame_datagram_strips_ethernet() -> None:
    from scapy.layers.l2 import Ether

    pkt = v4("10.0.0.1")
    frame = bytes.fromhex("01005e000012 020000000001 0800") + pkt + bytes(10)  # padded
    sniffed: Any = Ether(frame)  # as scapy hands it over
    assert watch_live.frame_datagram(sniffed, lambda cls: 1)[: len(pkt)] == pkt  # type: ignore[index]
    assert watch_live.is_vrrp(pkt)
    assert watch_live.is_vrrp(v6("fe80::1"))
    assert not watch_live.is_vrrp(build_ipv4_header(GROUP4, GROUP4, 8, protocol=17) + bytes(8))
