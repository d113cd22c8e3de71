"""The running daemon: both sides, reload as a diff, and a status snapshot."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .cli.configtest import default_config_id, host_environment, security_violations
from .config.errors import ConfigError, Diagnostic, Severity
from .config.load import LoadResult, load_config
from .net.backend import NetBackend
from .vrrp.engine import VrrpEngine
from .vrrp.reload import VrrpReloadPlan

log = logging.getLogger("pyvrrpd")


@dataclass
class ReloadOutcome:
    """What a reload did: applied or refused (with why), and the VRRP plan."""

    applied: bool
    diagnostics: tuple[Diagnostic, ...] = ()
    vrrp: VrrpReloadPlan | None = None
    ipvs_writes: int = 0
    message: str = ""

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
    ipvs_tried: bool = False
    started: float = field(default_factory=time.time)
    reloads: int = 0

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
        if self.run_vrrp and config.vrrp_instances:
            self.vrrp = VrrpEngine(config, self.net)
            await self.vrrp.start()
            log.info("VRRP: %d instance(s) started", len(self.vrrp.instances))

    async def _start_balancer(self, config: Any, previously_owned: Any) -> Any:
        from .balancer.engine import BalancerEngine
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
        if self.ipvs is None:
            return None
        balancer = BalancerEngine(
            config,
            self.ipvs,
            release_on_stop=not getattr(self.args, "dont_release_ipvs", False),
            previously_owned=previously_owned,
        )
        await balancer.start()
        log.info("IPVS: %d virtual server(s) programmed", len(balancer.states))
        return balancer

    async def reload(self, path: str | None = None) -> ReloadOutcome:
        """Load the configuration again and apply the difference; a bad one changes nothing."""
        path = path or (self.result.files[0] if self.result.files else "")
        try:
            new = load_config(
                path,
                config_id=getattr(self.args, "config_id", None) or default_config_id(),
                env=host_environment(),
            )
        except ConfigError as exc:
            for d in exc.diagnostics:
                log.error("reload: %s", d.format())
            log.error("reload: %s cannot be read; running configuration kept", path)
            return ReloadOutcome(
                False,
                tuple(exc.diagnostics),
                message="configuration unreadable; running configuration kept",
            )
        diags = (*new.diagnostics, *security_violations(new))
        errors = [d for d in diags if d.severity is Severity.ERROR]
        if errors:
            for d in errors:
                log.error("reload: %s", d.format())
            log.error("reload: %d error(s) in %s; running configuration kept", len(errors), path)
            return ReloadOutcome(
                False,
                tuple(diags),
                message=f"{len(errors)} error(s) in {path}; running configuration kept",
            )
        plan = None
        if self.run_vrrp:
            if self.vrrp is not None:
                plan = await self.vrrp.reload(new.config)
            elif new.config.vrrp_instances:
                self.vrrp = VrrpEngine(new.config, self.net)
                await self.vrrp.start()
        writes = 0
        if self.run_lvs:
            writes = await self._reload_balancer(new)
        self.result = new
        self.reloads += 1
        log.info("reload: %s applied", path)
        return ReloadOutcome(True, tuple(diags), plan, writes, "applied")

    async def _reload_balancer(self, new: LoadResult) -> int:
        old = self.balancer
        before = getattr(getattr(old, "ipvs", None), "writes", 0)
        owned: Any = ()
        if old is not None:
            old.release_on_stop = False
            owned = old.owned
            await old.stop()
        self.balancer = None
        if new.config.virtual_servers:
            self.balancer = await self._start_balancer(new.config, owned)
        elif old is not None and owned:
            # every virtual server is gone: remove ours from the kernel
            self.balancer = await self._start_balancer(new.config, owned)
        return (self.ipvs.writes - before) if self.ipvs is not None else 0

    async def stop(self) -> None:
        """Leave cleanly: masters resign, VIPs go, our IPVS services go (unless -I)."""
        if self.vrrp is not None:
            await self.vrrp.stop()
        if self.balancer is not None:
            await self.balancer.stop()

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot of both sides (see pyvrrpd.status)."""
        from .status import snapshot

        return snapshot(self)


def pid() -> int:
    """Our process id (for status)."""
    return os.getpid()
