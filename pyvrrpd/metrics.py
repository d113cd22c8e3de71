"""Prometheus metrics (``pyvrrpd --metrics ADDRESS``).

:class:`SnapshotCollector` builds every metric family from the daemon's status snapshot
(:func:`pyvrrpd.status.snapshot`) when Prometheus scrapes, so nothing is counted twice.
:class:`MetricsServer` serves ``/metrics`` with a small h11 server on the daemon's event
loop. The snapshot is taken on the loop, between two steps of the engines (reading
their state from another thread, as ``prometheus_client.start_http_server`` would, could
see it half-changed); building the metric families and the text from that plain-data
snapshot then runs in a worker thread, so a large exposition (hundreds of real servers:
tens of milliseconds) does not hold VRRP's timers. One scrape is rendered at a time.

This module needs ``prometheus_client``; it is imported only when ``--metrics`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import h11

try:
    from prometheus_client import PlatformCollector, ProcessCollector
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
    )
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as exc:  # pragma: no cover - exercised by hand
    raise ImportError(
        "--metrics needs the prometheus_client package "
        "(pip install 'pyvrrpd[metrics]', or pip install prometheus-client)"
    ) from exc

log = logging.getLogger("pyvrrpd.metrics")

#: A status snapshot (the dict of pyvrrpd.status.snapshot) taken on demand.
Snapshot = Callable[[], Mapping[str, Any]]

VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "STOPPED")

#: Upper bounds (seconds) of the check latency histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: (vrrp counter name in the snapshot, metric name without _total, help)
VRRP_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("adverts_received", "adverts_received", "VRRP adverts received and accepted"),
    ("adverts_sent", "adverts_sent", "VRRP adverts sent"),
    ("priority_zero_received", "priority_zero_received", "Priority-0 adverts received"),
    ("priority_zero_sent", "priority_zero_sent", "Priority-0 adverts sent"),
    ("transitions", "transitions", "State transitions of the instance"),
    ("became_master", "became_master", "Transitions to MASTER"),
    ("released_master", "released_master", "Transitions out of MASTER"),
    ("send_failures", "send_failures", "Adverts that could not be sent"),
)

CHECK_LABELS = ("virtual_server", "real_server", "check", "kind")
CheckKey = tuple[str, str, str, str]


class LatencyHistograms:
    """Cumulative check-latency histograms.

    Live (the daemon calls :meth:`record` for every check result through the balancer's
    result hook) every result is counted. Otherwise a result is observed when a scrape
    sees it for the first time in the snapshot (results that come and go between two
    scrapes are missed).
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[CheckKey, list[int]] = {}  # per bucket, then +Inf
        self._sums: dict[CheckKey, float] = {}
        self._seen: dict[CheckKey, tuple[Any, ...]] = {}
        self.live = False

    def record(self, vs: str, rs: str, index: int, kind: str, latency: float) -> None:
        """Count one check result (the balancer's result hook); makes the histograms live."""
        self.live = True
        self._add((vs, rs, str(index), kind), latency)

    def _add(self, key: CheckKey, latency: float) -> None:
        counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
        index = next((i for i, le in enumerate(self.buckets) if latency <= le), len(self.buckets))
        counts[index] += 1
        self._sums[key] = self._sums.get(key, 0.0) + latency

    def observe(self, key: CheckKey, last: Mapping[str, Any]) -> bool:
        """A scrape saw ``last`` (a check result): count it unless it is the one seen before
        or the histograms are live; True if it was new."""
        ident = (last.get("ok"), last.get("cause"), last.get("latency"))
        if self._seen.get(key) == ident:
            return False
        self._seen[key] = ident
        if not self.live:
            self._add(key, float(last.get("latency") or 0.0))
        return True

    def retain(self, keys: Iterable[CheckKey]) -> None:
        """Forget the checks not in ``keys`` (gone after a reload)."""
        keep = set(keys)
        for table in (self._counts, self._sums, self._seen):
            for key in [k for k in table if k not in keep]:
                del table[key]

    def series(self) -> Iterator[tuple[CheckKey, list[tuple[str, float]], float]]:
        """Each check's cumulative buckets (``le`` as text, count) and sum."""
        for key, counts in self._counts.items():
            total = 0
            cumulative: list[tuple[str, float]] = []
            for le, n in zip((*self.buckets, float("inf")), counts, strict=True):
                total += n
                cumulative.append(("+Inf" if le == float("inf") else repr(le), float(total)))
            yield key, cumulative, self._sums[key]


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _flag(value: Any) -> float:
    return 1.0 if value else 0.0


