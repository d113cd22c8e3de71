"""Shared benchmark code: samples, medians with min/max, the result table, machine facts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

IMPLS = ("pyvrrpd", "keepalived")


@dataclass
class Sample:
    """Repeated measurements of one quantity (seconds, MiB, ...)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass
class Row:
    """One line of the result table: a metric in a mode, both implementations side by side."""

    part: str
    metric: str
    mode: str
    unit: str  # "s", "ms", "MiB", "CPU s/min"
    samples: dict[str, Sample] = field(default_factory=lambda: {k: Sample() for k in IMPLS})
    bound: str = ""  # what theory (RFC timers) says, for context
    note: str = ""

    def ratio(self) -> float | None:
        """pyvrrpd median / keepalived median."""
        p, k = self.samples["pyvrrpd"].median, self.samples["keepalived"].median
        if p is None or k is None or k == 0:
            return None
        return p / k

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = {
            k: {"values": s.values, "median": s.median, "min": s.min, "max": s.max, "n": s.n}
            for k, s in self.samples.items()
        }
        d["ratio"] = self.ratio()
        return d


def fmt_value(v: float | None, unit: str) -> str:
    """A number at a precision that suits its unit."""
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f}"
    if unit == "ms":
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_sample(s: Sample, unit: str) -> str:
    """``median (min-max, n)``."""
    if not s.values:
        return "-"
    med = fmt_value(s.median, unit)
    if s.n == 1:
        return f"{med} (n=1)"
    return f"{med} ({fmt_value(s.min, unit)}-{fmt_value(s.max, unit)}, n={s.n})"


def markdown_table(rows: Sequence[Row]) -> str:
    """The result table: median (min-max, n) for each implementation and their ratio."""
    head = (
        "| part | metric | mode | unit | pyvrrpd | keepalived 2.2.7 | ratio py/ka | bound |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        ratio = r.ratio()
        lines.append(
            f"| {r.part} | {r.metric} | {r.mode} | {r.unit} "
            f"| {fmt_sample(r.samples['pyvrrpd'], r.unit)} "
            f"| {fmt_sample(r.samples['keepalived'], r.unit)} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} | {r.bound} |"
        )
    return head + "\n".join(lines) + "\n"


def notes_section(rows: Iterable[Row], extra: Sequence[str]) -> str:
    """Per-row notes and run-wide remarks as a bullet list."""
    items = [f"- {r.metric} ({r.mode}): {r.note}" for r in rows if r.note]
    items += [f"- {e}" for e in extra]
    return "\n".join(items) + ("\n" if items else "")


def _version(cmd: Sequence[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "absent"
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = (res.stdout + res.stderr).strip().splitlines()
    return out[0] if out else "?"


def machine_info() -> dict[str, str]:
    """nproc, kernel, CPU model, python, keepalived version."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "keepalived": _version(["keepalived", "--version"]),
        "tcpdump": _version(["tcpdump", "--version"]),
    }


def write_json(path: str, meta: dict[str, Any], rows: Sequence[Row]) -> None:
    """The raw samples and medians, for later comparison."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": [r.to_json() for r in rows]}, fh, indent=2)
        fh.write("\n")


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the final table)."""
    print(msg, file=sys.stderr, flush=True)
