"""Long chaos run: hundreds of seeded faults over VRRP nodes in a namespace lab.

    python -m bench.chaos --faults 200 [--seed N] [--kinds pyvrrpd,keepalived,pyvrrpd]

The engine and the model are tests/stress/chaos.py (the CI runs ~20 faults per test).
Prints every fault and a summary: faults by kind, convergence times (median, max) and
the margin over the master-down interval. Exit status 1 on the first violation, with
``CHAOS_SEED`` to replay it. Needs root; everything lives in lab namespaces.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.netlab import Lab
from tests.stress.chaos import Chaos, ChaosFailure, FaultRecord, daemon_logs, seed_from_env


def summary(records: list[FaultRecord], mdi: float, wall: float) -> str:
    """Convergence times by fault; "moved" = the model's VIP holders changed."""
    rows: dict[str, list[FaultRecord]] = defaultdict(list)
    for r in records:
        rows[r.fault].append(r)
        if len(r.took) > 1:  # the check while the node was down, as a fault of its own
            down = FaultRecord(
                r.index, r.fault, r.node, "down", r.during, r.before, took=r.took[:1]
            )
            rows[r.fault + " (down)"].append(down)
    lines = [
        f"{len(records)} faults in {wall:.0f} s; largest master-down interval {mdi:.3f} s",
        "| fault | n | moved the VIP | median s (moved) | max s (moved) | max s (all checks) |",
        "|---|---|---|---|---|---|",
    ]
    for k in sorted(rows):
        rs = rows[k]
        moved = [r.took[-1] for r in rs if r.expected != r.before]
        every = [t for r in rs for t in r.took]
        med = f"{statistics.median(moved):.2f}" if moved else "-"
        top = f"{max(moved):.2f}" if moved else "-"
        lines.append(f"| {k} | {len(rs)} | {len(moved)} | {med} | {top} | {max(every):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--faults", type=int, default=200)
    p.add_argument("--seed", type=int, help="default: CHAOS_SEED or random")
    p.add_argument("--kinds", default="pyvrrpd,keepalived,pyvrrpd")
    p.add_argument("--advert-int", type=float, default=0.1)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.chaos: needs root (network namespaces)")
    seed = args.seed if args.seed is not None else seed_from_env()
    kinds = args.kinds.split(",")
    with Lab() as lab:
        chaos = Chaos(lab, kinds, seed, advert_int=args.advert_int)
        t0 = time.monotonic()
        try:
            chaos.start()
            chaos.run(args.faults)
        except ChaosFailure as exc:
            print(f"FAILED: {exc}\n{daemon_logs(chaos)}", flush=True)
            return 1
        mdi = 3 * args.advert_int + 255 * args.advert_int / 256
        print(summary(chaos.records, mdi, time.monotonic() - t0))
        print(f"seed {seed}, nodes {', '.join(kinds)}: no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
