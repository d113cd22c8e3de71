"""``python -m pyvrrpd.demo``: the LVS-DR director pair demo, narrated with timings.

Exit status: 0 when every step behaved as expected; 1 when a step did not (the output
says which and why); 2 when the demo cannot run here (not root, no iproute2, no IPVS
with ``--mode full``); 130 on Ctrl-C; the VM runner's code (124 timeout, 125 boot
failure, 127 missing tool) when the VM itself failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence

from . import modes, scenario
from .lab import DemoLab, Pace
from .layout import DIRECTORS
from .narrate import DemoFailure, Narrator
from .topology import Topology, TopologyError, sweep_stale

VM_FAILURES = {
    124: "the VM timed out",
    125: "the VM never ran the demo (boot failure, kernel panic or modprobe ip_vs failure)",
    127: "a tool the VM needs is missing",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyvrrpd.demo",
        description="An LVS-DR director pair run by pyvrrpd in network namespaces, narrated.",
    )
    p.add_argument(
        "--mode",
        choices=["auto", "full", "vrrp"],
        default="auto",
        help="auto (default): the full demo where this kernel has IPVS, else in a VM "
        "(scripts/vm-run), else the VRRP part alone; full: IPVS required here; "
        "vrrp: the VRRP part alone",
    )
    p.add_argument("--no-vm", action="store_true", help="never boot the VM (auto mode)")
    p.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, daemon logs)"
    )
    p.add_argument("--pyzip", default="", help=argparse.SUPPRESS)  # see modes.build_pyzip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("pyvrrpd demo: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    if shutil.which("ip") is None:
        print("pyvrrpd demo: needs iproute2 (apt-get install iproute2)", file=sys.stderr)
        return 2
    kernel = platform.release()
    if args.mode == "vrrp":
        return run_here(False, "asked for the VRRP part only (--mode vrrp)", args)
    if modes.ipvs_available():
        return run_here(True, f"this kernel ({kernel}) has IPVS", args)
    why = f"this kernel ({kernel}) has no IPVS (no /proc/net/ip_vs after modprobe ip_vs)"
    if args.mode == "full" or modes.in_guest():
        print(f"pyvrrpd demo: {why}", file=sys.stderr)
        return 2
    missing = [] if args.no_vm else modes.vm_missing()
    if not args.no_vm and not missing:
        return run_vm(why, args.keep)
    if args.no_vm:
        reason = f"{why}, and --no-vm was given"
    else:
        reason = (
            f"{why}, and the IPVS VM cannot be booted: missing {'; '.join(missing)} "
            "(scripts/demo --install installs them)"
        )
    return run_here(False, reason, args)


def run_vm(why: str, keep: bool) -> int:
    """Re-run the full demo inside the VM."""
    print(f"pyvrrpd demo: {why}.", flush=True)
    print(
        "pyvrrpd demo: running the same demo in a VM with Debian's stock kernel "
        "(scripts/vm-run: boot ~1 min, then the demo ~3 min under emulation)",
        flush=True,
    )
    t0 = time.monotonic()
    rc = modes.run_in_vm(["--mode", "full", *(["--keep"] if keep else [])])
    took = time.monotonic() - t0
    if rc in VM_FAILURES:
        print(f"pyvrrpd demo: FAILED: {VM_FAILURES[rc]} (exit {rc})", file=sys.stderr)
    print(f"pyvrrpd demo: VM run finished with exit {rc} after {took:.0f} s", flush=True)
    return rc


def run_here(full: bool, reason: str, args: argparse.Namespace) -> int:
    """Build the lab here and tell the story; the exit status."""
    keep = args.keep
    pace = Pace.for_guest() if modes.in_guest() else Pace()
    n = Narrator()
    what = "full demo (VRRP + IPVS)" if full else "VRRP part only"
    n.say(f"pyvrrpd demo: LVS-DR director pair, {what}: {reason}")
    if not full:
        n.say("(the web/DNS balancing, health-check and IPVS steps need a kernel with IPVS)")
    sweep_stale()
    topo = Topology()
    lab = DemoLab(topo, pace, full=full, pyzip=args.pyzip)
    rc = 0
    try:
        with topo:
            topo.keep_workdir = keep
            try:
                scenario.run(lab, n)
            except (DemoFailure, TopologyError) as exc:
                _show_logs(lab, n)
                n.say(f"RESULT: FAILED in '{n.current}': {exc}")
                rc = 1
            finally:
                lab.close()
            if keep:
                n.say(f"work directory kept: {topo.workdir}")
            n.say("cleaning up: stopping processes, deleting namespaces")
    except KeyboardInterrupt:
        n.say("interrupted: lab cleaned up")
        return 130
    if rc == 0:
        n.summary()
        n.say(f"RESULT: OK, all {n.checks_passed} checks passed ({what}; {reason})")
    return rc


def _show_logs(lab: DemoLab, n: Narrator) -> None:
    for d in DIRECTORS:
        run = lab.directors.get(d.name)
        if run is not None:
            tail = run.log_text().splitlines()[-12:]
            n.say(
                f"last lines of {d.name}'s pyvrrpd log ({run.log.name}):\n"
                + "\n".join("  " + line[:160] for line in tail)
            )


if __name__ == "__main__":
    sys.exit(main())