class SnapshotCollector:
    """A prometheus_client collector reading a fresh status snapshot at every scrape."""

    def __init__(self, snapshot: Snapshot, histograms: LatencyHistograms | None = None) -> None:
        self.snapshot = snapshot
        self.histograms = histograms if histograms is not None else LatencyHistograms()

    def collect(self) -> Iterator[Metric]:
        """Every pyvrrpd metric family, from a fresh snapshot."""
        return self.families(self.snapshot())

    def families(self, snap: Mapping[str, Any]) -> Iterator[Metric]:
        """Every pyvrrpd metric family, from ``snap`` (feeds the latency histograms)."""
        yield from self._daemon(snap)
        yield from self._vrrp(snap)
        yield from self._ipvs(snap)

    # --- the process ----------------------------------------------------------------

    def _daemon(self, snap: Mapping[str, Any]) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "pyvrrpd_build", "pyvrrpd's version", value={"version": str(snap.get("version"))}
        )
        yield GaugeMetricFamily(
            "pyvrrpd_uptime_seconds", "Seconds since the daemon started", value=snap["uptime"]
        )
        yield CounterMetricFamily(
            "pyvrrpd_reloads", "Configuration reloads applied", value=snap["reloads"]
        )

    # --- VRRP -----------------------------------------------------------------------

    def _vrrp(self, snap: Mapping[str, Any]) -> Iterator[Metric]:
        inst_l = ["instance"]
        info = InfoMetricFamily(
            "pyvrrpd_vrrp_instance",
            "A VRRP instance: interface, VRID, protocol version and address family",
            labels=inst_l,
        )
        state = _gauge(
            "pyvrrpd_vrrp_state", "1 for the instance's current state, 0 for the others",
            [*inst_l, "state"],
        )  # fmt: skip
        prio = _gauge("pyvrrpd_vrrp_priority", "Configured priority", inst_l)
        eff = _gauge("pyvrrpd_vrrp_effective_priority", "Priority after trackers' weights", inst_l)
        vips = _gauge("pyvrrpd_vrrp_vips", "Virtual addresses configured", inst_l)
        tracker = _gauge(
            "pyvrrpd_vrrp_tracker_up",
            "1 if a tracked interface/script/process is up, 0 if down (unknown: absent)",
            [*inst_l, "tracker", "kind"],
        )
        counters = {
            key: _counter(f"pyvrrpd_vrrp_{name}", doc, inst_l) for key, name, doc in VRRP_COUNTERS
        }
        drops = _counter("pyvrrpd_vrrp_drops", "Adverts dropped, by reason", [*inst_l, "reason"])
        for i in snap.get("vrrp", []):
            name = str(i["name"])
            info.add_metric(
                [name],
                {
                    "interface": str(i["interface"]),
                    "vrid": str(i["vrid"]),
                    "version": str(i["version"]),
                    "family": str(i["family"]),
                },
            )
            for s in VRRP_STATES:
                state.add_metric([name, s], _flag(i["state"] == s))
            prio.add_metric([name], i["base_priority"])
            eff.add_metric([name], i["effective_priority"])
            vips.add_metric([name], len(i.get("vips", [])))
            for t in i.get("trackers", []):
                if t.get("up") is not None:
                    tracker.add_metric([name, str(t["name"]), str(t["kind"])], _flag(t["up"]))
            c = i["counters"]
            for key, family in counters.items():
                family.add_metric([name], c.get(key, 0))
            for reason, n in sorted(i.get("drops", {}).items()):
                drops.add_metric([name, str(reason)], n)
        unmatched = _counter(
            "pyvrrpd_vrrp_unmatched_drops",
            "Adverts dropped before an instance could be named (unknown VRID, bad header)",
            ["reason"],
        )
        for reason, n in sorted(snap.get("vrrp_unmatched_drops", {}).items()):
            unmatched.add_metric([str(reason)], n)
        yield from (info, state, prio, eff, vips, tracker, *counters.values(), drops, unmatched)

    # --- IPVS -----------------------------------------------------------------------

    def _ipvs(self, snap: Mapping[str, Any]) -> Iterator[Metric]:
        lvs = snap.get("ipvs")
        vs_l, rs_l = ["virtual_server"], ["virtual_server", "real_server"]
        running = _gauge(
            "pyvrrpd_ipvs_balancer_running",
            "1 when virtual servers are programmed, 0 when IPVS is off or unavailable",
            [],
        )
        running.add_metric([], _flag(lvs is not None))
        applies = _counter(
            "pyvrrpd_ipvs_applies", "Batches of IPVS operations sent to the kernel", []
        )
        failed = _counter("pyvrrpd_ipvs_failed_ops", "IPVS operations the kernel refused", [])
        quorum = _gauge("pyvrrpd_ipvs_virtual_server_quorum_up", "1 if quorum is met", vs_l)
        sorry = _gauge(
            "pyvrrpd_ipvs_virtual_server_sorry_active", "1 if the sorry server is in", vs_l
        )
        suspended = _gauge(
            "pyvrrpd_ipvs_virtual_server_suspended", "1 if suspended by ha_suspend", vs_l
        )
        wsum = _gauge(
            "pyvrrpd_ipvs_virtual_server_weight_sum", "Sum of alive real servers' weights", vs_l
        )
        up = _gauge("pyvrrpd_ipvs_real_server_up", "1 if the real server is alive", rs_l)
        weight = _gauge("pyvrrpd_ipvs_real_server_weight", "Effective weight", rs_l)
        in_pool = _gauge(
            "pyvrrpd_ipvs_real_server_in_pool",
            "1 if in the kernel's table with a weight above 0",
            rs_l,
        )
        check_up = _gauge("pyvrrpd_ipvs_check_up", "1 if the check counts as up", CHECK_LABELS)
        last_ok = _gauge(
            "pyvrrpd_ipvs_check_last_success", "1 if the check's last run passed", CHECK_LABELS
        )
        last_lat = _gauge(
            "pyvrrpd_ipvs_check_last_latency_seconds",
            "How long the check's last run took",
            CHECK_LABELS,
        )
        hist = HistogramMetricFamily(
            "pyvrrpd_ipvs_check_latency_seconds",
            "Check run times (each last result seen at a scrape counted once)",
            labels=list(CHECK_LABELS),
        )
        keys: list[CheckKey] = []
        if lvs is not None:
            applies.add_metric([], lvs.get("applies", 0))
            failed.add_metric([], lvs.get("failed_ops", 0))
            for vs in lvs.get("virtual_servers", []):
                vname = str(vs["name"])
                quorum.add_metric([vname], _flag(vs["quorum_up"]))
                sorry.add_metric([vname], _flag(vs["sorry_active"]))
                suspended.add_metric([vname], _flag(vs["suspended"]))
                wsum.add_metric([vname], vs["weight_sum"])
                for rs in vs.get("servers", []):
                    rname = str(rs["name"])
                    up.add_metric([vname, rname], _flag(rs["alive"]))
                    weight.add_metric([vname, rname], rs["weight"])
                    in_pool.add_metric([vname, rname], _flag(rs["in_pool"]))
                    for n, chk in enumerate(rs.get("checks", [])):
                        key = (vname, rname, str(n), str(chk.get("kind") or ""))
                        keys.append(key)
                        check_up.add_metric(list(key), _flag(chk.get("up")))
                        last = chk.get("last")
                        if not chk.get("has_run", True) or not isinstance(last, Mapping):
                            continue
                        last_ok.add_metric(list(key), _flag(last.get("ok")))
                        last_lat.add_metric(list(key), float(last.get("latency") or 0.0))
                        self.histograms.observe(key, last)
        self.histograms.retain(keys)
        for key, buckets, total in self.histograms.series():
            hist.add_metric(list(key), buckets, total)
        yield from (running, applies, failed, quorum, sorry, suspended, wsum)
        yield from (up, weight, in_pool, check_up, last_ok, last_lat, hist)
        yield from self._drains(snap)

    @staticmethod
    def _drains(snap: Mapping[str, Any]) -> Iterator[Metric]:
        labels = ["virtual_server", "real_server"]
        active = _gauge(
            "pyvrrpd_ipvs_drain_active_connections",
            "Active connections last seen on a real server being drained",
            labels,
        )
        removed = _gauge(
            "pyvrrpd_ipvs_drain_removed",
            "1 once a drained real server has been taken out of the kernel's table",
            labels,
        )
        for d in snap.get("drains", []):
            active.add_metric([str(d["vs"]), str(d["rs"])], d["active"])
            removed.add_metric([str(d["vs"]), str(d["rs"])], _flag(d["removed"]))
        yield from (active, removed)


