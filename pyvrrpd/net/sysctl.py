"""Kernel parameters under /proc/sys (pyroute2 has no sysctl API).

Names are paths relative to /proc/sys with ``/`` separators (``net/ipv4/conf/eth0/
arp_ignore``), so interface names containing dots (``vrrp.10``) need no escaping.
:class:`Sysctl` works in one network namespace and remembers the first value it replaced
for each name, so that :meth:`Sysctl.restore` can put things back.
"""

from __future__ import annotations

from pathlib import Path

from pyvrrpd.net.netns import call_in_netns

PROC_SYS = Path("/proc/sys")


def sysctl_file(name: str, root: Path = PROC_SYS) -> Path:
    """The file of sysctl `name`; ValueError for names escaping /proc/sys."""
    parts = name.strip("/").split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad sysctl name: {name!r}")
    return root.joinpath(*parts)


def ipv4_conf(ifname: str, key: str) -> str:
    """``net/ipv4/conf/IFNAME/KEY``."""
    return f"net/ipv4/conf/{ifname}/{key}"


def ipv6_conf(ifname: str, key: str) -> str:
    """``net/ipv6/conf/IFNAME/KEY``."""
    return f"net/ipv6/conf/{ifname}/{key}"


def read_sysctl(name: str, root: Path = PROC_SYS) -> str:
    """The current value, stripped."""
    return sysctl_file(name, root).read_text().strip()


def write_sysctl(name: str, value: int | str, root: Path = PROC_SYS) -> None:
    """Write a value (OSError if the kernel refuses it or the name does not exist)."""
    with open(sysctl_file(name, root), "w") as fh:
        fh.write(f"{value}\n")


class Sysctl:
    """Reads and writes sysctls in one network namespace (None: this process's)."""

    def __init__(self, netns: str | None = None, root: Path = PROC_SYS) -> None:
        self.netns = netns
        self.root = root
        self.saved: dict[str, str] = {}

    async def get(self, name: str) -> str:
        """Read `name`."""
        return await call_in_netns(self.netns, lambda: read_sysctl(name, self.root))

    async def get_int(self, name: str) -> int:
        """Read `name` as an integer."""
        return int(await self.get(name))

    async def set(self, name: str, value: int | str, *, save: bool = True) -> str:
        """Write `name` and return the old value (remembered for restore() if `save`)."""

        def swap() -> str:
            old = read_sysctl(name, self.root)
            if old != str(value):
                write_sysctl(name, value, self.root)
            return old

        old = await call_in_netns(self.netns, swap)
        if save:
            self.saved.setdefault(name, old)
        return old

    async def restore(self, names: list[str] | None = None) -> None:
        """Put back the saved values of `names` (all by default); vanished names are skipped."""
        todo = list(self.saved) if names is None else [n for n in names if n in self.saved]
        values = {n: self.saved.pop(n) for n in todo}

        def put_back() -> None:
            for name, value in values.items():
                try:
                    write_sysctl(name, value, self.root)
                except FileNotFoundError:
                    continue

        await call_in_netns(self.netns, put_back)
