"""Long fuzz runs of the receive path and the configuration front end.

    python -m bench.fuzz --cases 1000000 --config-cases 100000 [--workers 2] [--seed N]
    python -m bench.fuzz --atheris 200000      # coverage-guided receive path (if installed)

Receive path: each case is a valid advert for one of four policies (VRRPv2 with auth,
VRRPv3 multicast, VRRPv3 unicast with check_unicast_src, VRRPv3/IPv6), mutated by
tests/stress/mutate.py (bit flips, field values, truncation, junk, version swaps,
checksums recomputed half the time) or plain random bytes, run through
``rx_filter.inspect``; the result must be Accepted or Dropped, and anything Accepted must
pass the oracle's independent checks. Configuration: mutated etc/ configurations and
keepalived samples (line, token and byte mutations) through ``load_config``: a
LoadResult or ConfigError, never another exception, never over the time limit.

Tight loops without hypothesis, one process per worker, each with its own seed. Every
failing input is written to ``--out`` (default /tmp/pyvrrpd-fuzz) with its traceback.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.stress.mutate import (
    check_rx_result,
    corpus_configs,
    corpus_tokens,
    mutate_config,
    mutate_config_bytes,
    random_case,
)

CONFIG_TIME_LIMIT = 10.0


def rx_worker(args: tuple[int, int, str]) -> dict[str, Any]:
    """Run ``count`` receive-path cases from ``seed``; return outcome counts and failures."""
    seed, count, out = args
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()
    for i in range(count):
        case = random_case(rng)
        try:
            result = case.run()
            check_rx_result(case, result)
            outcomes[getattr(result, "reason", None) or "accepted"] += 1
        except Exception:
            outcomes["FAILURE"] += 1
            if len(failures) < 20:
                path = Path(out) / f"rx-{seed}-{i}.txt"
                path.write_text(f"{case!r}\n\n{traceback.format_exc()}")
                failures.append(str(path))
    return {
        "cases": count,
        "seconds": time.perf_counter() - t0,
        "outcomes": {str(k): v for k, v in outcomes.items()},
        "failures": failures,
    }


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"load_config took over {CONFIG_TIME_LIMIT} s")


def config_worker(args: tuple[int, int, str]) -> dict[str, Any]:
    """Run ``count`` configuration cases from ``seed``."""
    from pyvrrpd.config.errors import ConfigError
    from pyvrrpd.config.load import load_config

    seed, count, out = args
    rng = random.Random(seed)
    configs = corpus_configs()
    tokens = corpus_tokens(configs)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    signal.signal(signal.SIGALRM, _alarm)
    tmp = Path(tempfile.mkdtemp(prefix="pyvrrpd-fuzz-", dir="/dev/shm"))
    t0 = time.perf_counter()
    try:
        for i in range(count):
            name, text = rng.choice(configs)
            if rng.random() < 0.25:
                data = mutate_config_bytes(text.encode(), rng)
            else:
                data = mutate_config(text, rng, tokens).encode()
            path = tmp / ("k.yaml" if name.endswith(".yaml") else "k.conf")
            path.write_bytes(data)
            start = time.perf_counter()
            try:
                signal.setitimer(signal.ITIMER_REAL, CONFIG_TIME_LIMIT)
                try:
                    res = load_config(path)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                outcomes["errors" if res.errors else "clean"] += 1
            except ConfigError as exc:
                outcomes["config_error"] += 1
                assert exc.diagnostics
            except Exception as exc:
                outcomes[f"FAILURE {type(exc).__name__}"] += 1
                if len(failures) < 20:
                    bad = Path(out) / f"config-{seed}-{i}{path.suffix}"
                    bad.write_bytes(data)
                    bad.with_suffix(".txt").write_text(f"{name}\n{traceback.format_exc()}")
                    failures.append(str(bad))
            slowest = max(slowest, time.perf_counter() - start)
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return {
        "cases": count,
        "seconds": time.perf_counter() - t0,
        "outcomes": dict(outcomes),
        "failures": failures,
        "slowest": slowest,
    }


def run_pool(kind: str, total: int, workers: int, seed: int, out: str) -> dict[str, Any]:
    """Split ``total`` cases over ``workers`` processes and merge their reports."""
    fn = rx_worker if kind == "rx" else config_worker
    per = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
    jobs = [(seed * 1000 + i, n, out) for i, n in enumerate(per)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        parts = pool.map(fn, jobs)
    wall = time.perf_counter() - t0
    outcomes: Counter[str] = Counter()
    for p in parts:
        outcomes.update(p["outcomes"])
    return {
        "kind": kind,
        "cases": sum(p["cases"] for p in parts),
        "wall": wall,
        "rate": sum(p["cases"] for p in parts) / wall,
        "outcomes": dict(outcomes.most_common()),
        "failures": [f for p in parts for f in p["failures"]],
        "slowest": max(p.get("slowest", 0.0) for p in parts),
    }


ATHERIS_HARNESS = r"""
import socket, sys
import atheris
with atheris.instrument_imports():
    from pyvrrpd.vrrp import packet, packet_ip, packet_checksum, rx_filter
from tests.stress.mutate import POLICIES, SRC4, SRC6, RxCase, check_rx_result
NAMES = sorted(POLICIES)

def one(data: bytes) -> None:
    if not data:
        return
    name = NAMES[data[0] % len(NAMES)]
    fam = socket.AF_INET6 if POLICIES[name].family == 6 else socket.AF_INET
    src = SRC6 if fam == socket.AF_INET6 else SRC4
    case = RxCase(name, data[1:], fam, src, None, 255 if fam == socket.AF_INET6 else None)
    check_rx_result(case, case.run())

atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def run_atheris(runs: int, out: str) -> int:
    """Coverage-guided receive-path fuzzing with atheris (a subprocess; it exits itself)."""
    import subprocess

    from tests.stress.mutate import POLICIES, valid_case

    corpus = Path(out) / "atheris-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i, name in enumerate(sorted(POLICIES)):  # seeds: valid adverts of every policy
        for k in range(4):
            (corpus / f"seed-{name}-{k}").write_bytes(bytes([i]) + valid_case(name, rng).data)
    cmd = [sys.executable, "-c", ATHERIS_HARNESS, f"-runs={runs}", str(corpus)]
    cmd.append(f"-artifact_prefix={out}/")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=root, check=False)
    print(f"atheris: {runs} runs in {time.perf_counter() - t0:.0f} s, exit {res.returncode}")
    return res.returncode


def report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['kind']}: {r['cases']:,} cases in {r['wall']:.1f} s "
        f"({r['rate']:,.0f}/s), failures: {len(r['failures'])}",
        "  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in r["outcomes"].items()),
    ]
    if r["kind"] == "config":
        lines.append(f"  slowest single load: {r['slowest'] * 1000:.0f} ms")
    lines += [f"  FAILING INPUT: {f}" for f in r["failures"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1_000_000, help="receive-path cases")
    p.add_argument("--config-cases", type=int, default=100_000, help="configuration cases")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="/tmp/pyvrrpd-fuzz")
    p.add_argument("--atheris", type=int, metavar="RUNS", help="coverage-guided mode instead")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.atheris:
        return run_atheris(args.atheris, args.out)
    failed = False
    for kind, total in (("rx", args.cases), ("config", args.config_cases)):
        if total <= 0:
            continue
        r = run_pool(kind, total, args.workers, args.seed, args.out)
        print(report(r), flush=True)
        failed |= bool(r["failures"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