def process_collectors() -> list[Collector]:
    """prometheus_client's ``process_*`` and ``python_info`` collectors (unregistered)."""
    return [ProcessCollector(registry=None), PlatformCollector(registry=None)]


class _Frozen:
    """One scrape: pyvrrpd's families from a snapshot already taken, then the others."""

    def __init__(
        self, collector: SnapshotCollector, snap: Mapping[str, Any], others: Sequence[Collector]
    ) -> None:
        self.collector, self.snap, self.others = collector, snap, others

    def collect(self) -> Iterator[Metric]:
        yield from self.collector.families(self.snap)
        for other in self.others:
            yield from other.collect()


INDEX = b'<html><body><a href="/metrics">pyvrrpd metrics</a></body></html>\n'


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 on the event loop; one request per connection.

    ``host`` None listens on every address; ``process`` adds prometheus_client's
    ``process_*`` and ``python_info`` metrics; a client silent for ``timeout`` seconds
    is dropped.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        host: str | None,
        port: int,
        *,
        process: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.collector = SnapshotCollector(snapshot)
        self.others = process_collectors() if process else []
        self._render_lock = asyncio.Lock()
        self.host = host
        self.port = port
        self.timeout = timeout
        self.server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    @property
    def addresses(self) -> list[str]:
        """Where we listen (``host:port`` / ``[v6]:port``)."""
        out = []
        for sock in self.server.sockets if self.server is not None else ():
            host, port = sock.getsockname()[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    async def start(self) -> None:
        """Bind and listen (OSError when the address is taken or not ours)."""
        self.server = await asyncio.start_server(self._client, self.host, self.port)

    async def close(self) -> None:
        """Stop listening and drop the clients being served."""
        if self.server is not None:
            self.server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self.server.wait_closed()
            self.server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    request = await self._request(conn, reader)
                except h11.RemoteProtocolError:
                    request = None
                    await self._send(conn, writer, 400, b"bad request\n", "text/plain")
                if request is not None:
                    await self._answer(conn, writer, request)
        except (TimeoutError, ConnectionError, h11.ProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    @staticmethod
    async def _request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                return event
            else:
                return None  # closed before a request

    async def _answer(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request
    ) -> None:
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await self._send(conn, writer, 405, b"only GET\n", "text/plain", [(b"allow", b"GET")])
            return
        if path == "/":
            await self._send(conn, writer, 200, INDEX, "text/html", head=method == "HEAD")
            return
        if path != "/metrics":
            await self._send(conn, writer, 404, b"not found: try /metrics\n", "text/plain")
            return
        accept = next((v for k, v in request.headers if k == b"accept"), b"")
        try:
            body, content_type = await self.render(accept.decode("latin-1"))
        except Exception:
            log.exception("metrics: collecting failed")
            await self._send(conn, writer, 500, b"collecting metrics failed\n", "text/plain")
            return
        await self._send(conn, writer, 200, body, content_type, head=method == "HEAD")

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header, and its content type.

        The snapshot is taken here, on the loop; the rest runs in a worker thread.
        """
        encoder, content_type = choose_encoder(accept)
        async with self._render_lock:
            scrape = _Frozen(self.collector, self.collector.snapshot(), self.others)
            body = await asyncio.to_thread(encoder, scrape)
        return body, content_type

    @staticmethod
    async def _send(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
        *,
        head: bool = False,
    ) -> None:
        headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
            *extra,
        ]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        if not head:
            writer.write(conn.send(h11.Data(data=body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()


async def start_metrics(snapshot: Snapshot, listen: tuple[str | None, int]) -> MetricsServer | None:
    """Serve metrics on ``listen`` (host or None for every address, port); None if bind fails.

    A failure is logged, not raised: VRRP and IPVS must run whether or not Prometheus
    can reach us.
    """
    host, port = listen
    server = MetricsServer(snapshot, host, port)
    try:
        await server.start()
    except OSError as exc:
        where = f"[{host}]:{port}" if host and ":" in host else f"{host or '*'}:{port}"
        log.error("metrics: cannot listen on %s: %s (no metrics served)", where, exc)
        return None
    log.info("metrics: serving /metrics on %s", ", ".join(server.addresses))
    return server
