"""One virtual server's real-server, quorum and sorry-server rules (pure: no I/O, no clock).

keepalived's rules (check/ipwrapper.c), restated:

* a real server is *alive* when every one of its checks is up (none: always alive); with
  ``alpha`` its checks start down, so it starts out of the pool;
* its weight is the configured one plus what checks report: MISC_CHECK ``misc_dynamic``
  sets it (exit status - 2), FILE_CHECK adds ``value * weight``; a down check reports
  nothing; the kernel gets it clamped to [0, 2^31-1];
* quorum: the sum of the weights of alive servers; quorum is gained when it reaches
  ``quorum + hysteresis`` and lost when it falls below ``quorum - hysteresis`` (or to 0);
  ``quorum_up``/``quorum_down`` run on each change (and ``quorum_up`` at start when the
  quorum is there, ``quorum_down`` at start when it is not and a sorry server exists);
* while the quorum is lost the sorry server is the only server with weight (every alive
  server leaves the pool); it leaves when the quorum is back;
* ``inhibit_on_failure`` keeps a server in the table with weight 0 instead of removing it
  (``sorry_server_inhibit`` the same for the sorry server);
* ``notify_up``/``notify_down`` run when a server's state changes (and ``notify_down``
  after the first failed check of an ``alpha`` server); ``omega`` runs the down
  scripts at shutdown too;
* ``ha_suspend``: while none of the service's addresses is on this host the checks are
  suspended: their results are ignored and the pool stays as it is.

The desired table is recomputed from this state (:meth:`VirtualServerState.desired`), so
the IPVS layer only ever sees a target, never a sequence of commands.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace

from pyvrrpd.checks.base import CheckResult, CheckState
from pyvrrpd.ipvs.model import Dest, DestKey, ServiceEntry, ServiceKey

from .mapping import RealServerSpec, Script, VirtualServerSpec, dest_for, real_weight

#: How long shutdown scripts may run (keepalived: one second).
STOP_SCRIPT_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class RunScript:
    """Run a configured script (command string, then optional user and group)."""

    script: Script
    reason: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a log line (keepalived logs the same events)."""

    message: str


Action = RunScript | Notice


@dataclass(slots=True)
class _Check:
    up: bool
    alpha: bool
    has_run: bool = False
    contribution: int = 0
    last: CheckResult | None = None


