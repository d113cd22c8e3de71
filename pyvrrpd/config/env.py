"""What validation may know about the host, passed in so the checks stay pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Environment:
    """Facts about the host that some checks need.

    ``interfaces`` is None when the host is not to be consulted (e.g. checking a config
    meant for another machine); then interface names are not checked.
    """

    interfaces: frozenset[str] | None = None
    hostname: str = "localhost"
