"""The typed configuration model: one frozen tree for keepalived.conf and YAML alike."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model_lvs import SslConfig, VirtualServer, VirtualServerGroup
from .model_vrrp import (
    GarpGroup,
    GlobalDefs,
    StaticAddress,
    StaticRoute,
    StaticRule,
    TrackFile,
    TrackProcess,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from .schema import Located

__all__ = [
    "Config",
    "GarpGroup",
    "GlobalDefs",
    "SslConfig",
    "StaticAddress",
    "StaticRoute",
    "StaticRule",
    "TrackFile",
    "TrackProcess",
    "VirtualServer",
    "VirtualServerGroup",
    "VrrpInstance",
    "VrrpScript",
    "VrrpSyncGroup",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config(Located):
    """A whole configuration, as keepalived.conf's top-level blocks."""

    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_instances: tuple[VrrpInstance, ...] = ()
    vrrp_sync_groups: tuple[VrrpSyncGroup, ...] = ()
    vrrp_scripts: tuple[VrrpScript, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    track_processes: tuple[TrackProcess, ...] = ()
    garp_groups: tuple[GarpGroup, ...] = ()
    static_ipaddress: tuple[StaticAddress, ...] = ()
    static_routes: tuple[StaticRoute, ...] = ()
    static_rules: tuple[StaticRule, ...] = ()
    virtual_servers: tuple[VirtualServer, ...] = ()
    virtual_server_groups: tuple[VirtualServerGroup, ...] = ()
    ssl: SslConfig | None = None

    def instance(self, name: str) -> VrrpInstance | None:
        """The VRRP instance called ``name``, if any."""
        return next((i for i in self.vrrp_instances if i.name == name), None)
