"""What every external script needs: word splitting, the user it runs as, security checks.

Shared by ``vrrp_script`` trackers, notify scripts and MISC_CHECK. Nothing here runs a
process: :mod:`pyvrrpd.script_exec` does that with asyncio, using :func:`spawn_options`
and :func:`kill_process_group` from this module.

keepalived execs scripts directly (no shell) after splitting the configured string into
words: whitespace separates words, single and double quotes group them (and are
removed), and backslash escapes (``\\n``, ``\\t``, ``\\xHH``, octal ``\\NNN``, ``\\cX``,
any other character taken literally) work both inside and outside quotes. A shell is
used only for a command starting with ``<`` or ``>`` (a redirection used to test a
file), or when the kernel cannot exec the file itself (no ``#!`` line).
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from subprocess import DEVNULL
from typing import Any

WHITESPACE = " \t\f\n\r\v"
DEFAULT_SCRIPT_USER = "keepalived_script"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_HEX = "0123456789abcdefABCDEF"
_OCT = "01234567"
# Environment variables keepalived removes before running a script.
_UNSAFE_ENV = ("IFS", "LD_PRELOAD", "LD_LIBRARY_PATH")


def _escape(text: str, i: int) -> tuple[str, int]:
    """Decode the escape whose character follows the backslash at ``text[i - 1]``."""
    c = text[i]
    if c == "x" and i + 1 < len(text) and text[i + 1] in _HEX:
        j = i + 1
        while j < len(text) and j < i + 3 and text[j] in _HEX:
            j += 1
        return chr(int(text[i + 1 : j], 16)), j
    if c == "c" and i + 1 < len(text):
        return chr(ord(text[i + 1]) & 0x1F), i + 2
    if c in _OCT:
        j = i
        while j < len(text) and j < i + 3 and text[j] in _OCT:
            j += 1
        return chr(int(text[i:j], 8) & 0xFF), j
    return _SIMPLE_ESCAPES.get(c, c), i + 1


def split_script(cmd: str) -> list[str]:
    """Split a script string into argv the way keepalived does (see the module doc).

    Raises ValueError for an empty command, an unterminated quote or a trailing
    backslash.
    """
    words: list[str] = []
    i, n = 0, len(cmd)
    while True:
        while i < n and cmd[i] in WHITESPACE:
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = cmd[i]
            if c == "\\":
                if i + 1 >= n:
                    raise ValueError(f"missing escaped character at end of {cmd!r}")
                decoded, i = _escape(cmd, i + 1)
                word.append(decoded)
            elif quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
                i += 1
            elif c in "'\"":
                quote = c
                i += 1
            elif c in WHITESPACE:
                break
            else:
                word.append(c)
                i += 1
        if quote:
            raise ValueError(f"missing terminating {quote} in {cmd!r}")
        words.append("".join(word))
    if not words:
        raise ValueError("empty script command")
    return words


def shell_command(argv: list[str] | tuple[str, ...]) -> str:
    """The ``sh -c`` text for argv: each word single-quoted, except a leading redirection."""
    parts: list[str] = []
    for index, arg in enumerate(argv):
        if index == 0 and arg[:1] in ("<", ">"):
            parts.append(arg)
        else:
            parts.append("'" + arg.replace("'", "'\\''") + "'")
    return " ".join(parts)


def needs_shell(argv: list[str] | tuple[str, ...]) -> bool:
    """True when keepalived would hand the command to ``/bin/sh`` (a redirection test)."""
    return bool(argv) and argv[0][:1] in ("<", ">")


@dataclass(frozen=True, slots=True)
class ScriptUser:
    """Credentials a script runs with; ``groups`` are the supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    name: str | None = None

    @classmethod
    def current(cls) -> ScriptUser:
        """Our own effective uid/gid (keepalived's fallback script user)."""
        return cls(os.geteuid(), os.getegid(), (), None)

    @property
    def is_root(self) -> bool:
        """Runs with uid 0 or gid 0 (what makes keepalived check script security)."""
        return self.uid == 0 or self.gid == 0


