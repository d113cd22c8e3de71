"""``-t`` (config test) on a large generated configuration: wall time and peak RSS.

The configuration: 1,000 virtual servers x 10 real servers, a TCP_CHECK each, plus 20 VRRP
instances on eth0. Each trial runs in a fresh Python child that times the checker with
``time.perf_counter`` around ``subprocess.run`` and reads its peak RSS from
``getrusage(RUSAGE_CHILDREN)``. If pyvrrpd needs more than TARGET seconds, a cProfile run
says where the time goes.
"""

from __future__ import annotations

import json
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import IMPLS, Row, log

N_VS, N_RS, N_VRRP = 1000, 10, 20
TARGET = 1.0  # seconds for pyvrrpd -t on this file

WRAPPER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "rc": r.returncode, "maxrss_kib": ru.ru_maxrss,
                  "cpu": ru.ru_utime + ru.ru_stime,
                  "stderr": r.stderr.decode(errors="replace")[-3000:]}))
"""


def generate(n_vs: int = N_VS, n_rs: int = N_RS, n_vrrp: int = N_VRRP) -> str:
    """keepalived.conf text: VRRP instances, then virtual servers with TCP_CHECKed reals."""
    out = ["global_defs {\n    router_id BENCH\n}\n"]
    for i in range(n_vrrp):
        out.append(
            f"vrrp_instance VI_{i + 1} {{\n    state BACKUP\n    interface eth0\n"
            f"    virtual_router_id {i + 1}\n    priority 100\n    advert_int 1\n"
            f"    virtual_ipaddress {{\n        10.20.{i}.1/32\n    }}\n}}\n"
        )
    k = 0
    for v in range(n_vs):
        out.append(
            f"virtual_server 10.10.{v // 250}.{1 + v % 250} 80 {{\n    delay_loop 6\n"
            f"    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n"
        )
        for _ in range(n_rs):
            out.append(
                f"    real_server 172.16.{k // 250}.{1 + k % 250} 8080 {{\n        weight 1\n"
                f"        TCP_CHECK {{\n            connect_timeout 3\n        }}\n    }}\n"
            )
            k += 1
        out.append("}\n")
    return "".join(out)


def command(impl: str, path: str) -> list[str]:
    if impl == "pyvrrpd":
        return [sys.executable, "-m", "pyvrrpd.cli.daemon", "-t", "-f", path]
    return ["keepalived", "-t", "-f", path]


def one(impl: str, path: str) -> dict[str, Any]:
    """One fresh-child trial."""
    res = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command(impl, path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rec: dict[str, Any] = json.loads(res.stdout)
    return rec


PHASES = r"""
import gc, json, sys, time
gc.disable()  # as load_config does while it loads
t0 = time.perf_counter()
from pyvrrpd.cli.configtest import default_config_id, host_environment
from pyvrrpd.config.load import build_config
from pyvrrpd.config.preprocess import preprocess_file
from pyvrrpd.config.schema import Ctx
from pyvrrpd.config.tree import parse_lines
from pyvrrpd.config.validate import validate
t1 = time.perf_counter()
pre = preprocess_file(sys.argv[1], config_id=default_config_id())
t2 = time.perf_counter()
nodes = parse_lines((ln.text, ln.loc) for ln in pre.lines)
t3 = time.perf_counter()
config = build_config(nodes, Ctx())
t4 = time.perf_counter()
diags = validate(config, host_environment())
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "preprocess": t2 - t1, "parse_lines": t3 - t2,
                  "build_config": t4 - t3, "validate": t5 - t4, "lines": len(pre.lines)}))
"""


def phases(path: str) -> dict[str, float]:
    """Wall time of each stage of pyvrrpd's loader on the file (fresh child, no profiler)."""
    res = subprocess.run(
        [sys.executable, "-c", PHASES, path], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        return {"error": res.stderr[-500:]}  # type: ignore[dict-item]
    out: dict[str, float] = json.loads(res.stdout)
    return out


def profile(path: str, out_dir: Path, top: int = 18) -> str:
    """cProfile of pyvrrpd -t on the file: the heaviest functions, as text."""
    prof = out_dir / "configtest.prof"
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pyvrrpd.cli.daemon",
         "-t", "-f", path],
        capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    lines = []
    st = pstats.Stats(str(prof))
    total = st.total_tt  # type: ignore[attr-defined]
    lines.append(f"cProfile total {total:.3f} s (profiling overhead included)")
    for key in ("tottime", "cumulative"):
        st.sort_stats(key)
        lines.append(f"top by {key}: ncalls, tottime, cumtime, function")
        stats: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
        for func in st.fcn_list[:top]:  # type: ignore[attr-defined]
            _cc, nc, tt, ct, _callers = stats[func]
            file, line, name = func
            short = file.split("/site-packages/")[-1].split("/work/main/")[-1]
            lines.append(f"  {nc:>9} {tt:7.3f} {ct:7.3f}  {short}:{line}({name})")
    return "\n".join(lines)


def run(trials: int, *, force_profile: bool = False) -> tuple[list[Row], dict[str, Any]]:
    """Both implementations, alternating, `trials` each; profile pyvrrpd if over TARGET."""
    mode = f"{N_VS} VS x {N_RS} RS TCP_CHECK + {N_VRRP} VRRP"
    wall = Row("config-test", "-t wall time", mode, "s", bound=f"target < {TARGET:.0f} s (pyvrrpd)")
    rss = Row("config-test", "-t peak RSS", mode, "MiB")
    cpu = Row("config-test", "-t CPU (user+sys)", mode, "s")
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pyvrrpd-bench-") as tmp:
        path = str(Path(tmp) / "keepalived.conf")
        text = generate()
        Path(path).write_text(text)
        raw["config_lines"] = text.count("\n")
        raw["config_bytes"] = len(text)
        for impl in IMPLS:  # warm the page cache and check both accept the file
            rec = one(impl, path)
            raw[f"{impl}_warmup"] = rec
            if rec["rc"] != 0:
                log(f"  {impl} -t exit {rec['rc']}: {rec['stderr'][-800:]}")
        for i in range(trials):
            for impl in IMPLS:
                rec = one(impl, path)
                raw.setdefault(impl, []).append(rec)
                wall.samples[impl].add(rec["wall"])
                rss.samples[impl].add(rec["maxrss_kib"] / 1024)
                cpu.samples[impl].add(rec["cpu"])
                log(f"  {impl} -t #{i + 1}: {rec['wall']:.3f} s, "
                    f"{rec['maxrss_kib'] / 1024:.1f} MiB, exit {rec['rc']}")  # fmt: skip
        codes = {impl: sorted({r["rc"] for r in raw[impl]}) for impl in IMPLS}
        wall.note = f"{raw['config_lines']:,} lines; exit codes {codes}"
        med = wall.samples["pyvrrpd"].median
        if force_profile or (med is not None and med > TARGET):
            log("  profiling pyvrrpd -t")
            raw["profile"] = profile(path, Path(tmp))
            raw["phases"] = [phases(path) for _ in range(3)]
    return [wall, cpu, rss], raw
