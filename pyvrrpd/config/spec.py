"""The root of the keyword tables: the top level of keepalived.conf."""

from __future__ import annotations

from . import kw_lvs, kw_vrrp
from .model import Config
from .schema import BlockSpec, Kw, Mode

_MISC_ROOT: tuple[Kw, ...] = (
    Kw("bfd_instance", mode=Mode.RECOGNISED, note="BFD"),
    Kw("net_namespace", mode=Mode.RECOGNISED),
    Kw("net_namespace_ipvs", mode=Mode.RECOGNISED),
    Kw("namespace_with_ipsets", mode=Mode.RECOGNISED),
    Kw("instance", mode=Mode.RECOGNISED),
    Kw("use_pid_dir", mode=Mode.RECOGNISED),
    Kw("child_wait_time", mode=Mode.RECOGNISED),
    Kw("linkbeat_use_polling", mode=Mode.RECOGNISED),
)


def _root_keywords() -> tuple[Kw, ...]:
    kws = (*kw_vrrp.ROOT_KWS, *kw_lvs.ROOT_KWS)
    names = {n for kw in kws for n in kw.names()}
    return (*kws, *(kw for kw in _MISC_ROOT if kw.name not in names))


ROOT = BlockSpec("", Config, _root_keywords(), doc="top level of keepalived.conf")
