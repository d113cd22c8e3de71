"""Where the demo can run: here with IPVS, in the VM (scripts/vm-run), or VRRP only."""

from __future__ import annotations

import compileall
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

#: The checkout this package lives in (scripts/vm-run is there when run from a checkout).
ROOT = Path(__file__).resolve().parents[2]
VM_RUN = ROOT / "scripts" / "vm-run"
#: Guest budget: boot ~35-60 s, the demo ~2-3 min, shutdown ~20 s.
VM_TIMEOUT_S = 600


def in_guest() -> bool:
    """Whether this runs inside the VM that scripts/vm-run boots."""
    return bool(os.environ.get("VM_RUN_GUEST"))


def ipvs_available() -> bool:
    """Whether the running kernel has IPVS (tries ``modprobe ip_vs`` first)."""
    proc = Path("/proc/net/ip_vs")
    if not proc.exists() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True, check=False)
    return proc.exists()


def vm_missing() -> list[str]:
    """What scripts/vm-run needs and this machine lacks (empty: the VM can boot)."""
    missing = []
    if not VM_RUN.exists():
        missing.append(f"{VM_RUN} (run from a pyvrrpd checkout)")
    if not list(Path("/boot").glob("vmlinuz-*-amd64")):
        missing.append("a kernel /boot/vmlinuz-*-amd64 (Debian package linux-image-amd64)")
    for tool, where in [
        ("qemu-system-x86_64", "Debian package qemu-system-x86"),
        ("busybox", "Debian package busybox-static"),
        ("vng", "pip install virtme-ng"),
        ("virtme-run", "pip install virtme-ng"),
    ]:
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({where})")
    return missing


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_in_vm(args: Sequence[str]) -> int:
    """Run ``python -m pyvrrpd.demo ARGS`` in the VM; its exit code (vm-run's on failure).

    The VM runs in its own process group, which Ctrl-C / SIGTERM here terminates.
    """
    # The guest writes no bytecode and imports ~20x slower: compile the package here first.
    compileall.compile_dir(str(Path(__file__).resolve().parents[1]), quiet=1)
    cmd = [str(VM_RUN), sys.executable, "-m", "pyvrrpd.demo", *args]
    env = dict(
        os.environ,
        VM_RUN_PYTHON=sys.executable,
        VM_RUN_TIMEOUT=os.environ.get("VM_RUN_TIMEOUT", str(VM_TIMEOUT_S)),
    )
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    old = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        return proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
