"""Where the demo can run: here with IPVS, in the VM (scripts/vm-run), or VRRP only."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
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


#: Packages the daemon and the demo import, put whole into the guest's module archive.
PYZIP_PACKAGES = ("pyvrrpd", "pyroute2", "dns", "yaml", "h11")

_STDLIB_PROBE = """
import importlib, pkgutil, sys, sysconfig
import pyvrrpd
for m in pkgutil.walk_packages(pyvrrpd.__path__, "pyvrrpd."):
    try:
        importlib.import_module(m.name)
    except Exception:
        pass
std = sysconfig.get_paths()["stdlib"] + "/"
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None) or ""
    if "." not in name and f.startswith(std) and f.endswith(".py") and "site-packages" not in f:
        print(f)
"""


def build_pyzip(path: Path) -> int:
    """An archive of compiled modules for the guest; returns how many files it holds.

    Under emulation every file lookup on the host's shared file system costs ~30 ms, so
    importing pyroute2 takes a minute. From one archive in the guest's memory (first on
    PYTHONPATH, with ``-S``), the daemon starts several times faster. It holds the
    packages of PYZIP_PACKAGES and the standard library modules they import.
    """
    probe = subprocess.run(
        [sys.executable, "-c", _STDLIB_PROBE], capture_output=True, text=True, check=True
    )
    with zipfile.PyZipFile(str(path), "w", optimize=0) as zf:
        for name in PYZIP_PACKAGES:
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin and spec.origin.endswith("__init__.py"):
                zf.writepy(str(Path(spec.origin).parent))
        for line in probe.stdout.splitlines():
            f = Path(line)
            zf.writepy(str(f.parent) if f.name == "__init__.py" else str(f))
        return len(zf.namelist())


def run_in_vm(args: Sequence[str]) -> int:
    """Run ``python -m pyvrrpd.demo ARGS`` in the VM; its exit code (vm-run's on failure).

    The modules come from an archive (:func:`build_pyzip`) copied into the guest's memory.
    The VM runs in its own process group, which Ctrl-C / SIGTERM here terminates.
    """
    tmp = Path(tempfile.mkdtemp(prefix="pyvrrpd-demo-"))
    try:
        archive = tmp / "modules.zip"
        build_pyzip(archive)
        return _vm_run(args, archive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _vm_run(args: Sequence[str], archive: Path) -> int:
    guest_zip = "/tmp/pyvrrpd-demo-modules.zip"
    script = 'cp "$1" "$2" && zip="$2" && shift 2 && PYTHONPATH="$zip" exec "$@"'
    cmd = [str(VM_RUN), "/bin/sh", "-c", script, "sh", str(archive), guest_zip]
    cmd += [sys.executable, "-S", "-P", "-m", "pyvrrpd.demo", *args, "--pyzip", guest_zip]
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