def resolve_script_user(user: str, group: str | None = None) -> ScriptUser:
    """Look up ``user [[:]group]``; a group starting with ``:`` also sets the user's groups.

    Raises ValueError naming what does not exist.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"script user {user!r} does not exist") from None
    supplementary = False
    if group is not None and group.startswith(":"):
        supplementary = True
        group = group[1:] or None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"script group {group!r} does not exist") from None
    groups: tuple[int, ...] = ()
    if supplementary:
        groups = tuple(os.getgrouplist(user, entry.pw_gid))
    return ScriptUser(entry.pw_uid, gid, groups, user)


def default_script_user(
    script_user: tuple[str, str | None] | None, script_security: bool
) -> ScriptUser:
    """The user for scripts configured without one (keepalived's ``script_user`` rules).

    ``script_user`` is the global ``(user, group)`` if configured. Otherwise
    ``keepalived_script`` if it exists; failing that our own uid/gid, unless script
    security is enabled, when that is an error (ValueError).
    """
    if script_user is not None:
        return resolve_script_user(*script_user)
    try:
        return resolve_script_user(DEFAULT_SCRIPT_USER)
    except ValueError:
        if script_security:
            raise ValueError(
                f"enable_script_security needs script_user or a {DEFAULT_SCRIPT_USER!r} user"
            ) from None
        return ScriptUser.current()


def _unsafe(st: os.stat_result) -> bool:
    """Owned by non-root, or writable by a non-root group or everyone (sticky dirs exempt)."""
    if st.st_uid != 0:
        return True
    mode = st.st_mode
    checked = stat.S_ISREG(mode) or (stat.S_ISDIR(mode) and not mode & stat.S_ISVTX)
    return checked and bool((st.st_gid != 0 and mode & stat.S_IWGRP) or mode & stat.S_IWOTH)


def _walk_problems(path: str) -> list[str]:
    """Problems of every component of absolute ``path`` ("/" included)."""
    problems: list[str] = []
    parts = [p for p in path.split("/") if p]
    prefixes = ["/"] + ["/" + "/".join(parts[: k + 1]) for k in range(len(parts))]
    for k, prefix in enumerate(prefixes):
        last = k == len(prefixes) - 1
        try:
            st = os.lstat(prefix)
        except OSError as exc:
            problems.append(f"{prefix}: cannot stat ({exc.strerror})")
            return problems
        mode = st.st_mode
        if not last and not stat.S_ISDIR(mode):
            problems.append(f"{prefix}: not a directory")
        elif last and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            problems.append(f"{prefix}: not a regular file")
        elif _unsafe(st):
            what = "directory" if stat.S_ISDIR(mode) else "file"
            owner = f"owned by uid {st.st_uid}" if st.st_uid != 0 else "writable by non-root"
            problems.append(f"{prefix}: {what} {owner} (mode {stat.filemode(mode)})")
    return problems


def _runs_privileged(st: os.stat_result, user: ScriptUser) -> bool:
    mode = st.st_mode
    return (
        user.is_root
        or (st.st_uid == 0 and bool(mode & stat.S_IXUSR) and bool(mode & stat.S_ISUID))
        or (st.st_gid == 0 and bool(mode & stat.S_IXGRP) and bool(mode & stat.S_ISGID))
    )


def script_security_problems(path: str, user: ScriptUser | None = None) -> list[str]:
    """Why running ``path`` as ``user`` (default root) is unsafe; empty when it is safe.

    As keepalived: only a script that runs privileged (uid or gid 0, or a set-uid/gid
    root file) is checked. Then the file and every directory above it (and, for a
    symlink, the resolved path too) must be owned by root and not writable by a
    non-root group or by everyone; directories with the sticky bit (like /tmp) may be
    world-writable.
    """
    user = user if user is not None else ScriptUser(0, 0)
    absolute = os.path.abspath(path)
    try:
        st = os.stat(absolute)
    except OSError as exc:
        return [f"{absolute}: cannot stat ({exc.strerror})"]
    if not _runs_privileged(st, user):
        return []
    problems = _walk_problems(absolute)
    real = os.path.realpath(absolute)
    if real != absolute:
        problems += _walk_problems(real)
    return problems


def _executable_by(st: os.stat_result, user: ScriptUser) -> bool:
    mode = st.st_mode
    if user.uid == 0:
        return bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if user.uid == st.st_uid:
        return bool(mode & stat.S_IXUSR)
    if user.gid == st.st_gid or st.st_gid in user.groups:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def _untraversable(path: str, user: ScriptUser) -> str | None:
    """The first directory above ``path`` that ``user`` cannot enter, if any."""
    if user.uid == 0:
        return None
    directory = os.path.dirname(path)
    chain = []
    while True:
        chain.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for d in reversed(chain):
        try:
            st = os.stat(d)
        except OSError:
            return d
        if not _executable_by(st, user):
            return d
    return None


@dataclass(frozen=True, slots=True)
class ScriptCheck:
    """Outcome of vetting a script at configuration time.

    ``ok`` False means keepalived would not run it (``problems`` says why); ``argv`` has
    argv[0] resolved to an absolute path; ``warnings`` are worth logging either way.
    """

    ok: bool
    argv: tuple[str, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _search_path(name: str, user: ScriptUser) -> str | None:
    for directory in os.environ.get("PATH", os.defpath).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and _executable_by(st, user):
            return os.path.abspath(candidate)
    return None


def check_script(
    argv: list[str] | tuple[str, ...], user: ScriptUser, script_security: bool
) -> ScriptCheck:
    """Vet a script as keepalived does before using it (path search, exec bit, security).

    Insecure permissions refuse the script only with ``script_security``; otherwise
    they are a warning.
    """
    words = tuple(argv)
    if needs_shell(words):
        return ScriptCheck(True, words)
    warnings: list[str] = []
    program = words[0]
    if "/" not in program:
        found = _search_path(program, user)
        if found is None:
            return ScriptCheck(False, words, (f"cannot find script {program!r} in PATH",))
        warnings.append(f"script {program!r} resolved by PATH search to {found!r}; use a full path")
        program = found
    program = os.path.abspath(program)
    words = (program, *words[1:])
    try:
        st = os.stat(program)
    except OSError as exc:
        return ScriptCheck(
            False, words, (f"script {program!r} cannot be accessed: {exc.strerror}",)
        )
    blocked = _untraversable(program, user)
    if blocked is not None:
        problem = (
            f"script {program!r} cannot be accessed by uid {user.uid}: {blocked} not searchable"
        )
        return ScriptCheck(False, words, (problem,), tuple(warnings))
    if not stat.S_ISREG(st.st_mode) or not _executable_by(st, user):
        problem = f"script {program!r} is not executable for uid:gid {user.uid}:{user.gid}"
        return ScriptCheck(False, words, (problem,), tuple(warnings))
    unsafe = script_security_problems(program, user)
    if unsafe:
        text = f"unsafe permissions for script {program!r}: " + "; ".join(unsafe)
        if script_security:
            return ScriptCheck(False, words, (text,), tuple(warnings))
        warnings.append(text)
    return ScriptCheck(True, words, (), tuple(warnings))


_PR_SET_PDEATHSIG = 1


def _pdeathsig_setter() -> Callable[[], None] | None:
    # The running interpreter has libc loaded already: look prctl up in the process
    # (ctypes.util.find_library would run ldconfig, ~10 ms at every start).
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def setter() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setter


_SET_PDEATHSIG = _pdeathsig_setter()


def script_environment() -> dict[str, str]:
    """Our environment minus the variables keepalived strips before running a script."""
    return {k: v for k, v in os.environ.items() if k not in _UNSAFE_ENV}


@dataclass(frozen=True, slots=True)
class SpawnOptions:
    """How to start a script process; :meth:`kwargs` feeds ``create_subprocess_exec``."""

    user: ScriptUser | None = None
    die_with_parent: bool = True
    env: dict[str, str] = field(default_factory=script_environment)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments: own process group, dropped credentials, clean env and stdio."""
        out: dict[str, Any] = {
            "process_group": 0,
            "close_fds": True,
            "env": self.env,
            "stdin": DEVNULL,
            "stdout": DEVNULL,
            "stderr": DEVNULL,
        }
        if self.user is not None:
            if self.user.gid != os.getegid():
                out["group"] = self.user.gid
            if os.geteuid() == 0:
                out["extra_groups"] = list(self.user.groups)
            if self.user.uid != os.geteuid():
                out["user"] = self.user.uid
        if self.die_with_parent and _SET_PDEATHSIG is not None:
            out["preexec_fn"] = _SET_PDEATHSIG
        return out


def spawn_options(user: ScriptUser | None = None) -> dict[str, Any]:
    """Shorthand for ``SpawnOptions(user).kwargs()``."""
    return SpawnOptions(user).kwargs()


def kill_process_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group no longer exists."""
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, sig)
        return False
    return True
