"""``pyvrrpctl``: the operator's tool (config dump and conversion for now)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..config.load import default_config_path
from ..config.render import FORMATS, render
from . import configtest


def build_parser() -> argparse.ArgumentParser:
    """Sub-commands of pyvrrpctl."""
    p = argparse.ArgumentParser(prog="pyvrrpctl", description="Operate and inspect pyvrrpd.")
    p.add_argument("-i", "--config-id", metavar="ID", help="config id for @ID lines")
    sub = p.add_subparsers(dest="command", required=True)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyvrrpctl``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["genhash"]:
        from ..checks import genhash

        return genhash.main(argv[1:])
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