@dataclass(slots=True)
class _Server:
    spec: RealServerSpec
    checks: dict[Hashable, _Check]
    alive: bool = False

    @property
    def weight(self) -> int:
        return self.spec.weight + sum(c.contribution for c in self.checks.values())

    def all_up(self) -> bool:
        return all(c.up for c in self.checks.values())


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """A check's state as shown by status()."""

    check: Hashable
    up: bool
    has_run: bool
    last: CheckResult | None


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A real server's state as shown by status()."""

    name: str
    alive: bool
    weight: int  # effective weight (clamped), whether in the pool or not
    in_pool: bool  # present in the table with a weight > 0
    checks: tuple[CheckStatus, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class VirtualServerStatus:
    """A virtual server's state as shown by status()."""

    name: str
    quorum_up: bool
    weight_sum: int
    sorry_active: bool
    suspended: bool
    servers: tuple[ServerStatus, ...]


class VirtualServerState:
    """The live state of one virtual server.

    ``checks[i]`` lists (id, alpha) of real server ``i``'s checks; ids are any hashable
    value the caller uses again in :meth:`on_check`. Call :meth:`start` once first.
    """

    def __init__(
        self, spec: VirtualServerSpec, checks: Sequence[Sequence[tuple[Hashable, bool]]]
    ) -> None:
        if len(checks) != len(spec.real_servers):
            raise ValueError("one list of checks per real server is needed")
        self.spec = spec
        self._ids = tuple(tuple(ids) for ids in checks)
        self._servers = [
            _Server(rs, {cid: _Check(up=not alpha, alpha=alpha) for cid, alpha in ids})
            for rs, ids in zip(spec.real_servers, checks, strict=True)
        ]
        self.quorum_up = spec.quorum + spec.hysteresis <= 0
        self.sorry_active = False
        self.suspended = spec.ha_suspend
        self.started = False

    # --- reload -----------------------------------------------------------------------

    def same_as(
        self, spec: VirtualServerSpec, checks: Sequence[Sequence[tuple[Hashable, bool]]]
    ) -> bool:
        """Whether this state already serves ``spec`` with these checks (a reload that left
        the virtual server unchanged, wherever it now sits in the file)."""
        if tuple(tuple(ids) for ids in checks) != self._ids:
            return False
        return replace(self.spec, index=spec.index) == spec

    def inherit(self, old: VirtualServerState) -> None:
        """Take over the quorum and sorry-server state of the same virtual server before a
        reload changed it, so that :meth:`start` reports only real changes."""
        if old.started:
            self.quorum_up = old.quorum_up
            self.sorry_active = old.sorry_active and self.spec.sorry_server is not None

    def seed(self, server: int, check: Hashable, state: CheckState) -> None:
        """Before :meth:`start`: a check that was already running reports its state."""
        if self.started:
            raise RuntimeError("seed() comes before start()")
        srv = self._servers[server]
        chk = srv.checks[check]
        chk.up, chk.has_run, chk.last = state.up, state.has_run, state.last
        chk.contribution = self._contribution(srv, state) if state.up else 0

    # --- inputs -----------------------------------------------------------------------

    def start(self) -> list[Action]:
        """Initial pool: servers whose checks are all up are alive; quorum evaluated."""
        for srv in self._servers:
            srv.alive = srv.all_up()
        self.started = True
        return self._update_quorum(init=True)

    def on_check(self, server: int, check: Hashable, state: CheckState) -> list[Action]:
        """A check of real server ``server`` produced a result (its new ``state``)."""
        srv = self._servers[server]
        chk = srv.checks[check]
        if self.suspended:
            return []
        chk.last = state.last
        first = not chk.has_run
        chk.has_run = True
        old_weight = srv.weight
        chk.up = state.up
        chk.contribution = self._contribution(srv, state) if state.up else 0
        actions: list[Action] = []
        alive = srv.all_up()
        changed = alive != srv.alive
        new_weight, old = real_weight(srv.weight), real_weight(old_weight)
        if new_weight != old:
            msg = f"Changing weight from {old} to {new_weight} for service {self._rs(srv)}"
            actions.append(Notice(msg))
        if changed:
            srv.alive = alive
            actions.append(Notice(f"{'Adding' if alive else 'Removing'} service {self._rs(srv)}"))
            actions.extend(self._rs_notify(srv))
        elif first and (chk.alpha or not state.up):
            actions.extend(self._rs_notify(srv))
        if changed or (srv.alive and new_weight != old):
            actions.extend(self._update_quorum(init=False))
        return actions

    def set_suspended(self, suspended: bool) -> list[Action]:
        """Suspend or resume the checks (``ha_suspend``: the address left or came back)."""
        if not self.spec.ha_suspend or suspended == self.suspended:
            return []
        self.suspended = suspended
        verb = "Suspending" if suspended else "Activating"
        return [Notice(f"{verb} healthcheckers for VS {self.spec.name}")]

    def stop(self) -> list[Action]:
        """Scripts to run at shutdown: with ``omega``, down notifications for what is up."""
        if not self.spec.omega:
            return []
        actions: list[Action] = []
        for srv in self._servers:
            if srv.alive and srv.spec.notify_down:
                reason = f"shutting down service {self._rs(srv)}"
                actions.append(RunScript(srv.spec.notify_down, reason, STOP_SCRIPT_TIMEOUT))
        if self.spec.quorum_down:
            reason = f"shutting down VS {self.spec.name}"
            actions.append(RunScript(self.spec.quorum_down, reason, STOP_SCRIPT_TIMEOUT))
        return actions

    # --- outputs ----------------------------------------------------------------------

    def weight_sum(self) -> int:
        """The sum of the weights of alive servers (what the quorum compares)."""
        return sum(real_weight(s.weight) for s in self._servers if s.alive)

    def dest_weights(self) -> list[tuple[RealServerSpec, int]]:
        """The servers in the table and their weights (0: inhibited)."""
        out: list[tuple[RealServerSpec, int]] = []
        for srv in self._servers:
            if self.sorry_active or not srv.alive:
                if srv.spec.inhibit:
                    out.append((srv.spec, 0))
            else:
                out.append((srv.spec, srv.weight))
        sorry = self.spec.sorry_server
        if sorry is not None:
            if self.sorry_active:
                out.append((sorry, sorry.weight))
            elif sorry.inhibit:
                out.append((sorry, 0))
        return out

    def desired(self) -> dict[ServiceKey, ServiceEntry]:
        """The table this virtual server wants (one entry per kernel service)."""
        weights = self.dest_weights()
        table: dict[ServiceKey, ServiceEntry] = {}
        for svc in self.spec.services:
            dests: dict[DestKey, Dest] = {}
            for rs, weight in weights:
                dest = dest_for(svc.key, rs, weight)
                dests[dest.key] = dest  # a sorry server equal to a real server wins
            table[svc.key] = ServiceEntry(svc, dests)
        return table

    def status(self) -> VirtualServerStatus:
        """A snapshot for status displays."""
        in_pool = {id(rs) for rs, w in self.dest_weights() if real_weight(w) > 0}
        servers = tuple(
            ServerStatus(
                name=srv.spec.name,
                alive=srv.alive,
                weight=real_weight(srv.weight),
                in_pool=id(srv.spec) in in_pool,
                checks=tuple(
                    CheckStatus(cid, c.up, c.has_run, c.last) for cid, c in srv.checks.items()
                ),
            )
            for srv in self._servers
        )
        return VirtualServerStatus(
            name=self.spec.name,
            quorum_up=self.quorum_up,
            weight_sum=self.weight_sum(),
            sorry_active=self.sorry_active,
            suspended=self.suspended,
            servers=servers,
        )

    # --- rules ------------------------------------------------------------------------

    @staticmethod
    def _contribution(srv: _Server, state: CheckState) -> int:
        if state.weight is None:
            return 0
        if state.weight_delta:
            return state.weight
        return state.weight - srv.spec.weight  # misc_dynamic: an absolute weight

    def _rs(self, srv: _Server) -> str:
        return f"{srv.spec.name} of VS {self.spec.name}"

    def _rs_notify(self, srv: _Server) -> list[Action]:
        script = srv.spec.notify_up if srv.alive else srv.spec.notify_down
        if not script:
            return []
        return [RunScript(script, f"service {self._rs(srv)} {'up' if srv.alive else 'down'}")]

    def _update_quorum(self, init: bool) -> list[Action]:
        """keepalived's update_quorum_state()."""
        total = self.weight_sum()
        q, h = self.spec.quorum, self.spec.hysteresis
        sorry = self.spec.sorry_server
        if not self.quorum_up and total >= q + h:
            self.quorum_up = True
            what = "Starting with quorum up" if init else "Gained quorum"
            actions: list[Action] = [
                Notice(f"{what} {q}+{h}={q + h} <= {total} for VS {self.spec.name}")
            ]
            if self.sorry_active:
                self.sorry_active = False
                assert sorry is not None
                actions.append(Notice(f"Removing sorry server {sorry.name} from {self.spec.name}"))
            if self.spec.quorum_up:
                actions.append(RunScript(self.spec.quorum_up, f"quorum up for {self.spec.name}"))
            return actions
        lost = self.quorum_up and (total == 0 or total < q - h)
        starting_down = init and not self.quorum_up and sorry is not None and not self.sorry_active
        if not (lost or starting_down):
            return []
        self.quorum_up = False
        what = "Starting with quorum down" if init else "Lost quorum"
        threshold = q + h if init else q - h
        actions = [Notice(f"{what} {q}-{h}={threshold} > {total} for VS {self.spec.name}")]
        if sorry is not None and not self.sorry_active:
            self.sorry_active = True
            actions.append(Notice(f"Adding sorry server {sorry.name} to {self.spec.name}"))
        if self.spec.quorum_down:
            actions.append(RunScript(self.spec.quorum_down, f"quorum down for {self.spec.name}"))
        return actions
