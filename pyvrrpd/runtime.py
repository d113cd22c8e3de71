"""Start the daemon's sides for a loaded configuration."""

from __future__ import annotations

import argparse
import sys

from .config.load import LoadResult


def run_daemon(result: LoadResult, args: argparse.Namespace) -> int:
    """Run the daemon; until the VRRP and IPVS engines land this reports what it would run."""
    cfg = result.config
    print(
        f"pyvrrpd: configuration {result.files[0]} loaded: "
        f"{len(cfg.vrrp_instances)} VRRP instance(s), "
        f"{len(cfg.virtual_servers)} virtual server(s)",
        file=sys.stderr,
    )
    print(
        "pyvrrpd: the VRRP and IPVS engines are not part of this build yet; "
        "use -t to check a configuration",
        file=sys.stderr,
    )
    return 4
