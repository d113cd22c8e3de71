"""Config checking shared by ``pyvrrpd -t`` and ``pyvrrpctl``: load, report, exit code."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sys
from typing import TextIO

from ..config.env import Environment
from ..config.errors import ConfigError, Diagnostic, Severity, error
from ..config.load import LoadResult, load_config
from ..config.scripts_used import scripts_used

# keepalived's exit codes (keepalived/include/main.h)
EXIT_OK = 0
EXIT_CONFIG = 4  # cannot run: no usable configuration
EXIT_CONFIG_TEST = 5  # errors found, would still run
EXIT_CONFIG_TEST_SECURITY = 6  # script security problems

SCRIPT_SECURITY = "script-security"


def default_config_id() -> str:
    """keepalived's default config id: the host name up to the first dot."""
    return socket.gethostname().split(".", 1)[0]


def host_environment() -> Environment:
    """The running host's interfaces and name."""
    try:
        names = frozenset(os.listdir("/sys/class/net"))
    except OSError:
        names = None
    return Environment(interfaces=names, hostname=socket.gethostname())


def exit_code(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> int:
    """keepalived's ``-t`` exit code for a set of diagnostics."""
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if not errors:
        return EXIT_OK
    if all(d.code == SCRIPT_SECURITY for d in errors):
        return EXIT_CONFIG_TEST_SECURITY
    return EXIT_CONFIG_TEST


def report(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], out: TextIO) -> None:
    """Print diagnostics as ``FILE:LINE: severity: message`` lines (in file order)."""
    for d in sorted(diagnostics, key=lambda d: (d.loc is None, d.loc or ("", 0))):
        print(d.format(), file=out)


def check(
    path: str,
    config_id: str | None = None,
    env: Environment | None = None,
    out: TextIO = sys.stderr,
) -> tuple[int, LoadResult | None]:
    """Load and report; return keepalived's exit code and the result when one was built."""
    try:
        result = load_config(
            path, config_id=config_id or default_config_id(), env=env or host_environment()
        )
    except ConfigError as exc:
        report(exc.diagnostics, out)
        return EXIT_CONFIG, None
    diags = (*result.diagnostics, *security_violations(result))
    report(diags, out)
    return exit_code(diags), result


def security_violations(result: LoadResult) -> list[Diagnostic]:
    """keepalived's SECURITY VIOLATION: scripts present on this host would run without
    ``enable_script_security`` (``-t`` then exits 6)."""
    config = result.config
    g = config.global_defs
    if g.enable_script_security:
        if g.script_user is None and scripts_used(config):
            try:
                pwd.getpwnam("keepalived_script")
            except KeyError:
                return [
                    error(
                        g.loc,
                        "Unable to set default user keepalived_script for "
                        "scripts: scripts would be removed",
                        "set 'script_user USER' in global_defs or create the "
                        "user keepalived_script",
                        "script-user",
                    )
                ]
        return []
    from ..scripts import split_script  # (imported here: -t does not need it otherwise)

    out = []
    for use in scripts_used(config):
        try:
            argv0 = split_script(use.command)[0]
        except (ValueError, IndexError):
            continue
        if os.path.isfile(argv0) or (os.sep not in argv0 and shutil.which(argv0)):
            out.append(
                error(
                    use.loc,
                    f"SECURITY VIOLATION - {use.what} runs {argv0} but "
                    "script_security is not enabled",
                    "add 'enable_script_security' and 'script_user' to global_defs",
                    SCRIPT_SECURITY,
                )
            )
    return out
