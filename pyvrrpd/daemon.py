"""The running daemon: both sides, reload as a diff, and a status snapshot."""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .cli.configtest import default_config_id, host_environment, security_violations
from .config.errors import ConfigError, Diagnostic, Severity
from .config.load import LoadResult, load_config
from .drain import Drainer, DrainingIpvs, Drains
from .net.backend import NetBackend
from .release import StateRecorder
from .vrrp.engine import VrrpEngine, views
from .vrrp.reload import VrrpReloadPlan, plan_reload

log = logging.getLogger("pyvrrpd")


@dataclass
class ReloadOutcome:
    """What a reload did: applied or refused (with why), and the VRRP plan."""

    applied: bool
    diagnostics: tuple[Diagnostic, ...] = ()
    vrrp: VrrpReloadPlan | None = None
    ipvs_writes: int = 0
    message: str = ""
    ipvs_ops: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        plan = self.vrrp
        return {
            "applied": self.applied,
            "message": self.message,
            "diagnostics": [d.format() for d in self.diagnostics],
            "vrrp": None
            if plan is None
            else {
                k: list(getattr(plan, k))
                for k in ("unchanged", "addresses", "priority", "restart", "removed", "added")
            },
            "ipvs_writes": self.ipvs_writes,
            "ipvs_ops": list(self.ipvs_ops),
        }


