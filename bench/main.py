"""Run the benchmarks (all or some parts), write bench/results/<date>.md and .json, print the table.

Usage: ``bench/run [--quick] [--trials N] [takeover] [startup] [cpu] [config] [checks] [ipvs]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .common import Row, log, machine_info, markdown_table, notes_section, write_json

PARTS = ("takeover", "startup", "cpu", "config", "checks", "ipvs")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument(
        "parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)} (default: all)"
    )
    p.add_argument("--quick", action="store_true", help="fewer trials and shorter windows")
    p.add_argument("--trials", type=int, help="trials per measurement (default 5, quick 2)")
    p.add_argument("--profile", action="store_true", help="always profile pyvrrpd -t")
    args = p.parse_args(argv)
    bad = [x for x in args.parts if x not in PARTS]
    if bad:
        p.error(f"unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    return args


def preflight(parts: list[str]) -> None:
    needs = ["keepalived"]
    if set(parts) & {"takeover", "startup", "cpu", "checks"}:
        needs += ["ip", "tcpdump", "bridge"]
        if os.geteuid() != 0:
            sys.exit("bench: the VRRP parts need root (network namespaces)")
    missing = [n for n in needs if shutil.which(n) is None]
    if missing:
        sys.exit(f"bench: missing tools: {', '.join(missing)}")


def run_part(part: str, trials: int, quick: bool, force_profile: bool) -> tuple[list[Row], Any]:
    if part == "takeover":
        from . import vrrp_takeover

        return vrrp_takeover.run(trials)
    if part == "startup":
        from . import vrrp_startup

        return vrrp_startup.run(trials)
    if part == "cpu":
        from . import vrrp_cpu

        return vrrp_cpu.run(10.0, 5) if quick else vrrp_cpu.run(30.0, 6)
    if part == "checks":
        from . import bench_checks

        return bench_checks.run(trials, quick)
    if part == "ipvs":
        from . import ipvs_vm

        return ipvs_vm.run(trials, quick)
    from . import config_test

    return config_test.run(trials, force_profile=force_profile)


def render(meta: dict[str, Any], rows: list[Row], raw: dict[str, Any]) -> str:
    m = meta["machine"]
    out = [
        f"# pyvrrpd vs keepalived: benchmark run {meta['date']}\n",
        f"- command: `{meta['command']}` ({meta['trials']} trials, total "
        f"{meta['elapsed_s']:.0f} s)",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, Python {m['python']}",
        f"- peer: {m['keepalived']}; capture: {m['tcpdump']}",
        "- load average at the start/end of each part: "
        + "; ".join(f"{p} {a[0]:.2f}→{b[0]:.2f}" for p, (a, b) in meta["load"].items()),
        "- cells: median (min-max, n); ratio = pyvrrpd median / keepalived median\n",
        markdown_table(rows),
    ]
    notes = notes_section(rows, [])
    if notes:
        out += ["## Notes\n", notes]
    cfg = raw.get("config", {})
    if "phases" in cfg:
        out.append("## pyvrrpd -t: time per loader stage (fresh child, no profiler)\n")
        out.append("| import | preprocess | parse_lines | build_config | validate |")
        out.append("|---|---|---|---|---|")
        for ph in cfg["phases"]:
            cols = ("import", "preprocess", "parse_lines", "build_config", "validate")
            out.append("| " + " | ".join(f"{ph.get(c, float('nan')):.3f}" for c in cols) + " |")
        out.append("")
    if "profile" in cfg:
        out += ["## pyvrrpd -t profile\n", "```", cfg["profile"], "```", ""]
    return "\n".join(out) + "\n"


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    parts = [p for p in PARTS if p in args.parts] or list(PARTS)
    trials = args.trials or (2 if args.quick else 5)
    preflight(parts)
    from tests.netlab import sweep_stale

    from .wire import become_subreaper, reap_orphans

    sweep_stale()
    become_subreaper()
    # Ctrl-C and SIGTERM unwind through the labs' context managers (even when started in
    # the background, where SIGINT would otherwise be ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    started = time.monotonic()
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    load: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    try:
        for part in parts:
            log(f"== {part}")
            before = os.getloadavg()
            part_rows, raw[part] = run_part(part, trials, args.quick, args.profile)
            load[part] = (before, os.getloadavg())
            rows += part_rows
    finally:
        reap_orphans()
    now = datetime.now()
    meta: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "command": "bench/run " + shlex.join(sys.argv[1:] if argv is None else argv),
        "trials": trials,
        "parts": parts,
        "elapsed_s": time.monotonic() - started,
        "machine": machine_info(),
        "load": load,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / now.strftime("%Y-%m-%dT%H%M%S")
    text = render(meta, rows, raw)
    stem.with_suffix(".md").write_text(text)
    write_json(str(stem.with_suffix(".json")), {**meta, "raw": raw}, rows)
    print(text)
    log(f"wrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("bench: interrupted; labs cleaned up, nothing written")
        sys.exit(130)
