"""``pyvrrpd``: the daemon's command line, accepting keepalived's flags."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..config.load import default_config_path
from . import configtest

# keepalived --signum names and the signals it uses for them (as keepalived 2.2.7
# prints them on Linux/glibc: 15, 1, 10, 12, 63, 36; it knows no TDATA).
SIGNUMS: dict[str, int] = {
    "STOP": signal.SIGTERM,
    "RELOAD": signal.SIGHUP,
    "DATA": signal.SIGUSR1,
    "STATS": signal.SIGUSR2,
    "STATS_CLEAR": signal.SIGRTMAX - 1,
    "JSON": signal.SIGRTMIN + 2,
}


def metrics_address(text: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (every address) as (host or None, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, [IPV6]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not an IPv6 address in brackets") from None
    elif ":" in host or "[" in host or "]" in host or any(c.isspace() for c in host):
        raise argparse.ArgumentTypeError(f"{text!r}: write IPv6 addresses in brackets: [::1]:9650")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 1-65535")
    return (host or None), int(port_text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: keepalived's flags plus pyvrrpd's own."""
    p = argparse.ArgumentParser(
        prog="pyvrrpd",
        description="VRRP and IPVS load balancing daemon, a drop-in for keepalived.",
    )
    p.add_argument(
        "--config",
        "-f",
        "--use-file",
        dest="config",
        metavar="FILE",
        help="configuration file (default /etc/keepalived/keepalived.conf, "
        "else /etc/pyvrrpd/pyvrrpd.yaml)",
    )
    p.add_argument(
        "-t",
        "--config-test",
        nargs="?",
        const="-",
        default=None,
        metavar="LOG_FILE",
        help="check the configuration, print diagnostics and exit",
    )
    p.add_argument("-d", "--dump-conf", action="store_true", help="dump the parsed configuration")
    p.add_argument(
        "-i",
        "--config-id",
        metavar="ID",
        help="config id for @ID lines (default: host name up to the first dot)",
    )
    p.add_argument(
        "-n", "--dont-fork", action="store_true", help="run in the foreground (pyvrrpd always does)"
    )
    p.add_argument("-l", "--log-console", action="store_true", help="log to the console")
    p.add_argument("-D", "--log-detail", action="store_true", help="detailed log messages")
    p.add_argument("-G", "--no-syslog", action="store_true", help="do not log via syslog")
    p.add_argument("-S", "--log-facility", metavar="N", help="syslog facility LOG_LOCAL[0-7]")
    p.add_argument(
        "-g",
        "--log-file",
        nargs="?",
        const="/tmp/keepalived.log",
        metavar="FILE",
        help="also log to FILE",
    )
    p.add_argument("--flush-log-file", action="store_true", help="flush the log file on write")
    p.add_argument("-P", "--vrrp", action="store_true", help="run only the VRRP side")
    p.add_argument("-C", "--check", action="store_true", help="run only the health checkers")
    p.add_argument("-B", "--no_bfd", action="store_true", help="do not run BFD (no-op)")
    p.add_argument("--all", action="store_true", help="run all sides even without config")
    p.add_argument("-p", "--pid", metavar="FILE", help="pid file of the main process")
    p.add_argument("-r", "--vrrp_pid", metavar="FILE", help="pid file of the VRRP side")
    p.add_argument("-c", "--checkers_pid", metavar="FILE", help="pid file of the checkers")
    p.add_argument("-b", "--bfd_pid", metavar="FILE", help="pid file of BFD (unused)")
    p.add_argument(
        "-X", "--release-vips", action="store_true", help="drop VIPs on transition from a signal"
    )
    p.add_argument(
        "-V",
        "--dont-release-vrrp",
        action="store_true",
        help="do not remove VIPs and virtual routes on stop",
    )
    p.add_argument(
        "-I",
        "--dont-release-ipvs",
        action="store_true",
        help="do not remove the IPVS topology on stop",
    )
    p.add_argument("-R", "--dont-respawn", action="store_true", help="accepted (no children)")
    p.add_argument("-x", "--snmp", action="store_true", help="SNMP subsystem (not supported)")
    p.add_argument("-A", "--snmp-agent-socket", metavar="FILE", help="(not supported)")
    p.add_argument("-u", "--umask", metavar="MASK", help="umask for created files")
    p.add_argument("-s", "--namespace", metavar="NAME", help="network namespace (not supported)")
    p.add_argument("-m", "--core-dump", action="store_true", help="accepted (no effect)")
    p.add_argument(
        "-M",
        "--core-dump-pattern",
        nargs="?",
        const="core",
        metavar="PATTERN",
        help="accepted (no effect)",
    )
    p.add_argument(
        "-a",
        "--address-monitoring",
        action="store_true",
        help="log all address changes seen via netlink",
    )
    p.add_argument(
        "--signum",
        metavar="SIGFUNC",
        help="print the signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR, JSON",
    )
    p.add_argument(
        "--control-socket",
        metavar="PATH",
        help="control socket for pyvrrpctl (default /run/pyvrrpd/control.sock; 'none': off)",
    )
    p.add_argument(
        "--state-file",
        metavar="PATH",
        help="state file for pyvrrpctl release (default /run/pyvrrpd/state.json; 'none': off)",
    )
    p.add_argument(
        "--metrics",
        type=metrics_address,
        metavar="ADDR:PORT",
        help="serve Prometheus metrics on /metrics at ADDR:PORT ([::1]:PORT for IPv6; "
        ":PORT: every address); off by default; needs prometheus_client",
    )
    p.add_argument("-v", "--version", action="store_true", help="print the version")
    p.add_argument("--debug", nargs="?", const="", help="accepted (no effect)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyvrrpd``."""
    args = build_parser().parse_args(argv)
    if args.config_test is None:
        # A reload request before the daemon is ready must not kill it (the default
        # action of SIGHUP); serve() installs the real handler.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.version:
        print(f"pyvrrpd {__version__} (keepalived-compatible command line)")
        return 0
    if args.signum:
        num = SIGNUMS.get(args.signum.upper())
        if num is None:
            print(f"pyvrrpd: unknown signal function '{args.signum}'", file=sys.stderr)
            return 1
        print(int(num))
        return 0
    path = args.config or default_config_path()
    if args.config_test is not None:
        import gc

        gc.disable()  # the process ends after the check: no collection pass over the model
        out = sys.stderr if args.config_test == "-" else open(args.config_test, "a")  # noqa: SIM115
        try:
            code, result = configtest.check(path, args.config_id, out=out)
        finally:
            if out is not sys.stderr:
                out.close()
        if result is not None and args.dump_conf:
            from ..config.render import render

            sys.stdout.write(render(result.config, "keepalived"))
        return code
    code, result = configtest.check(path, args.config_id)
    if result is None:
        return code
    import gc

    gc.freeze()  # the loaded model lives as long as the process: keep it out of collections
    if args.dump_conf:
        from ..config.render import render

        sys.stdout.write(render(result.config, "keepalived"))
    from ..runtime import run_daemon

    return run_daemon(result, args)


if __name__ == "__main__":
    sys.exit(main())