@dataclass
class Daemon:
    """One process running the VRRP instances and the balancer of a configuration."""

    result: LoadResult
    args: argparse.Namespace
    net: NetBackend
    stack: contextlib.AsyncExitStack
    vrrp: VrrpEngine | None = None
    balancer: Any = None  # BalancerEngine (imported lazily: checkers pull in more modules)
    ipvs: Any = None  # KernelIpvs, opened on first use
    proxy: DrainingIpvs | None = None  # what the balancer writes through
    ipvs_tried: bool = False
    started: float = field(default_factory=time.time)
    reloads: int = 0
    drains: Drains = field(default_factory=Drains)
    drainer: Drainer | None = None
    recorder: StateRecorder | None = None
    sync: Any = None  # SyncDaemonFollower: lvs_sync_daemon following its VRRP instance
    result_hooks: list[Any] = field(default_factory=list)  # every check result (metrics)

    @property
    def run_vrrp(self) -> bool:
        return not getattr(self.args, "check", False)

    @property
    def run_lvs(self) -> bool:
        return not getattr(self.args, "vrrp", False)

    async def start(self) -> None:
        """Start the balancer (so services exist before VIPs move here), then VRRP."""
        config = self.result.config
        if self.run_lvs and config.virtual_servers:
            self.balancer = await self._start_balancer(config, previously_owned=())
        if self.run_vrrp and _has_vrrp(config):
            self.vrrp = self._vrrp_engine(config)
            await self.vrrp.start()
            log.info("VRRP: %d instance(s) started", len(self.vrrp.instances))
        if self.recorder is not None:
            self.recorder.attach(self.vrrp)
        await self._follow_sync(config)

    def _vrrp_engine(self, config: Any) -> VrrpEngine:
        keep = getattr(self.args, "dont_release_vrrp", False)
        return VrrpEngine(config, self.net, release_on_stop=not keep)

    async def _follow_sync(self, config: Any) -> None:
        """Start, keep, retarget or stop the ``lvs_sync_daemon`` follower for ``config``."""
        from .balancer.mapping import parse_lvs_sync_daemon

        spec = None
        if self.run_vrrp and self.vrrp is not None:
            try:
                spec = parse_lvs_sync_daemon(config.global_defs.lvs_sync_daemon)
            except ValueError as exc:
                log.error("lvs_sync_daemon: %s - ignored", exc)
        if self.sync is not None and self.sync.spec != spec:
            await self.sync.stop()
            self.sync = None
        if spec is None:
            return
        if self.sync is None:
            from .balancer.sync_follow import SyncDaemonFollower

            if await self._open_ipvs() is None:
                return
            self.sync = SyncDaemonFollower(self.ipvs, spec)
        self.sync.attach(self.vrrp)

    async def _open_ipvs(self) -> Any:
        from .ipvs.kernel import KernelIpvs

        if not self.ipvs_tried:
            self.ipvs_tried = True
            try:
                self.ipvs = await self.stack.enter_async_context(KernelIpvs())
            except Exception as exc:
                log.error(
                    "IPVS: cannot open the kernel's IPVS (%s); is the ip_vs module "
                    "available (modprobe ip_vs)? Virtual servers are not programmed",
                    exc,
                )
        if self.ipvs is not None and (self.proxy is None or self.proxy.inner is not self.ipvs):
            self.proxy = DrainingIpvs(self.ipvs, self.drains)
        return self.ipvs

    async def _start_balancer(self, config: Any, previously_owned: Any) -> Any:
        from .balancer.engine import BalancerEngine

        if await self._open_ipvs() is None or self.proxy is None:
            return None
        balancer = BalancerEngine(
            config,
            self.proxy,
            release_on_stop=not getattr(self.args, "dont_release_ipvs", False),
            previously_owned=previously_owned,
            result_hooks=self.result_hooks,
        )
        await balancer.start()
        log.info("IPVS: %d virtual server(s) programmed", len(balancer.states))
        return balancer

    def _load(self, path: str, verb: str = "reload") -> LoadResult | ReloadOutcome:
        """A configuration file, or the outcome refusing it."""
        try:
            new = load_config(
                path,
                config_id=getattr(self.args, "config_id", None) or default_config_id(),
                env=host_environment(),
            )
        except ConfigError as exc:
            for d in exc.diagnostics:
                log.error("%s: %s", verb, d.format())
            log.error("%s: %s cannot be read; running configuration kept", verb, path)
            return ReloadOutcome(
                False,
                tuple(exc.diagnostics),
                message="configuration unreadable; running configuration kept",
            )
        diags = (*new.diagnostics, *security_violations(new))
        errors = [d for d in diags if d.severity is Severity.ERROR]
        if errors:
            for d in errors:
                log.error("%s: %s", verb, d.format())
            log.error("%s: %d error(s) in %s; running configuration kept", verb, len(errors), path)
            return ReloadOutcome(
                False,
                tuple(diags),
                message=f"{len(errors)} error(s) in {path}; running configuration kept",
            )
        return new

    def _path(self, path: str | None) -> str:
        return path or (self.result.files[0] if self.result.files else "")

    async def reload(self, path: str | None = None) -> ReloadOutcome:
        """Load the configuration again and apply the difference; a bad one changes nothing."""
        path = self._path(path)
        new = self._load(path)
        if isinstance(new, ReloadOutcome):
            return new
        diags = (*new.diagnostics, *security_violations(new))
        plan = None
        if self.run_vrrp:
            if self.vrrp is not None:
                plan = await self.vrrp.reload(new.config)
            elif _has_vrrp(new.config):
                self.vrrp = self._vrrp_engine(new.config)
                await self.vrrp.start()
        writes = 0
        sent: list[Any] = []
        if self.run_lvs:
            if self.proxy is not None:
                self.proxy.recording = sent
            try:
                writes = await self._reload_balancer(new)
            finally:
                if self.proxy is not None:
                    self.proxy.recording = None
        self.result = new
        self.reloads += 1
        if self.recorder is not None:
            self.recorder.attach(self.vrrp)
        await self._follow_sync(new.config)
        log.info("reload: %s applied", path)
        from .ipvs.plan import describe

        ops = tuple(describe(op) for op in sent)
        return ReloadOutcome(True, tuple(diags), plan, writes, "applied", ops)

    async def _reload_balancer(self, new: LoadResult) -> int:
        """Reload the balancer in place (check states kept); the IPVS writes it took."""
        old = self.balancer
        before = self.ipvs.writes if self.ipvs is not None else 0
        if old is None:
            if new.config.virtual_servers:
                self.balancer = await self._start_balancer(new.config, ())
        else:
            await old.reload(new.config)
            if not new.config.virtual_servers:
                # (the reload deleted the old services; nothing is left to check)
                old.release_on_stop = False
                await old.stop()
                self.balancer = None
        return (self.ipvs.writes - before) if self.ipvs is not None else 0

    async def stop(self) -> None:
        """Leave cleanly: masters resign, VIPs go, our IPVS services go (unless -I)."""
        if self.drainer is not None:
            await self.drainer.close()
        if self.vrrp is not None:
            await self.vrrp.stop()
        if self.sync is not None:
            await self.sync.stop()
            self.sync = None
        if self.recorder is not None:
            self.recorder.clear()
        if self.balancer is not None:
            await self.balancer.stop()

    async def plan(self, path: str | None = None) -> dict[str, Any]:
        """What reloading ``path`` would do, without doing it (VRRP classes, IPVS ops)."""
        from .ipvs.plan import describe

        path = self._path(path)
        new = self._load(path, "plan")
        if isinstance(new, ReloadOutcome):
            return {"valid": False, **new.as_dict()}
        diags = (*new.diagnostics, *security_violations(new))
        out: dict[str, Any] = {"valid": True, "path": path}
        out["diagnostics"] = [d.format() for d in diags]
        vrrp: VrrpReloadPlan | None = None
        if self.run_vrrp:
            old = self.vrrp.views if self.vrrp is not None else {}
            vrrp = plan_reload(old, views(new.config))
        out["vrrp"] = ReloadOutcome(True, vrrp=vrrp).as_dict()["vrrp"]
        ops, flush = await self._ipvs_plan(new) if self.run_lvs else ([], False)
        out["ipvs"] = {"flush": flush, "ops": [describe(op) for op in ops]}
        return out

    async def _ipvs_plan(self, new: LoadResult) -> tuple[list[Any], bool]:
        """The IPVS ops a reload to ``new`` would send now, and whether it flushes first."""
        from .balancer.engine import BalancerEngine
        from .ipvs.plan import plan

        if not new.config.virtual_servers and self.balancer is None:
            return [], False
        if await self._open_ipvs() is None:
            raise OSError("IPVS is not available: cannot plan the virtual servers")
        proxy = DrainingIpvs(self.ipvs, self.drains)
        if self.balancer is not None:
            desired, owned = self.balancer.preview(new.config)
            flush = False
        else:
            engine = BalancerEngine(new.config, proxy, release_on_stop=False)
            for state in engine.states:
                state.start()  # initial weights; scripts are not run
            desired, owned, flush = engine.desired(), engine.owned, bool(engine.flush)
        observed = {} if flush else await self.ipvs.dump()
        return proxy.rewrite(plan(desired, observed, owned=owned)), flush

    async def drain(self, vs: str, rs: str) -> dict[str, Any]:
        """Drain a real server (weight 0, removed once no connection is active)."""
        if self.balancer is None or self.ipvs is None:
            raise LookupError("no virtual server is running")
        if self.drainer is None:
            self.drainer = Drainer(self.drains)
        item = await self.drainer.drain(self.balancer, self.ipvs, vs, rs)
        return item.as_dict()

    async def undrain(self, vs: str, rs: str, ramp: float = 0.0) -> dict[str, Any]:
        """Give a drained real server back (at once, or ramping up over ``ramp`` s)."""
        if self.balancer is None or self.drainer is None:
            raise LookupError("nothing is being drained")
        item = await self.drainer.undrain(self.balancer, vs, rs, self._refresh, ramp)
        return item.as_dict()

    async def _refresh(self) -> None:
        """Write the balancer's table again through the drain/ramp rewriter."""
        from .ipvs.backend import reconcile

        if self.balancer is not None and self.proxy is not None:
            await reconcile(self.proxy, self.balancer.desired(), owned=self.balancer.owned)

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot of both sides (see pyvrrpd.status)."""
        from .status import snapshot

        return snapshot(self)


def _has_vrrp(config: Any) -> bool:
    """Whether the VRRP side has work: instances, or static addresses/routes/rules."""
    return bool(
        config.vrrp_instances
        or config.static_ipaddress
        or config.static_routes
        or config.static_rules
    )
