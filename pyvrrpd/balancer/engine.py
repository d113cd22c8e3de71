"""The balancer's asyncio shell: checks -> virtual-server states -> the IPVS table.

:class:`BalancerEngine` maps the config (:mod:`.mapping`, :mod:`.checker_map`), runs every
check once in a shared :class:`~pyvrrpd.checks.runner.CheckRegistry` (identical checks of
several virtual servers run once), feeds results into one
:class:`~.virtual_server.VirtualServerState` per virtual server and reconciles the kernel
with what they want. Applies are serialised in one task: a burst of results becomes one
dump + plan + apply. At start the kernel's table is adopted: what already matches is not
written again; nothing is flushed unless ``lvs_flush``. Only services the config describes
are ever deleted. Scripts run in the background through :func:`run_script`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from pyvrrpd.checks.runner import CheckRegistry, CheckUpdate, Subscription
from pyvrrpd.config.model import Config
from pyvrrpd.ipvs.backend import IpvsBackend
from pyvrrpd.ipvs.model import IPAddress, ServiceEntry, ServiceKey
from pyvrrpd.ipvs.plan import DelService, Op, plan
from pyvrrpd.script_exec import run_script
from pyvrrpd.scripts import ScriptUser, default_script_user, resolve_script_user, split_script

from .checker_map import CheckSpec, real_server_checks
from .mapping import BalancerSpec, map_config
from .virtual_server import Action, Notice, RunScript, VirtualServerState, VirtualServerStatus

log = logging.getLogger(__name__)

#: Called with (virtual server, real server, check index, check kind, latency) for every
#: check result (the metrics' latency histograms).
ResultHook = Callable[[str, str, int, str, float], None]

#: How long stop() waits for scripts still running.
SCRIPT_DRAIN = 2.0


@dataclass(frozen=True, slots=True)
class BalancerStatus:
    """A snapshot: every virtual server, and the outcome of the last apply."""

    virtual_servers: tuple[VirtualServerStatus, ...]
    applies: int
    failed_ops: int


class BalancerEngine:
    """Health-checked IPVS for a config's ``virtual_server`` blocks.

    ``flush`` (default: ``lvs_flush``) empties the kernel's table at start;
    ``release_on_stop`` False (keepalived's ``-I``) leaves the table as it is at stop;
    otherwise stop() deletes our services, or flushes everything with
    ``lvs_flush_on_stop`` (ALL). ``local_addresses`` are the addresses on this host at
    start (for ``ha_suspend``; see :meth:`set_local_address`). ``previously_owned``
    names services an earlier config programmed (a restart-style reload passes the old
    engine's :attr:`owned`): those not wanted any more are deleted at start.
    """

    def __init__(
        self,
        config: Config,
        ipvs: IpvsBackend,
        *,
        flush: bool | None = None,
        release_on_stop: bool = True,
        local_addresses: Iterable[IPAddress] = (),
        previously_owned: Iterable[ServiceKey] = (),
        script_user: ScriptUser | None = None,
        draw: Callable[[], float] = random.random,
        result_hooks: list[ResultHook] | None = None,
    ) -> None:
        self.config = config
        self.ipvs = ipvs
        g = config.global_defs
        self.flush = g.lvs_flush if flush is None else flush
        self.release_on_stop = release_on_stop
        self.flush_on_stop = g.lvs_flush_on_stop
        self.spec: BalancerSpec = map_config(config)
        self._previously_owned = frozenset(previously_owned)
        self._script_user = self._given_user = script_user
        self._draw = draw
        self.result_hooks = result_hooks if result_hooks is not None else []
        self._addresses: dict[IPAddress, int] = {}
        for addr in local_addresses:
            self._addresses[addr] = self._addresses.get(addr, 0) + 1
        self.states: list[VirtualServerState] = []
        self._checks: list[list[list[CheckSpec]]] = []
        self._registry: CheckRegistry | None = None
        self._subs: list[Subscription] = []
        self._by_key: dict[Hashable, Subscription] = {}
        self._scripts: set[asyncio.Task[None]] = set()
        self._applier: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._requested = 0
        self._done = 0
        self._full = False  # the next pass covers the whole table
        self._dirty: set[int] = set()  # else: the virtual servers (indexes) to look at
        self._idle = asyncio.Condition()
        self.applies = 0
        self.failed_ops = 0
        self.running = False
        self._build()

    # --- setup ------------------------------------------------------------------------

    def _build(self) -> None:
        self.states, self._checks = self._derive(self.spec, self.config, {})

    def _derive(
        self, spec: BalancerSpec, config: Config, carry: dict[str, VirtualServerState]
    ) -> tuple[list[VirtualServerState], list[list[list[CheckSpec]]]]:
        """States and checks of ``spec``; a state in ``carry`` (by name) whose virtual
        server is unchanged is reused as it is (pool, quorum, check results)."""
        for problem in spec.problems:
            log.warning("%s", problem)
        states: list[VirtualServerState] = []
        checks: list[list[list[CheckSpec]]] = []
        for vspec in spec.virtual_servers:
            vs = config.virtual_servers[vspec.index]
            assert vs.describe() == vspec.name
            per_rs: list[list[CheckSpec]] = []
            for rs in vs.real_servers:
                specs, problems = real_server_checks(config, vs, rs)
                for problem in problems:
                    log.warning("%s", problem)
                per_rs.append(specs)
            ids = [[(c.key, c.schedule.alpha) for c in specs] for specs in per_rs]
            old = carry.get(vspec.name)
            if old is not None and old.same_as(vspec, ids):
                state = old
            else:
                state = VirtualServerState(vspec, ids)
                if old is not None:
                    state.inherit(old)
                if vspec.ha_suspend:
                    state.suspended = not any(vspec.watches(a) for a in self._addresses)
            states.append(state)
            checks.append(per_rs)
        return states, checks

    @property
    def check_tasks(self) -> int:
        """How many distinct checks are running (identical ones run once)."""
        return 0 if self._registry is None else self._registry.running()

    @property
    def owned(self) -> frozenset[ServiceKey]:
        """The services the config describes (the only ones we ever delete)."""
        return frozenset(s.key for v in self.spec.virtual_servers for s in v.services)

    def desired(self) -> dict[ServiceKey, ServiceEntry]:
        """The whole table every virtual server wants now."""
        table: dict[ServiceKey, ServiceEntry] = {}
        for state in self.states:
            table.update(state.desired())
        return table

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Program the table, then start the checks."""
        if self.running:
            raise RuntimeError("already started")
        self.running = True
        if self.flush:
            await self.ipvs.flush()
        if self.spec.timeouts is not None:
            try:
                await self.ipvs.set_timeouts(self.spec.timeouts)
            except Exception as exc:  # an error here must not stop the balancer
                log.error("IPVS: cannot set lvs_timeouts: %s", exc)
        for state in self.states:
            self._execute(state.start())
        self._requested += 1
        await self._apply_once()
        self._done = self._requested
        self._applier = asyncio.get_running_loop().create_task(self._apply_loop(), name="ipvs")
        registry = CheckRegistry(draw=self._draw)
        await registry.__aenter__()
        self._registry = registry
        self._subs = self._subscribe(registry)

    def _subscribe(self, registry: CheckRegistry) -> list[Subscription]:
        """Subscribe every check; a state not started yet is seeded with the state of
        checks that were already running (a reload), then started."""
        subs: list[Subscription] = []
        self._by_key = {}
        for v, per_rs in enumerate(self._checks):
            state = self.states[v]
            for r, specs in enumerate(per_rs):
                for n, spec in enumerate(specs):
                    callback = self._callback(v, r, n, spec)
                    sub = registry.subscribe(spec.check, spec.schedule, callback)
                    if not state.started:
                        state.seed(r, spec.key, sub.state)
                    subs.append(sub)
                    self._by_key[spec.key] = sub
            if not state.started:
                self._execute(state.start())
        return subs

    async def reload(self, config: Config) -> None:
        """Serve ``config`` from now on, in place: a virtual server left unchanged keeps its
        state as it is; in a changed one, every check that is still wanted keeps running
        with its state (no flap, no alpha restart); new checks start as at start-up. The
        kernel then gets only the difference, and services the old config described but
        the new one does not are deleted."""
        if not self.running or self._registry is None:
            raise RuntimeError("reload() needs a running engine")
        old_owned = self.owned | self._previously_owned
        old_timeouts = self.spec.timeouts
        carry = {state.spec.name: state for state in self.states}
        spec = map_config(config)
        states, checks = self._derive(spec, config, carry)
        for state, vspec in zip(states, spec.virtual_servers, strict=True):
            state.spec = vspec  # a kept state may have moved in the file
        self.config, self.spec = config, spec
        self.states, self._checks = states, checks
        self._full, self._dirty = True, set()  # indexes changed: the next pass is whole
        self.flush_on_stop = config.global_defs.lvs_flush_on_stop
        self._script_user = self._given_user
        self._previously_owned = old_owned - self.owned
        old_subs = self._subs
        # New subscriptions first: a check wanted before and after keeps its task and state.
        self._subs = self._subscribe(self._registry)
        for sub in old_subs:
            sub.close()
        if spec.timeouts is not None and spec.timeouts != old_timeouts:
            try:
                await self.ipvs.set_timeouts(spec.timeouts)
            except Exception as exc:
                log.error("IPVS: cannot set lvs_timeouts: %s", exc)
        self._request_apply()
        await self.settle()
        self._previously_owned = frozenset()

    def preview(
        self, config: Config
    ) -> tuple[dict[ServiceKey, ServiceEntry], frozenset[ServiceKey]]:
        """What :meth:`reload` of ``config`` would want in the kernel, and the services it
        may delete, computed from the current check states without changing anything
        (scripts are not run)."""
        spec = map_config(config)
        carry = {state.spec.name: state for state in self.states}
        states, checks = self._derive(spec, config, carry)
        table: dict[ServiceKey, ServiceEntry] = {}
        for state, per_rs in zip(states, checks, strict=True):
            if not state.started:
                for r, specs in enumerate(per_rs):
                    for c in specs:
                        sub = self._by_key.get(c.key)
                        if sub is not None:
                            state.seed(r, c.key, sub.state)
                state.start()
            table.update(state.desired())
        owned = frozenset(s.key for v in spec.virtual_servers for s in v.services)
        return table, owned | self.owned | self._previously_owned

    async def stop(self) -> None:
        """Stop the checks, run ``omega`` scripts and release the table (unless told not to)."""
        if not self.running:
            return
        self.running = False
        async with self._idle:
            self._idle.notify_all()
        for sub in self._subs:
            sub.close()
        self._subs.clear()
        if self._registry is not None:
            registry, self._registry = self._registry, None
            await registry.__aexit__(None, None, None)
        if self._applier is not None:
            self._applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._applier
            self._applier = None
        for state in self.states:
            self._execute(state.stop())
        if self.release_on_stop:
            await self._release()
        await self._drain_scripts()

    async def _release(self) -> None:
        if self.flush_on_stop == "ALL":
            await self.ipvs.flush()
            return
        observed = await self.ipvs.dump()
        ops: list[Op] = [DelService(k) for k in sorted(self.owned, key=ServiceKey.sort_key)]
        await self._apply_ops(
            [op for op in ops if isinstance(op, DelService) and op.key in observed]
        )

    async def _drain_scripts(self) -> None:
        if not self._scripts:
            return
        _done, pending = await asyncio.wait(set(self._scripts), timeout=SCRIPT_DRAIN)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def settle(self) -> None:
        """Wait until every requested apply has been done (for tests and reload)."""
        async with self._idle:
            await self._idle.wait_for(lambda: self._done >= self._requested or not self.running)

    # --- ha_suspend -------------------------------------------------------------------

    def set_local_address(self, address: IPAddress, present: bool) -> None:
        """An address was added to or removed from this host (drives ``ha_suspend``)."""
        count = self._addresses.get(address, 0) + (1 if present else -1)
        if count > 0:
            self._addresses[address] = count
        else:
            self._addresses.pop(address, None)
        for state in self.states:
            if state.spec.ha_suspend and state.spec.watches(address):
                here = any(state.spec.watches(a) for a in self._addresses)
                self._execute(state.set_suspended(not here))

    # --- checks -> states -------------------------------------------------------------

    def _callback(self, v: int, r: int, n: int, spec: CheckSpec) -> Callable[[CheckUpdate], None]:
        key: Hashable = spec.key
        kind = str(getattr(spec.check, "kind", type(spec.check).__name__))

        def on_update(update: CheckUpdate) -> None:
            state = self.states[v]
            for hook in self.result_hooks:
                try:
                    hook(state.spec.name, state.spec.real_servers[r].name, n, kind,
                         update.result.latency)  # fmt: skip
                except Exception:
                    log.exception("check result hook failed")
            before = (state.sorry_active, state.dest_weights())
            self._execute(state.on_check(r, key, update.state))
            if (state.sorry_active, state.dest_weights()) != before:
                self._request_apply(v)

        return on_update

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Notice):
                log.info("%s", action.message)
            else:
                self._start_script(action)

    def _start_script(self, action: RunScript) -> None:
        task = asyncio.get_running_loop().create_task(self._run_script(action))
        self._scripts.add(task)
        task.add_done_callback(self._scripts.discard)

    def _user(self, words: tuple[str, ...]) -> ScriptUser:
        if len(words) > 1:
            return resolve_script_user(words[1], words[2] if len(words) > 2 else None)
        if self._script_user is None:
            g = self.config.global_defs
            configured = None
            if g.script_user:
                configured = (
                    g.script_user[0],
                    g.script_user[1] if len(g.script_user) > 1 else None,
                )
            self._script_user = default_script_user(configured, g.enable_script_security)
        return self._script_user

    async def _run_script(self, action: RunScript) -> None:
        try:
            argv = split_script(action.script[0])
            user = self._user(action.script)
        except ValueError as exc:
            log.error("script for %s: %s", action.reason, exc)
            return
        outcome = await run_script(argv, user=user, timeout=action.timeout)
        if not outcome.ok:
            log.warning("script %s (%s) %s", argv[0], action.reason, outcome.describe())

    # --- applying ---------------------------------------------------------------------

    def _request_apply(self, vs: int | None = None) -> None:
        """Ask the applier for a pass: over virtual server ``vs`` only, or everything."""
        if vs is None:
            self._full = True
        else:
            self._dirty.add(vs)
        self._requested += 1
        self._wake.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let a burst of same-tick results coalesce
            target = self._requested
            dirty = None if self._full else self._dirty
            self._full, self._dirty = False, set()
            try:
                await self._apply_once(dirty)
            except Exception:
                log.exception("IPVS: applying the table failed")
                self._full = True  # the next pass looks at everything again
            async with self._idle:
                self._done = target
                self._idle.notify_all()

    async def _apply_once(self, dirty: set[int] | None = None) -> None:
        """Make the kernel match: the whole table, or the services of the virtual servers
        in ``dirty`` (only those are dumped: a check flip on a large table reads one
        service's destinations, not every service's)."""
        if dirty is None:
            observed = await self.ipvs.dump()
            ops = plan(self.desired(), observed, owned=self.owned | self._previously_owned)
        else:
            desired: dict[ServiceKey, ServiceEntry] = {}
            for v in dirty:
                desired.update(self.states[v].desired())
            if not desired:
                return
            keys = frozenset(desired)
            ops = plan(desired, await self.ipvs.dump(keys), owned=keys)
        await self._apply_ops(ops)

    async def _apply_ops(self, ops: list[Op]) -> None:
        if not ops:
            return
        self.applies += 1
        for result in await self.ipvs.apply(ops):
            if result.ok:
                log.debug("IPVS: %s", result)
            else:
                self.failed_ops += 1
                log.error("IPVS: %s", result)

    # --- status -----------------------------------------------------------------------

    def status(self) -> BalancerStatus:
        """Every virtual server's state: servers, weights, last check results."""
        return BalancerStatus(tuple(s.status() for s in self.states), self.applies, self.failed_ops)
