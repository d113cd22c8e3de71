"""Host-side launcher: boot ONE VM (scripts/vm-run) and run every `-m ipvs` test inside it.

Skips with the reason when the VM cannot be booted here (no qemu, kernel image, busybox,
ipvsadm or virtme-ng), and inside the VM itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VM_RUN = ROOT / "scripts" / "vm-run"
TIMEOUT_S = 1800


def _missing() -> list[str]:
    missing = []
    if not list(Path("/boot").glob("vmlinuz-*-amd64")):
        missing.append("/boot/vmlinuz-*-amd64 (Debian package linux-image-amd64)")
    for tool, package in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("ipvsadm", "ipvsadm"),
        ("vng", "virtme-ng from PyPI"),
        ("virtme-run", "virtme-ng from PyPI"),
    ]:
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({package})")
    return missing


@pytest.mark.slow
def test_ipvs_suite_inside_one_vm() -> None:
    if os.environ.get("VM_RUN_GUEST"):
        pytest.skip("already inside the VM")
    if missing := _missing():
        pytest.skip("cannot boot the IPVS VM, missing: " + ", ".join(missing))
    # Collect on the host (fast) so the guest, ~20x slower, imports only files with
    # ipvs tests.
    collect = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "ipvs"]
    collected = subprocess.run(
        [*collect, "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    files = sorted({line.split("::")[0] for line in collected.stdout.splitlines() if "::" in line})
    assert "tests/ipvs/test_kernel_vm.py" in files, collected.stdout + collected.stderr
    cmd = [str(VM_RUN), sys.executable, "-m", "pytest", "-m", "ipvs", "-p", "no:cacheprovider"]
    cmd += ["-q", "-rs", "--durations=5", *files]
    env = dict(os.environ, VM_RUN_TIMEOUT=str(TIMEOUT_S), VM_RUN_PYTHON=sys.executable)
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S + 60,
        check=False,
    )
    out = proc.stdout
    print(out)  # shown by pytest on failure (and with -s)
    assert proc.returncode == 0, f"in-VM pytest exited {proc.returncode}:\n{out[-6000:]}"
    summary = re.search(r"(\d+) passed", out)
    assert summary is not None and int(summary.group(1)) >= 20, out[-3000:]
    # pytest's own verdicts only (the tests' reports say "47 requests, 2 failed" too)
    verdicts = re.findall(
        r"^[ =]*((?:\d+ (?:passed|failed|skipped|errors?|deselected|x?failed|xpassed|warnings?)"
        r"(?:, )?)+) in [\d.]+s",
        out,
        re.MULTILINE,
    )
    assert verdicts, out[-3000:]
    assert not any(re.search(r"\d+ (failed|errors?)", v) for v in verdicts), out[-3000:]
    assert not re.search(r"^(FAILED|ERROR) ", out, re.MULTILINE), out[-3000:]
