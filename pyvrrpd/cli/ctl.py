"""``pyvrrpctl``: the operator's tool: talk to the daemon, release after a crash, configs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..control import DEFAULT_SOCKET, request
from ..release import DEFAULT_STATE, release

# pyvrrpd.config.render.FORMATS; spelt out so that `pyvrrpctl release` (ExecStopPost,
# on the takeover path) starts without importing the configuration modules.
FORMATS = ("keepalived", "yaml", "json")


def build_parser() -> argparse.ArgumentParser:
    """Sub-commands of pyvrrpctl."""
    p = argparse.ArgumentParser(prog="pyvrrpctl", description="Operate and inspect pyvrrpd.")
    p.add_argument("-i", "--config-id", metavar="ID", help="config id for @ID lines")
    p.add_argument(
        "-s",
        "--socket",
        default=None,
        metavar="PATH",
        help=f"the daemon's control socket (default {DEFAULT_SOCKET})",
    )
    sub = p.add_subparsers(dest="command", required=True)

    st = sub.add_parser("status", help="the running daemon's state")
    st.add_argument("--json", action="store_true", help="JSON (docs/status-schema.json)")
    rl = sub.add_parser("reload", help="reload the configuration; non-zero exit when refused")
    rl.add_argument("-f", "--file", dest="file", metavar="FILE", help="another file to load")
    rl.add_argument("--json", action="store_true", help="print the outcome as JSON")
    pl = sub.add_parser("plan", help="what reloading FILE would change (nothing is applied)")
    pl.add_argument("-f", "--file", dest="file", metavar="FILE", help="default: the running one")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    for name, text in (
        ("drain", "weight 0 now, removed once no connection is active"),
        ("undrain", "give a drained real server back"),
    ):
        dr = sub.add_parser(name, help=text)
        dr.add_argument("vs", metavar="VS", help="virtual server: 10.0.0.1:80 or [10.0.0.1]:tcp:80")
        dr.add_argument("rs", metavar="RS", help="real server: 10.0.0.2:80")
        if name == "undrain":
            dr.add_argument(
                "--ramp",
                type=float,
                default=0.0,
                metavar="SECONDS",
                help="slow start: raise the weight to its full value over SECONDS",
            )
    dp = sub.add_parser("dump", help="write keepalived's dump file (as SIGUSR1/USR2/RTMIN+2)")
    dp.add_argument("kind", choices=("data", "stats", "json"))
    rel = sub.add_parser("release", help="after a crash: drop recorded VIPs, send priority 0")
    rel.add_argument("--state", default=DEFAULT_STATE, metavar="FILE", help="the state file")
    rel.add_argument("--force", action="store_true", help="even if the daemon seems alive")

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    dump = cfg_sub.add_parser("dump", help="print the parsed configuration")
    dump.add_argument("-f", "--file", "--config", dest="file", metavar="FILE")
    dump.add_argument("--format", choices=FORMATS, default="keepalived")
    test = cfg_sub.add_parser("test", help="check a configuration (as pyvrrpd -t)")
    test.add_argument("-f", "--file", "--config", dest="file", metavar="FILE")

    conv = sub.add_parser("convert", help="convert a configuration between syntaxes")
    conv.add_argument("file", metavar="FILE")
    conv.add_argument("--to", choices=("yaml", "keepalived", "json"), required=True)
    conv.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")

    sub.add_parser("genhash", help="MD5 digest of a URL, as keepalived's genhash", add_help=False)

    from ..watch_live import add_arguments as add_watch_arguments

    watch = sub.add_parser("watch", help="live table of the VRRP speakers heard on IFACE")
    add_watch_arguments(watch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyvrrpctl``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["genhash"]:
        from ..checks import genhash

        return genhash.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in DAEMON_COMMANDS:
        return daemon_command(args)
    if args.command == "watch":
        from ..watch_live import main as watch_main

        return watch_main(args)
    if args.command == "release":
        report = release(args.state, force=args.force)
        for line in report.lines():
            print(line)
        return 1 if report.refused or report.errors else 0
    from ..config.load import default_config_path
    from ..config.render import render
    from . import configtest

    if args.command == "config":
        path = args.file or default_config_path()
        code, result = configtest.check(path, args.config_id)
        if args.config_command == "test" or result is None:
            return code
        sys.stdout.write(render(result.config, args.format))
        return 0 if code == configtest.EXIT_OK else code
    if args.command == "convert":
        code, result = configtest.check(args.file, args.config_id)
        if result is None:
            return code
        text = render(result.config, args.to)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)
        return 0 if code == configtest.EXIT_OK else code
    return 2


DAEMON_COMMANDS = ("status", "reload", "plan", "drain", "undrain", "dump")


def daemon_command(args: argparse.Namespace) -> int:
    """Send one request to the daemon and print its answer; 0 on success."""
    path = args.socket or DEFAULT_SOCKET
    params: dict[str, Any] = {}
    if args.command in ("reload", "plan") and args.file:
        params["path"] = os.path.abspath(args.file)
    if args.command in ("drain", "undrain"):
        params = {"vs": args.vs, "rs": args.rs}
        if getattr(args, "ramp", 0.0):
            params["ramp"] = args.ramp
    if args.command == "dump":
        params = {"kind": args.kind}
    try:
        answer = request(path, args.command, **params)
    except OSError as exc:
        print(f"pyvrrpctl: cannot reach pyvrrpd at {path}: {exc}", file=sys.stderr)
        return 3
    if not answer.get("ok"):
        print(f"pyvrrpctl: {answer.get('error', 'failed')}", file=sys.stderr)
        return 1
    as_json = getattr(args, "json", False)
    if args.command == "status":
        from ..status import render_text

        snap = answer["status"]
        print(json.dumps(snap, indent=2, sort_keys=True) if as_json else render_text(snap))
        return 0
    if args.command == "reload":
        outcome = answer["outcome"]
        print(json.dumps(outcome, indent=2) if as_json else render_outcome(outcome))
        return 0 if outcome["applied"] else 1
    if args.command == "plan":
        plan = answer["plan"]
        print(json.dumps(plan, indent=2) if as_json else render_plan(plan))
        return 0 if plan["valid"] else 1
    if args.command in ("drain", "undrain"):
        d = answer["drain"]
        verb = "drained" if args.command == "drain" else "no longer drained"
        extra = " (removed)" if d["removed"] and args.command == "drain" else ""
        print(f"{d['rs']} of {d['vs']}: {verb}{extra}")
        return 0
    print(answer["path"])
    return 0


_VRRP_WORDS = {
    "unchanged": "unchanged",
    "addresses": "addresses changed in place",
    "priority": "priority changed in place",
    "restart": "restarted",
    "removed": "removed",
    "added": "added",
}


def _vrrp_lines(vrrp: dict[str, list[str]] | None) -> list[str]:
    if vrrp is None:
        return []
    return [f"VRRP {_VRRP_WORDS[k]}: {', '.join(v)}" for k, v in vrrp.items() if v]


def render_outcome(outcome: dict[str, Any]) -> str:
    """A reload's outcome for people."""
    head = "reload applied" if outcome["applied"] else f"reload refused: {outcome['message']}"
    lines = [head, *outcome["diagnostics"], *_vrrp_lines(outcome["vrrp"])]
    lines += [f"IPVS {op}" for op in outcome.get("ipvs_ops", [])]
    return "\n".join(lines)


def render_plan(plan: dict[str, Any]) -> str:
    """A dry run for people: the same lines a reload then reports."""
    if not plan["valid"]:
        return "\n".join([f"invalid: {plan['message']}", *plan["diagnostics"]])
    lines = [f"plan for {plan['path']}", *plan["diagnostics"], *_vrrp_lines(plan["vrrp"])]
    if plan["ipvs"]["flush"]:
        lines.append("IPVS flush (lvs_flush)")
    lines += [f"IPVS {op}" for op in plan["ipvs"]["ops"]]
    if len(lines) == 1 + len(plan["diagnostics"]):
        lines.append("no change")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
